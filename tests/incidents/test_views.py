"""Incident pages: permissions of every endpoint (at rotation's URLs), lockdown and closing through the web."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from govern.db import utcnow
from govern.incidents.models import Incident
from tests.factories import make_user
from tests.rotation.conftest import ROLE_CASES, check_endpoints, client_for, post_form

READS = ["/rotation/incidents/{incident}"]
WRITES = ["/rotation/accounts/{account}/lockdown", "/rotation/incidents/{incident}/close"]


@pytest.mark.parametrize(("roles", "may_read", "may_write"), ROLE_CASES)
def test_every_incident_endpoint_checks_its_permission(app, db, kit, world, setup, roles, may_read, may_write):
    other_account_incident = Incident(account_id=world.other_account.id, summary="x", compromised_since=utcnow(),
                                      status="closed", previous_status="active")
    db.add(other_account_incident)
    db.commit()
    ids = {"account": world.other_account.id, "incident": other_account_incident.id}
    client = client_for(app, db, make_user(db, kit, roles=roles))
    check_endpoints(client, READS, WRITES, ids, may_read=may_read, may_write=may_write)
    assert client.get(f"/rotation/accounts/{world.other_account.id}/lockdown").status_code == (200 if may_write else 403)


def test_unknown_objects_are_not_found(app, db, world, setup):
    client = client_for(app, db, world.it)
    for path in ("/rotation/incidents/99999", "/rotation/accounts/99999/lockdown"):
        assert client.get(path).status_code == 404


def test_lockdown_and_closing_through_the_pages(app, db, world, setup):
    secret, task = setup
    client = client_for(app, db, world.it)
    assert "Mark compromised" in client.get(f"/accounts/{world.account.id}").get_data(as_text=True)
    response = post_form(client, f"/rotation/accounts/{world.account.id}/lockdown", {"summary": "Strange posts at 3am"},
                         f"/rotation/accounts/{world.account.id}/lockdown")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Strange posts at 3am" in page and "rotation.account_locked" in page and "Close the incident" not in page
    db.expire_all()
    assert world.account.status == "locked"
    incident = db.scalar(select(Incident))
    refused = post_form(client, f"/rotation/incidents/{incident.id}/close", {"note": "done"}, f"/rotation/incidents/{incident.id}")
    assert "not done yet" in client.get(refused.headers["Location"]).get_data(as_text=True)
