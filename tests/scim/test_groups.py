"""SCIM /Groups: the request sequences Entra ID and Okta send (from their provisioning documentation),
replayed against govern, and the errors a client gets for what govern cannot take."""

from __future__ import annotations

import json

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.groups import mappings
from govern.groups import services as groups
from govern.groups.models import DirectoryGroup, GroupMember
from tests.factories import make_person, make_user

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _members(db, group_id):
    db.expire_all()
    return sorted(db.scalars(select(GroupMember.person_id).where(GroupMember.group_id == group_id)))


def test_entra_id_group_sequence(scim, db):
    ann, bob = make_person(db, email="ann@example.com"), make_person(db, email="bob@example.com")
    db.commit()
    created = scim.call("POST", "/Groups", {
        "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Social media IT",
        "meta": {"resourceType": "Group"}})
    assert created.status_code == 201, created.json
    group_id = created.json["id"]
    assert created.headers["Location"].endswith(f"/scim/v2/Groups/{group_id}")
    assert created.json["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    # Entra looks the group up by name, without its members.
    found = scim.call("GET", '/Groups?excludedAttributes=members&filter=displayName eq "Social media IT"')
    assert found.json["totalResults"] == 1 and "members" not in found.json["Resources"][0]
    # Add, then remove members ("Add"/"Remove" capitalised, a list of {"$ref": null, "value": id}).
    add = scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": str(ann.id)}, {"value": str(bob.id)}]}]})
    assert add.status_code == 204
    assert _members(db, int(group_id)) == [ann.id, bob.id]
    remove = scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": str(ann.id)}]}]})
    assert remove.status_code == 204 and _members(db, int(group_id)) == [bob.id]
    rename = scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Social media IT (EU)"}]})
    assert rename.status_code == 204
    got = scim.call("GET", f"/Groups/{group_id}?excludedAttributes=members").json
    assert got["displayName"] == "Social media IT (EU)" and "members" not in got
    full = scim.call("GET", f"/Groups/{group_id}").json
    assert [m["value"] for m in full["members"]] == [str(bob.id)]
    assert full["members"][0]["$ref"].endswith(f"/scim/v2/Users/{bob.id}")
    assert scim.call("DELETE", f"/Groups/{group_id}").status_code == 204
    assert scim.call("GET", f"/Groups/{group_id}").status_code == 404
    assert db.scalars(select(DirectoryGroup)).all() == []
    actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("group.%")).order_by(AuditEvent.id))]
    assert actions == ["group.created", "group.members_changed", "group.members_changed", "group.updated", "group.deleted"]
    labels = {e.actor_label for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("group.%")))}
    assert labels == {f"scim:okta production (token #{scim.row.id})"}


def test_okta_group_push_sequence(scim, db):
    ann, bob = make_person(db, email="ann@example.com"), make_person(db, email="bob@example.com")
    db.commit()
    assert scim.call("GET", '/Groups?filter=displayName eq "Test SCIMv2"&startIndex=1&count=100').json["totalResults"] == 0
    created = scim.call("POST", "/Groups", {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []})
    assert created.status_code == 201
    group_id = created.json["id"]
    assert scim.call("GET", f"/Groups/{group_id}").json["displayName"] == "Test SCIMv2"
    # Okta pushes the whole group with PUT.
    put = scim.call("PUT", f"/Groups/{group_id}", {"schemas": [GROUP], "id": group_id, "displayName": "Test SCIMv2",
                                                   "members": [{"value": str(ann.id), "display": "ann@example.com"},
                                                               {"value": str(bob.id), "display": "bob@example.com"}]})
    assert put.status_code == 200, put.json
    assert {m["display"] for m in put.json["members"]} == {"ann@example.com", "bob@example.com"}
    # Remove by a filtered path, add with a list, rename with a value object.
    assert scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{ann.id}"]'}]}).status_code == 204
    assert _members(db, int(group_id)) == [bob.id]
    assert scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": str(ann.id), "display": "ann@example.com"}]}]}).status_code == 204
    assert _members(db, int(group_id)) == [ann.id, bob.id]
    assert scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"id": group_id, "displayName": "Test SCIMv2 renamed"}}]}).status_code == 204
    assert scim.call("GET", f"/Groups/{group_id}").json["displayName"] == "Test SCIMv2 renamed"
    # Adding someone twice is no change; a PUT without members empties the group.
    scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": str(ann.id)}]}]})
    assert _members(db, int(group_id)) == [ann.id, bob.id]
    assert scim.call("PUT", f"/Groups/{group_id}", {"schemas": [GROUP], "displayName": "Test SCIMv2 renamed"}).status_code == 200
    assert _members(db, int(group_id)) == []
    assert scim.call("DELETE", f"/Groups/{group_id}").status_code == 204


