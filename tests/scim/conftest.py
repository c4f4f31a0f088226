"""A SCIM token and a client that sends it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from govern.scim import services
from tests.factories import make_user

SCIM = "application/scim+json"


@pytest.fixture
def scim(app, db, kit):
    """An admin, a live token, and request helpers that send it."""
    admin = make_user(db, kit, roles=("admin",), full_name="Ada Admin")
    with app.test_request_context():
        row, token = services.create_token(db, actor=admin.user, name="Okta production")
    db.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": SCIM}

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return client.open(f"/scim/v2{path}", method=method, json=body, headers={**headers, **({"Content-Type": SCIM} if body is not None else {})}, **kwargs)

    return SimpleNamespace(admin=admin, token=token, row=row, client=client, call=call, headers=headers)
