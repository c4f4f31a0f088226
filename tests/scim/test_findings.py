"""Issue 16's SCIM findings: integers from the client are bounded, every event of a SCIM operation
names its token, and an email change reaches the person."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth.models import User, WebSession
from govern.directory.models import Person
from govern.offboarding.models import Offboarding
from tests.factories import make_account, make_grant, make_person

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
HUGE = "99999999999999999999"


def _create(scim, email="pia@acme.example", **extra):
    response = scim.call("POST", "/Users", {"schemas": [CORE], "userName": email, "name": {"formatted": "Pia Prov"},
                                            "emails": [{"value": email, "type": "work", "primary": True}], **extra})
    assert response.status_code == 201, response.json
    return response.json["id"]


def _is_scim_400(response):
    return (response.status_code == 400 and response.mimetype == "application/scim+json"
            and response.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            and response.json["status"] == "400" and response.json["scimType"] == "invalidValue")


@pytest.mark.parametrize("query", [f"startIndex={HUGE}", f"count={HUGE}", f"startIndex=-{HUGE}",
                                   f"startIndex={2**63}", f"count={2**31}", "startIndex=1e3", "count=ten"])
def test_out_of_range_integers_in_the_query_are_a_scim_400(scim, query):
    assert _is_scim_400(scim.call("GET", f"/Users?{query}"))


@pytest.mark.parametrize("body", [{"startIndex": int(HUGE)}, {"count": int(HUGE)}, {"startIndex": 2**31}])
def test_out_of_range_integers_in_a_search_body_are_a_scim_400(scim, body):
    assert _is_scim_400(scim.call("POST", "/Users/.search", {"schemas": [SEARCH], **body}))


def test_integers_in_range_still_page(scim):
    _create(scim)
    assert scim.call("GET", f"/Users?startIndex={2**31 - 1}&count=5").json["Resources"] == []
    listing = scim.call("POST", "/Users/.search", {"schemas": [SEARCH], "startIndex": 1, "count": 1000}).json
    assert listing["itemsPerPage"] >= 1 and listing["startIndex"] == 1
    assert scim.call("GET", "/Users?startIndex=-5&count=-1").json["startIndex"] == 1  # RFC 7644: below 1 reads as 1


def test_every_event_of_a_deactivation_names_the_token(app, db, kit, scim):
    user_id = _create(scim)
    person = db.get(Person, int(user_id))
    # Pia has a login with a live session, and a grant.
    login = User(person=person, email=person.email)
    db.add(login)
    db.flush()
    db.add(WebSession(id="s" * 64, public_id="p" * 32, user_id=login.id))
    make_grant(db, person, make_account(db), "publisher")
    db.commit()
    before = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]})
    assert response.status_code == 200, response.json
    events = db.scalars(select(AuditEvent).where(AuditEvent.id > before).order_by(AuditEvent.id)).all()
    actions = {e.action for e in events}
    assert {"offboarding.scheduled", "offboarding.started", "users.deactivated", "auth.sessions.ended"} <= actions, actions
    label = f"scim:okta production (token #{scim.row.id})"
    assert {e.actor_label for e in events} == {label}, {(e.action, e.actor_label) for e in events}
    assert "anonymous" not in {e.actor_label for e in events}


def test_an_email_change_reaches_the_person(db, scim):
    user_id = _create(scim)
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "userName", "value": "pia.new@acme.example"},
        {"op": "replace", "path": "emails", "value": [{"value": "pia.new@acme.example", "type": "work", "primary": True}]}]})
    assert response.status_code == 200, response.json
    db.expire_all()
    assert db.get(Person, int(user_id)).email == "pia.new@acme.example"
    # Only the work email changes (Entra ID keeps a UPN as userName): the person follows the work email.
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "pia.w@acme.example"}]})
    assert response.status_code == 200, response.json
    db.expire_all()
    assert db.get(Person, int(user_id)).email == "pia.w@acme.example"
    assert response.json["emails"][0]["value"] == "pia.w@acme.example"
    # PUT too.
    response = scim.call("PUT", f"/Users/{user_id}", {"schemas": [CORE], "userName": "pia.put@acme.example",
                                                      "emails": [{"value": "pia.put@acme.example", "type": "work"}]})
    assert response.status_code == 200, response.json
    db.expire_all()
    assert db.get(Person, int(user_id)).email == "pia.put@acme.example"


def test_an_email_someone_else_has_is_a_409_and_changes_nothing(db, scim):
    user_id = _create(scim)
    make_person(db, email="taken@acme.example")
    db.commit()
    before = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "emails", "value": [{"value": "taken@acme.example", "type": "work", "primary": True}]}]})
    assert response.status_code == 409 and response.json["scimType"] == "uniqueness", response.json
    db.expire_all()
    assert db.get(Person, int(user_id)).email == "pia@acme.example"
    assert scim.call("GET", f"/Users/{user_id}").json["emails"][0]["value"] == "pia@acme.example"
    assert db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == before
    bad = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "emails", "value": [{"value": "not an email", "type": "work"}]}]})
    assert bad.status_code == 400 and bad.json["scimType"] == "invalidValue"
    db.expire_all()
    assert db.get(Person, int(user_id)).email == "pia@acme.example"


@pytest.fixture
def app_overrides():
    return {"OFFBOARDING_IMMEDIATE_DEADLINE_HOURS": 3}


def test_a_deactivation_keeps_the_configured_offboarding_deadline(scim, db):
    user_id = _create(scim)
    assert scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}).status_code == 200
    offboarding = db.scalar(select(Offboarding).where(Offboarding.person_id == int(user_id)))
    assert offboarding.started_at is not None
    # Not the built-in 1 h: the deadline HR configured for immediate offboardings.
    assert offboarding.deadline_hours == 3
