"""Grant pages: a manager grants, a second person approves, revoke and confirm the platform removal."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from govern.db import Database, utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.schema import upgrade
from tests.factories import accept_policy, login, make_account, make_grant, make_person, make_user, post, publish_policy


def test_manager_grants_time_bound_publisher_through_the_page(app, db, kit):
    manager = make_user(db, kit, roles=("manager",))
    account = make_account(db, business_owner_id=manager.user.person_id)
    colleague = make_person(db, email="colleague@acme.example")
    accept_policy(db, colleague, publish_policy(db, "standard"))
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    form = client.get(f"/grants/new?account_id={account.id}").get_data(as_text=True)
    assert "Meta business portfolio: Partial access: Content" in form  # the platform's own names
    until = (utcnow() + timedelta(days=20)).date().isoformat()
    response = post(client, f"/grants/new?account_id={account.id}", {"account_id": account.id, "person": "colleague@acme.example",
                                                                     "role_code": "publisher", "expires_on": until, "reason": "Campaign"},
                    token_page=f"/grants/new?account_id={account.id}")
    assert response.status_code == 302, response.get_data(as_text=True)
    grant = db.scalar(select(Grant).where(Grant.person_id == colleague.id))
    assert grant.status == "active" and grant.expires_at.date().isoformat() == until


def test_rule_violations_show_their_message(app, db, kit):
    manager = make_user(db, kit, roles=("manager",))
    account = make_account(db, business_owner_id=manager.user.person_id)
    make_person(db, email="newbie@acme.example")
    publish_policy(db, "standard")
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    response = post(client, f"/grants/new?account_id={account.id}", {"account_id": account.id, "person": "newbie@acme.example",
                                                                     "role_code": "publisher", "reason": "x"},
                    token_page=f"/grants/new?account_id={account.id}")
    assert response.status_code == 200 and "must first accept the current standard policy" in response.get_data(as_text=True)


def test_admin_grant_waits_for_another_user_to_approve(app, db, kit):
    manager = make_user(db, kit, roles=("manager",))
    approver = make_user(db, kit, roles=("admin",))
    account = make_account(db, business_owner_id=manager.user.person_id)
    report = make_person(db, email="deputy@acme.example", manager_id=manager.user.person_id)
    accept_policy(db, report, publish_policy(db, "privileged"))
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    post(client, f"/grants/new?account_id={account.id}", {"account_id": account.id, "person": "deputy@acme.example",
                                                          "role_code": "admin", "reason": "Second admin"}, token_page="/grants/")
    grant = db.scalar(select(Grant).where(Grant.person_id == report.id))
    assert grant.status == "requested"
    assert "Waiting for your decision" not in client.get("/grants/").get_data(as_text=True)  # not the requester's to decide
    response = post(client, f"/grants/{grant.id}/approve", {}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "requested"
    other = app.test_client()
    login(other, db, approver)
    assert "Waiting for your decision (1)" in other.get("/grants/").get_data(as_text=True)
    post(other, f"/grants/{grant.id}/approve", {"note": "ok"}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active"
    assert response.status_code == 302


def test_a_revealing_grant_on_someone_elses_account_waits_for_its_owner(app, db, kit):
    owner = make_user(db, kit, roles=("manager",), full_name="Olga Owner")
    manager = make_user(db, kit, roles=("manager",))
    admin = make_user(db, kit, roles=("admin",))
    account = make_account(db, business_owner_id=owner.user.person_id)
    report = make_person(db, email="rita@acme.example", manager_id=manager.user.person_id)
    accept_policy(db, report, publish_policy(db, "standard"))
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    response = post(client, f"/grants/new?account_id={account.id}", {"account_id": account.id, "person": "rita@acme.example",
                                                                     "role_code": "publisher", "reason": "Launch"},
                    token_page=f"/grants/new?account_id={account.id}", follow_redirects=True)
    assert "waits for the approval of Olga Owner, the account&#39;s business owner" in response.get_data(as_text=True)
    grant = db.scalar(select(Grant).where(Grant.person_id == report.id))
    assert grant.status == "requested"
    admins = app.test_client()
    login(admins, db, admin)
    assert "Waiting for your decision" not in admins.get("/grants/").get_data(as_text=True)
    post(admins, f"/grants/{grant.id}/approve", {}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "requested"
    owners = app.test_client()
    login(owners, db, owner)
    assert "Waiting for your decision (1)" in owners.get("/grants/").get_data(as_text=True)
    post(owners, f"/grants/{grant.id}/approve", {"note": "ok"}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active" and db.get(Grant, grant.id).approved_by_id == owner.id


def test_revoke_then_confirm_the_platform_removal(app, db, kit):
    manager = make_user(db, kit, roles=("manager",))
    it = make_user(db, kit, roles=("it",))
    account = make_account(db, platform="x", handle="acme", url="https://x.com/acme", business_owner_id=manager.user.person_id)
    grant = make_grant(db, make_person(db), account, "publisher")
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    assert post(client, f"/grants/{grant.id}/revoke", {"reason": ""}, token_page="/grants/").status_code == 302
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active"
    post(client, f"/grants/{grant.id}/revoke", {"reason": "campaign over", "next": f"/accounts/{account.id}"}, token_page="/grants/")
    db.expire_all()
    removal = db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == grant.id))
    assert removal.platform_role == "X Contributor"
    page = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "Removals from X to confirm" in page
    it_client = app.test_client()
    login(it_client, db, it)
    post(it_client, f"/grants/removals/{removal.id}/confirm", {"note": "removed in settings", "next": "https://evil.example"}, token_page="/grants/")
    db.expire_all()
    assert db.get(PlatformRemoval, removal.id).confirmed_at is not None


def test_staff_request_access_and_withdraw(app, db, kit):
    staffer = make_user(db, kit)
    account = make_account(db)
    db.commit()
    client = app.test_client()
    login(client, db, staffer)
    assert client.get(f"/grants/request?account_id={account.id}").status_code == 200
    post(client, "/grants/request", {"account_id": account.id, "role_code": "analyst", "reason": "reporting"}, token_page="/grants/")
    grant = db.scalar(select(Grant).where(Grant.person_id == staffer.user.person_id))
    assert grant.status == "requested"
    post(client, f"/grants/{grant.id}/reject", {"note": "Withdrawn by the requester."}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "rejected"
    # Staff cannot grant or approve.
    assert post(client, f"/grants/{grant.id}/approve", {}, token_page="/grants/").status_code == 403


def test_a_stranger_cannot_decide_or_revoke_others_grants(app, db, kit):
    manager = make_user(db, kit, roles=("manager",))
    grant = make_grant(db, make_person(db), make_account(db), "analyst")
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    post(client, f"/grants/{grant.id}/revoke", {"reason": "because"}, token_page="/grants/")
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active"
    assert post(client, "/grants/999999/revoke", {"reason": "x"}, token_page="/grants/").status_code == 404


def test_grants_expire_command(tmp_path, scratch_database_url):
    upgrade(scratch_database_url)
    database = Database(scratch_database_url)
    with database.session_scope() as session:
        account = make_account(session)
        person = make_person(session)
        make_grant(session, person, account, "analyst", expires_at=utcnow() - timedelta(minutes=1))
        session.commit()
    database.engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path), "GOVERN_DATABASE_URL": scratch_database_url, "GOVERN_SECRET_KEY": "s" * 40})
    govern = str(Path(sys.executable).parent / "govern")
    first = subprocess.run([govern, "grants", "expire"], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0 and "expired 1 grant(s)" in first.stdout, first.stderr
    second = subprocess.run([govern, "grants", "expire"], capture_output=True, text=True, env=env, timeout=120)
    assert "expired 0 grant(s)" in second.stdout
    verify = subprocess.run([govern, "audit", "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert verify.returncode == 0


def test_the_grant_form_asks_for_the_account_first_then_shows_each_roles_platform_names(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    linkedin = make_account(db, platform="linkedin", handle="acme-corp", url="https://www.linkedin.com/company/acme-corp")
    locked = make_account(db, status="locked")
    db.commit()
    client = app.test_client()
    login(client, db, admin)
    chooser = client.get("/grants/new").get_data(as_text=True)
    assert 'id="choose-account"' in chooser and 'name="role_code"' not in chooser
    form = client.get(f"/grants/new?account_id={linkedin.id}").get_data(as_text=True)
    assert f'<input type="hidden" name="account_id" value="{linkedin.id}">' in form
    for code in ("owner", "admin", "publisher", "moderator", "advertiser", "analyst"):
        assert f'name="role_code" value="{code}"' in form
    assert "On LinkedIn: LinkedIn Page: Super admin" in form and "LinkedIn Page: Content admin" in form
    # A locked account takes no grants: the page goes back to choosing one.
    assert 'id="choose-account"' in client.get(f"/grants/new?account_id={locked.id}").get_data(as_text=True)
    request_page = client.get(f"/grants/request?account_id={linkedin.id}").get_data(as_text=True)
    assert "On LinkedIn: LinkedIn Page: Super admin" in request_page
