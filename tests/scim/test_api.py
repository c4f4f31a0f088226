"""The SCIM 2.0 API: discovery, auth, Users CRUD, the Okta and Entra ID dialects, and offboarding."""

from __future__ import annotations

from sqlalchemy import select

from govern.auth.models import User
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.scim.models import ScimToken
from tests.factories import login, make_account, make_grant, make_person, make_user
from tests.scim.conftest import SCIM

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _person(db, email):
    db.expire_all()
    return db.scalar(select(Person).where(Person.email == email))


def _offboarding(db, person):
    return db.scalar(select(Offboarding).where(Offboarding.person_id == person.id).order_by(Offboarding.id.desc()))


def test_discovery_endpoints_speak_scim_json(scim):
    config = scim.call("GET", "/ServiceProviderConfig")
    assert config.status_code == 200 and config.mimetype == SCIM
    assert config.json["patch"]["supported"] is True and config.json["filter"]["supported"] is True
    schemas = scim.call("GET", "/Schemas").json
    user_schema = next(s for s in schemas["Resources"] if s["id"] == CORE)
    assert {a["name"] for a in user_schema["attributes"]} == {"userName", "name", "displayName", "title", "active", "emails"}
    assert scim.call("GET", f"/Schemas/{ENTERPRISE}").json["id"] == ENTERPRISE
    types = scim.call("GET", "/ResourceTypes").json
    assert types["totalResults"] == 2 and [t["endpoint"] for t in types["Resources"]] == ["/Users", "/Groups"]
    assert scim.call("GET", "/ResourceTypes/Group").json["schema"] == "urn:ietf:params:scim:schemas:core:2.0:Group"
    assert scim.call("GET", "/ResourceTypes/Device").status_code == 404
    assert scim.call("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group").status_code == 200
    assert scim.call("POST", "/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}).status_code == 501


def test_no_valid_token_no_access(app, db, kit, scim):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer gscim_wrong"}, {"Authorization": "Basic abc"}):
        response = client.get("/scim/v2/Users", headers=headers)
        assert response.status_code == 401 and response.mimetype == SCIM
        assert response.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and response.json["status"] == "401"
    # A signed-in admin's session is not a token.
    login(client, db, scim.admin)
    assert client.get("/scim/v2/Users").status_code == 401
    # A revoked token stops working at once.
    row = db.get(ScimToken, scim.row.id)
    from govern.db import utcnow

    row.revoked_at = utcnow()
    db.commit()
    assert scim.call("GET", "/Users").status_code == 401


def test_tokens_are_stored_hashed(db, scim):
    row = db.get(ScimToken, scim.row.id)
    assert scim.token not in (row.token_digest, row.prefix) and scim.token.startswith(row.prefix)


def test_okta_sequence_create_find_deactivate_offboards(db, scim):
    email = "olivia@acme.example"
    assert scim.call("GET", f'/Users?filter=userName eq "{email}"&startIndex=1&count=100').json["totalResults"] == 0
    created = scim.call("POST", "/Users", {
        "schemas": [CORE], "userName": email, "name": {"givenName": "Olivia", "familyName": "Okta"},
        "emails": [{"primary": True, "value": email, "type": "work"}], "displayName": "Olivia Okta", "locale": "en-US",
        "externalId": "00u1abcd", "groups": [], "password": "ignored-by-govern-1", "active": True,
    })
    assert created.status_code == 201, created.json
    user_id = created.json["id"]
    assert created.headers["Location"].endswith(f"/scim/v2/Users/{user_id}")
    assert "password" not in created.json
    person = _person(db, email)
    assert person.source == "scim" and person.full_name == "Olivia Okta" and person.status == "active"
    found = scim.call("GET", f'/Users?filter=userName eq "{email}"&startIndex=1&count=100').json
    assert found["totalResults"] == 1 and found["Resources"][0]["externalId"] == "00u1abcd"
    # Grants on an account, then Okta deactivates: PATCH with no path and a value object.
    account = make_account(db)
    make_grant(db, person, account, "publisher")
    db.commit()
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert response.status_code == 200 and response.json["active"] is False
    person = _person(db, email)
    off = _offboarding(db, person)
    assert off.origin == "scim" and off.kind == "immediate" and off.status == "in_progress"
    assert person.status == "leaving"
    assert db.scalar(select(Grant.status).where(Grant.person_id == person.id)) == "revoked"
    assert db.scalar(select(OffboardingItem.kind).where(OffboardingItem.offboarding_id == off.id)) == "platform_removal"
    # Deactivated users remain readable; a second deactivation changes nothing.
    assert scim.call("GET", f"/Users/{user_id}").json["active"] is False
    scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert len(db.scalars(select(Offboarding).where(Offboarding.person_id == person.id)).all()) == 1


def test_entra_sequence_with_capitalised_replace_and_string_false(db, kit, scim):
    upn = "erik@acme.example"
    response = scim.call("POST", "/Users", {
        "schemas": [CORE, ENTERPRISE], "externalId": "8f2c-entra", "userName": upn, "active": True,
        "displayName": "Erik Entra", "name": {"formatted": "Erik Entra", "givenName": "Erik", "familyName": "Entra"},
        "emails": [{"primary": True, "type": "work", "value": upn}], "title": "Community manager",
        ENTERPRISE: {"employeeNumber": "E-42", "department": "Marketing"},
    })
    assert response.status_code == 201, response.json
    user_id = response.json["id"]
    assert response.json[ENTERPRISE] == {"employeeNumber": "E-42", "department": "Marketing"}
    person = _person(db, upn)
    assert (person.employee_id, person.department, person.title) == ("E-42", "Marketing", "Community manager")
    # Entra looks the user up by userName, then deactivates with "Replace" and the string "False".
    assert scim.call("GET", f'/Users?filter=userName eq "{upn}"').json["Resources"][0]["id"] == user_id
    user = make_user(db, kit, email="erik.login@acme.example")
    user.user.person_id = person.id
    db.commit()
    response = scim.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert response.status_code == 200 and response.json["active"] is False
    person = _person(db, upn)
    assert _offboarding(db, person).status in ("in_progress", "completed")
    assert db.get(User, user.id).is_active is False


def test_put_deactivates_and_reactivates_without_restoring_grants(db, scim):
    body = {"schemas": [CORE], "userName": "pia@acme.example", "name": {"givenName": "Pia", "familyName": "Put"}, "active": True}
    user_id = scim.call("POST", "/Users", body).json["id"]
    person = _person(db, "pia@acme.example")
    account = make_account(db)
    make_grant(db, person, account, "analyst")
    db.commit()
    response = scim.call("PUT", f"/Users/{user_id}", {**body, "active": False})
    assert response.status_code == 200 and response.json["active"] is False
    off = _offboarding(db, _person(db, "pia@acme.example"))
    assert off.status == "in_progress"
    item = db.scalar(select(OffboardingItem).where(OffboardingItem.offboarding_id == off.id))
    item.status = "skipped"
    db.commit()
    # Completing needs the last item closed through the service; do it the way the jobs runner would.
    from govern.offboarding.checklist import complete_if_done

    complete_if_done(db, off, None)
    db.commit()
    assert _person(db, "pia@acme.example").status == "departed"
    response = scim.call("PUT", f"/Users/{user_id}", {**body, "active": True})
    assert response.status_code == 200 and response.json["active"] is True
    person = _person(db, "pia@acme.example")
    assert person.status == "active"
    assert db.scalar(select(Grant.status).where(Grant.person_id == person.id)) == "revoked"


def test_delete_offboards_and_hides_the_user_but_keeps_the_person(db, scim):
    user_id = scim.call("POST", "/Users", {"schemas": [CORE], "userName": "dan@acme.example"}).json["id"]
    assert scim.call("DELETE", f"/Users/{user_id}").status_code == 204
    assert scim.call("GET", f"/Users/{user_id}").status_code == 404
    assert scim.call("GET", '/Users?filter=userName eq "dan@acme.example"').json["totalResults"] == 0
    person = _person(db, "dan@acme.example")
    assert person is not None and _offboarding(db, person).origin == "scim"


def test_pagination_with_start_index_and_count(db, scim):
    for n in range(5):
        make_person(db, email=f"page{n}@acme.example")
    db.commit()
    total = scim.call("GET", "/Users?count=0").json["totalResults"]
    first = scim.call("GET", "/Users?startIndex=1&count=2").json
    second = scim.call("GET", "/Users?startIndex=3&count=2").json
    assert first["totalResults"] == total >= 6 and first["itemsPerPage"] == 2 and second["startIndex"] == 3
    assert not {r["id"] for r in first["Resources"]} & {r["id"] for r in second["Resources"]}


def test_errors_in_the_scim_format(db, scim):
    assert scim.call("GET", '/Users?filter=name.givenName sw "A"').json["scimType"] == "invalidFilter"
    assert scim.call("GET", "/Users/999999").status_code == 404
    assert scim.call("GET", "/Users/abc").json["status"] == "404"
    bad = scim.client.post("/scim/v2/Users", data="{not json", headers={**scim.headers, "Content-Type": SCIM})
    assert bad.status_code == 400 and bad.mimetype == SCIM
    assert scim.call("POST", "/Users", {"schemas": [CORE], "userName": "not-an-email"}).status_code == 400
    scim.call("POST", "/Users", {"schemas": [CORE], "userName": "dup@acme.example"})
    conflict = scim.call("POST", "/Users", {"schemas": [CORE], "userName": "DUP@acme.example"})
    assert conflict.status_code == 409 and conflict.json["scimType"] == "uniqueness"
    assert scim.call("PATCH", "/Users/999999", {"schemas": [PATCH], "Operations": []}).status_code == 404
    assert _person(db, "not-an-email") is None


def test_admins_manage_tokens_on_a_page(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    page = client.get("/admin/scim-tokens/")
    assert page.status_code == 200
    from tests.factories import csrf_from

    response = client.post("/admin/scim-tokens/", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "name": "Entra ID"})
    row = db.scalars(select(ScimToken).where(ScimToken.name == "Entra ID")).one()
    # Post-redirect-get: the token is shown once, on the page the POST redirects to.
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/scim-tokens/{row.id}/created"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "will not show it again" in html and row.prefix in html
    assert client.get(response.headers["Location"]).status_code == 302  # once only
    listing = client.get("/admin/scim-tokens/").get_data(as_text=True)
    assert "Entra ID" in listing and "gscim_" in listing
    token = html.split('id="scim-token">', 1)[1].split("<", 1)[0]
    assert token not in listing
    assert client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    response = client.post(f"/admin/scim-tokens/{row.id}/revoke", data={"csrf_token": csrf_from(listing)})
    assert response.status_code == 302
    assert client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    from govern.audit.models import AuditEvent

    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "scim_token")))
    assert {"scim.token_created", "scim.token_revoked"} <= actions
    assert all(token not in e.details_json for e in db.scalars(select(AuditEvent)))
    hr = make_user(db, kit, roles=("hr",))
    other = app.test_client()
    login(other, db, hr)
    assert other.get("/admin/scim-tokens/").status_code == 403


def test_http_errors_keep_the_scim_format(scim):
    response = scim.client.post("/scim/v2/Users", data={"x": "\x00"}, headers=scim.headers)
    assert response.status_code == 400 and response.mimetype == SCIM and response.json["status"] == "400"
    assert scim.call("DELETE", "/Schemas").status_code == 405
