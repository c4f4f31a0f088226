"""The groups pages: an admin maps a group, a second admin approves, a member gets the role; others see nothing."""

from __future__ import annotations

from sqlalchemy import select

from govern.groups import services as groups
from govern.groups.models import GroupMapping
from tests.factories import csrf_from, make_account, make_user, post, publish_policy, signed_in


def test_admins_map_a_group_and_a_second_admin_approves(app, db, kit):
    ada, ada_client = signed_in(app, db, kit, "admin")
    bo, bo_client = signed_in(app, db, kit, "admin")
    ivy = make_user(db, kit, full_name="Ivy Member")
    account = make_account(db, display_name="Acme on TikTok")
    publish_policy(db, "privileged")
    group = groups.create_group(db, actor=None, display_name="Social admins", external_id="entra-0001",
                                member_ids=[ivy.user.person_id])
    db.commit()
    listing = ada_client.get("/admin/groups/").get_data(as_text=True)
    assert "Social admins" in listing and "entra-0001" in listing
    page = ada_client.get(f"/admin/groups/{group.id}")
    assert page.status_code == 200 and "Ivy Member" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    # Both kinds at once is refused; nothing is saved.
    both = ada_client.post(f"/admin/groups/{group.id}/mappings", data={"csrf_token": token, "app_role": "it",
                                                                       "account_id": account.id, "role_code": "admin"})
    assert both.status_code == 400 and db.scalars(select(GroupMapping)).all() == []
    response = ada_client.post(f"/admin/groups/{group.id}/mappings", data={"csrf_token": token, "app_role": "",
                                                                           "account_id": account.id, "role_code": "admin"})
    assert response.status_code == 302
    mapping = db.scalars(select(GroupMapping)).one()
    assert mapping.status == "pending"
    assert "another admin approves" in ada_client.get("/admin/groups/").get_data(as_text=True)
    # The proposer cannot approve; the second admin can.
    post(ada_client, f"/admin/groups/mappings/{mapping.id}/approve", token_page="/admin/groups/")
    db.expire_all()
    assert db.get(GroupMapping, mapping.id).status == "pending"
    assert post(bo_client, f"/admin/groups/mappings/{mapping.id}/approve", token_page="/admin/groups/").status_code == 302
    db.expire_all()
    assert db.get(GroupMapping, mapping.id).status == "active"
    detail = bo_client.get(f"/admin/groups/{group.id}").get_data(as_text=True)
    assert "1 waiting policy" in detail  # the admin role is privileged: Ivy accepts that policy first
    assert post(bo_client, f"/admin/groups/mappings/{mapping.id}/remove", token_page="/admin/groups/").status_code == 302
    assert db.scalars(select(GroupMapping)).all() == []


def test_only_admins_see_and_change_groups(app, db, kit):
    group = groups.create_group(db, actor=None, display_name="Anything", external_id=None)
    db.commit()
    _, manager = signed_in(app, db, kit, "manager")
    assert manager.get("/admin/groups/").status_code == 403
    assert manager.get(f"/admin/groups/{group.id}").status_code == 403
    _, auditor = signed_in(app, db, kit, "auditor")
    page = auditor.get(f"/admin/groups/{group.id}")  # auditors read users, and so groups, but change nothing
    assert page.status_code == 200 and "Save mapping" not in page.get_data(as_text=True)
    assert post(auditor, f"/admin/groups/{group.id}/mappings", {"app_role": "it"},
                token_page=f"/admin/groups/{group.id}").status_code == 403
