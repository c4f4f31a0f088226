"""scim2-tester's checks run against the SCIM endpoint, in process through its WSGI client."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
import scim2_tester.filling as filling
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

#: Checks that report a real failure of the server.
FAILING = {Status.ERROR, Status.CRITICAL}


@pytest.fixture
def results(app, scim, monkeypatch):
    # govern knows people by their work email, so userName must be an email address (or a work
    # email must come with it); the tester's filler would send a random string. Tell it so.
    original = filling.get_random_example_value

    def example(path: Any) -> Any:
        if str(path).rsplit(":", 1)[-1] == "userName":
            return f"{uuid.uuid4().hex}@tester.example"
        return original(path)

    monkeypatch.setattr(filling, "get_random_example_value", example)
    client = WSGISCIMClient(app, base_url="http://localhost/scim/v2", headers={"Authorization": f"Bearer {scim.token}"})
    return check_server(client, raise_exceptions=False)


def test_scim2_tester_finds_no_error(results):
    statuses = Counter(result.status for result in results)
    failures = [(r.title, r.reason) for r in results if r.status in FAILING]
    assert failures == [], failures
    assert statuses[Status.SUCCESS] >= 20, statuses
    assert not any(r.status == Status.SKIPPED and r.title and r.title.startswith("object_") for r in results)


def test_scim2_tester_checks_groups_too(results):
    """The Group resource type is discovered and put through the same checks (create, query, replace,
    patch add/replace/remove, search with attributes, delete)."""
    on_groups = Counter(r.status for r in results if getattr(r, "resource_type", None) == "Group")
    assert on_groups[Status.SUCCESS] >= 8, on_groups
    assert not on_groups.keys() & FAILING, on_groups