def test_what_govern_cannot_take_is_a_scim_error_that_changes_nothing(scim, db):
    ann = make_person(db, email="ann@example.com")
    db.commit()
    group_id = scim.call("POST", "/Groups", {"schemas": [GROUP], "displayName": "Publishers",
                                             "members": [{"value": str(ann.id)}]}).json["id"]
    before = scim.call("GET", f"/Groups/{group_id}").json

    def scim_error(response, status, kind=None):
        body = response.json
        return (response.status_code == status and body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
                and (kind is None or body.get("scimType") == kind))

    assert scim_error(scim.call("POST", "/Groups", {"schemas": [GROUP], "displayName": "publishers"}), 409, "uniqueness")
    assert scim_error(scim.call("POST", "/Groups", {"schemas": [GROUP], "displayName": "X", "members": [{"value": "999999"}]}),
                      400, "invalidValue")
    assert scim_error(scim.call("POST", "/Groups", {"schemas": [GROUP], "displayName": " "}), 400)
    for operations, kind in (
        ([{"op": "Add", "path": "members", "value": [{"value": "not-a-user"}]}], "invalidValue"),
        ([{"op": "Add", "path": "members", "value": [{"value": "999999"}]}], "invalidValue"),
        ([{"op": "move", "path": "members", "value": []}], "invalidSyntax"),
        ([{"op": "replace", "path": "owner", "value": "x"}], "invalidPath"),
        ([{"op": "remove", "path": "displayName"}], "mutability"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "replace", "value": {"color": "red"}}], "invalidPath"),
        ([{"op": "Remove", "path": "members", "value": [{"value": str(ann.id)}]},  # the first op would apply...
          {"op": "Add", "path": "members", "value": [{"value": "999999"}]}], "invalidValue"),  # ...but the second fails
        ("nope", "invalidSyntax"),
    ):
        response = scim.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH], "Operations": operations})
        assert scim_error(response, 400, kind), (operations, response.json)
    assert scim.call("GET", f"/Groups/{group_id}").json == before  # all or nothing
    assert scim_error(scim.call("GET", '/Groups?filter=displayName co "Pub"'), 400, "invalidFilter")
    assert scim_error(scim.call("GET", "/Groups/123456789"), 404)
    assert scim_error(scim.call("GET", "/Groups/abc"), 404)
    assert scim_error(scim.call("PATCH", "/Groups/987654", {"schemas": [PATCH], "Operations": []}), 404)
    assert scim.call("GET", '/Groups?filter=externalId eq "none"').json["totalResults"] == 0
    assert scim.call("GET", f'/Groups?filter=id eq "{group_id}"').json["totalResults"] == 1
    assert json.loads(scim.call("GET", "/Groups?count=0").data)["totalResults"] == 1


def test_scim_membership_changes_drive_the_mappings(scim, db, kit):
    """Through the SCIM API, as an identity provider drives it."""
    ada = scim.admin.user
    ivy = make_user(db, kit, full_name="Ivy")
    db.commit()
    created = scim.call("POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                                 "displayName": "Auditors"})
    group = groups.get_group(db, int(created.json["id"]))
    mappings.propose(db, actor=ada, group=group, app_role="auditor")
    db.commit()
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "Add", "path": "members", "value": [{"value": str(ivy.user.person_id)}]}]}
    assert scim.call("PATCH", f"/Groups/{group.id}", patch).status_code == 204
    db.expire_all()
    assert "auditor" in ivy.user.roles
    assert scim.call("DELETE", f"/Groups/{group.id}").status_code == 204
    db.expire_all()
    assert "auditor" not in ivy.user.roles
