"""Account pages: permissions, scoping, forms, list filters, query counts."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from govern.accounts.models import Account, PlatformRoleName
from tests.factories import login, make_account, make_grant, make_person, make_user, post


def _signed_in(app, db, kit, *roles):
    who = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, who)
    return who, client


def test_it_registers_and_edits_an_account(app, db, kit):
    owner = make_person(db, email="owner@acme.example")
    db.commit()
    _, client = _signed_in(app, db, kit, "it")
    response = post(client, "/accounts/new", {"platform": "instagram", "handle": "@acme", "display_name": "Acme",
                                               "business_owner": "owner@acme.example", "crisis_contact": "",
                                               "recovery_email_holder": "social-recovery mailbox", "tier": "high",
                                               "status": "active", "rotation_interval_days": 90, "max_credential_holders": 3,
                                               "min_admins": 2}, token_page="/accounts/new")
    assert response.status_code == 302, response.get_data(as_text=True)
    account = db.scalar(select(Account).where(Account.handle == "acme"))
    assert account.business_owner_id == owner.id and account.recovery_email_label == "social-recovery mailbox"
    assert account.url == "https://www.instagram.com/acme"
    page = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "Acme" in page and "Fewer admins than the minimum" in page
    response = post(client, f"/accounts/{account.id}/edit", {"platform": "instagram", "handle": "acme", "display_name": "Acme Official",
                                                             "business_owner": "nobody@acme.example", "tier": "high", "status": "active",
                                                             "rotation_interval_days": 60, "max_credential_holders": 3, "min_admins": 2},
                    token_page=f"/accounts/{account.id}/edit")
    assert response.status_code == 200 and "No one in the directory has the email nobody@acme.example" in response.get_data(as_text=True)


def test_bad_account_input_gets_messages_not_errors(app, db, kit):
    _, client = _signed_in(app, db, kit, "admin")
    response = post(client, "/accounts/new", {"platform": "x", "handle": "this handle is wrong", "display_name": "",
                                               "url": "ftp://x.com/a", "tier": "gold", "status": "active",
                                               "rotation_interval_days": "abc", "max_credential_holders": -1, "min_admins": 0},
                    token_page="/accounts/new")
    assert response.status_code == 200
    assert db.scalar(select(Account).where(Account.display_name == "")) is None


@pytest.mark.parametrize("role,status", [("admin", 200), ("it", 200), ("hr", 200), ("auditor", 200)])
def test_who_sees_the_registry(app, db, kit, role, status):
    account = make_account(db)
    db.commit()
    _, client = _signed_in(app, db, kit, role)
    assert client.get("/accounts/").status_code == status
    assert client.get(f"/accounts/{account.id}").status_code == status


def test_managers_see_only_their_accounts_and_staff_none(app, db, kit):
    manager, client = _signed_in(app, db, kit, "manager")
    mine = make_account(db, business_owner_id=manager.user.person_id, display_name="Mine")
    theirs = make_account(db, display_name="Theirs")
    db.commit()
    listing = client.get("/accounts/").get_data(as_text=True)
    assert "Mine" in listing and "Theirs" not in listing
    assert client.get(f"/accounts/{mine.id}").status_code == 200
    assert client.get(f"/accounts/{theirs.id}").status_code == 404
    assert client.get("/accounts/999999").status_code == 404
    _, staff = _signed_in(app, db, kit)
    assert staff.get("/accounts/").status_code == 403
    assert post(client, f"/accounts/{mine.id}/edit", {"platform": "x"}, token_page="/grants/").status_code == 403


def test_list_filters(app, db, kit):
    make_account(db, platform="x", handle="alpha", url="https://x.com/alpha", display_name="Alpha")
    make_account(db, platform="instagram", handle="beta", display_name="Beta", status="archived")
    db.commit()
    _, client = _signed_in(app, db, kit, "admin")
    page = client.get("/accounts/?platform=x").get_data(as_text=True)
    assert "Alpha" in page and "Beta" not in page
    page = client.get("/accounts/?status=archived").get_data(as_text=True)
    assert "Beta" in page and "Alpha" not in page
    page = client.get("/accounts/?risk=few_admins&q=alp").get_data(as_text=True)
    assert "Alpha" in page and "Beta" not in page
    assert client.get("/accounts/?risk=nonsense&page=-3&platform=zzz").status_code == 200


def _count_statements(connection, fn):
    fn()  # warm up: the session's last-seen stamp is written at most once a minute
    statements = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(connection.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(connection.engine, "before_cursor_execute", before)
    return len(statements)


def test_account_list_and_page_queries_do_not_grow_with_rows(app, db, kit, connection):
    _, client = _signed_in(app, db, kit, "admin")
    first = make_account(db, business_owner_id=make_person(db).id)
    for _ in range(3):
        make_grant(db, make_person(db), first, "analyst")
    db.commit()
    small_list = _count_statements(connection, lambda: client.get("/accounts/"))
    small_page = _count_statements(connection, lambda: client.get(f"/accounts/{first.id}"))
    for n in range(40):
        account = make_account(db, business_owner_id=make_person(db).id)
        make_grant(db, make_person(db), account, "publisher")
    for _ in range(30):
        make_grant(db, make_person(db), first, "analyst")
    db.commit()
    assert _count_statements(connection, lambda: client.get("/accounts/")) == small_list
    assert _count_statements(connection, lambda: client.get(f"/accounts/{first.id}")) == small_page


def test_admins_edit_platform_role_names(app, db, kit):
    _, client = _signed_in(app, db, kit, "admin")
    mapping = db.scalar(select(PlatformRoleName).where(PlatformRoleName.platform == "linkedin", PlatformRoleName.role_code == "admin"))
    assert mapping.platform_role == "Super admin"
    page = client.get("/accounts/roles").get_data(as_text=True)
    assert "Super admin" in page and "TikTok Business Center" in page and "Google Brand Account" in page
    post(client, f"/accounts/roles/mappings/{mapping.id}", {"platform_role": "Super admin (Page)"}, token_page="/accounts/roles")
    db.expire_all()
    assert db.get(PlatformRoleName, mapping.id).platform_role == "Super admin (Page)"
    _, it_client = _signed_in(app, db, kit, "it")
    assert post(it_client, f"/accounts/roles/mappings/{mapping.id}", {"platform_role": "x"}, token_page="/accounts/roles").status_code == 403


def test_account_page_lists_every_holder_whatever_the_length_of_the_history(app, db, kit):
    from govern.accounts.views import HISTORY_SIZE

    account = make_account(db, display_name="Long History")
    veteran = make_person(db, full_name="Vera Veteran")
    make_grant(db, veteran, account, "admin")  # the oldest grant of all, still active
    for _ in range(HISTORY_SIZE + 5):
        make_grant(db, make_person(db, full_name="Former Holder"), account, "analyst", status="expired")
    db.commit()
    _, client = _signed_in(app, db, kit, "auditor")
    page = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    holders = page.split("Holders by role", 1)[1].split("History of grants", 1)[0]
    assert "Vera Veteran" in holders
    assert f"The latest {HISTORY_SIZE} grants" in page
    assert 'id="secrets"' in page and "Secrets (0)" in page
    # A risk-free admin count: the veteran is the one admin, below the minimum of two.
    assert "Fewer admins than the minimum: 1 of at least 2" in page


def test_account_page_marks_holders_who_have_not_accepted_the_policy(app, db, kit):
    from tests.factories import accept_policy, publish_policy

    account = make_account(db, display_name="Policy Check")
    policy = publish_policy(db, "standard")
    careful, careless = make_person(db, full_name="Carla Careful"), make_person(db, full_name="Cody Careless")
    accept_policy(db, careful, policy)
    make_grant(db, careful, account, "publisher")
    make_grant(db, careless, account, "analyst")
    db.commit()
    _, client = _signed_in(app, db, kit, "auditor")
    page = client.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "Holders who have not accepted the current policy: 1 holder(s)" in page
    holders = {line.split("</a>")[0].rsplit(">", 1)[-1]: line for line in page.split('<li>') if "policy not accepted" in line or "Carla" in line}
    assert "policy not accepted" in holders["Cody Careless"] and "policy not accepted" not in holders["Carla Careful"]


def test_the_account_page_links_people_and_revoke_forms_under_the_mount_point(app, db, kit):
    """Behind a proxy that mounts govern at /govern, every link of the page keeps that prefix."""
    account = make_account(db, display_name="Mounted")
    holder = make_person(db, full_name="Hana Holder")
    grant = make_grant(db, holder, account, "publisher")
    db.commit()
    _, client = _signed_in(app, db, kit, "admin")
    page = client.get(f"/accounts/{account.id}", base_url="http://localhost/govern").get_data(as_text=True)
    assert f'<a href="/govern/people/{holder.id}">Hana Holder</a>' in page
    assert f'action="/govern/grants/{grant.id}/revoke"' in page
    assert 'href="/people/' not in page and 'action="/grants/' not in page
