"""Each role's home page shows what is waiting for them (issue 16, section 5)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from govern.db import utcnow
from govern.notifications.models import Notification, OutboxMessage
from govern.offboarding.checklist import choose_successor, complete_item
from govern.offboarding.models import OffboardingItem
from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.start import generate_items
from govern.rotation.tasks import open_task
from tests.factories import csrf_token, login, make_account, make_grant, make_person, make_user
from tests.offboarding.helpers import SETTINGS


def _client(app, db, who):
    client = app.test_client()
    login(client, db, who)
    return client


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<li id="{section_id}">(.*?)</li>\s*(?:{{%|<li id=|</ul>\s*</section>)', html, re.S)
    assert match, f"{section_id} not on the page"
    return match.group(1)


def _start_lea(db, company):
    started = schedule_offboarding(db, actor=company.hr, person=company.person, effective_at=None,
                                               settings=SETTINGS)
    db.commit()
    return started


def test_the_manager_is_told_to_pick_successors_and_sees_them_at_home(app, db, company):
    with app.test_request_context():
        off = _start_lea(db, company)
    picks = db.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == off.id,
                                                     OffboardingItem.kind == "successor")).all()
    assert len(picks) == 2 and {i.owner_person_id for i in picks} == {company.max.person_id}
    # One notice and one email for the whole offboarding, naming the accounts, linking the checklist.
    notes = db.scalars(select(Notification).where(Notification.user_id == company.max.id,
                                                  Notification.kind == "offboarding.successor_needed")).all()
    assert len(notes) == 1 and "Lea Leaver" in notes[0].title
    assert "Acme Instagram" in notes[0].body and "Acme LinkedIn" in notes[0].body
    assert notes[0].link.startswith(f"/offboarding/{off.id}#item-")
    mails = db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "offboarding.successor_needed")).all()
    assert [m.to_address for m in mails] == [company.max.email]
    # Redoing the checklist sends nothing twice.
    with app.test_request_context():
        generate_items(db, off, actor=company.hr)
    db.commit()
    assert len(db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "offboarding.successor_needed")).all()) == 1

    html = _client(app, db, company.users["max"]).get("/").get_data(as_text=True)
    section = _section(html, "waiting-successors")
    assert "2 successors to pick" in section
    assert "Acme LinkedIn" in section and "Acme Instagram" in section and "Lea Leaver is leaving" in section
    assert f"/offboarding/{off.id}#item-" in section
    assert 'id="grant-a-role"' in html and 'href="/grants/new"' in html
    # Once picked and done, the pick leaves the home page.
    for item in picks:
        choose_successor(db, actor=company.max, offboarding=off, account_id=item.account_id,
                                     successor_id=company.sam.id)
        complete_item(db, actor=company.max, item=item, note="done")
    db.commit()
    html = _client(app, db, company.users["max"]).get("/").get_data(as_text=True)
    assert 'id="waiting-successors"' not in html


def test_a_manager_without_a_login_leaves_the_picks_to_hr_and_no_notice_is_written(app, db, company):
    company.max.is_active = False
    db.commit()
    with app.test_request_context():
        _start_lea(db, company)
    assert db.scalars(select(Notification).where(Notification.kind == "offboarding.successor_needed")).all() == []


def test_the_manager_sees_the_requests_they_may_decide(app, db, kit):
    boss = make_user(db, kit, roles=("manager",), full_name="Bea Boss")
    report = make_person(db, full_name="Rita Report", manager_id=boss.user.person_id)
    stranger = make_person(db, full_name="Stan Stranger")
    mine = make_account(db, display_name="Boss Account", business_owner_id=boss.user.person_id)
    other = make_account(db, display_name="Other Account")
    make_grant(db, report, other, "publisher", status="requested")       # their report: may decide
    make_grant(db, stranger, mine, "analyst", status="requested")        # their account: may decide
    make_grant(db, stranger, other, "analyst", status="requested")       # neither: not listed
    make_grant(db, boss.user.person, mine, "admin", status="requested")  # their own: never
    db.commit()
    html = _client(app, db, boss).get("/").get_data(as_text=True)
    section = _section(html, "waiting-approvals")
    assert "2 requests to approve or reject" in section
    assert "Rita Report" in section and "Boss Account" in section and "Other Account · " not in section
    assert 'href="/grants/#waiting"' in section
    # The same queue the Access page decides from.
    access = _client(app, db, boss).get("/grants/").get_data(as_text=True)
    assert "Waiting for your decision (2)" in access


def test_it_sees_rotation_tasks_due_and_overdue_and_removals_to_confirm(app, db, kit):
    it = make_user(db, kit, roles=("it",))
    account = make_account(db, display_name="Acme Rotating")
    person = make_person(db, full_name="Gone Soon")
    grant = make_grant(db, person, account, "analyst")
    from govern.grants import services as grants
    from govern.vault.models import Secret

    secret = Secret(account_id=account.id, kind="password", label="Main password")
    db.add(secret)
    db.flush()
    with app.test_request_context():
        open_task(db, actor=None, secret=secret, reason="manual", due_at=utcnow() - timedelta(days=1))
        grants.revoke_grant(db, actor=None, grant=grant, reason="left the team", check_permission=False)
    db.commit()
    html = _client(app, db, it).get("/").get_data(as_text=True)
    rot = _section(html, "waiting-rotation")
    assert "1 rotation task overdue" in rot and "Main password of Acme Rotating" in rot
    removals = _section(html, "waiting-removals")
    assert "1 removal from platforms to confirm" in removals and "Acme Rotating" in removals
    assert f'href="/accounts/{account.id}"' in removals
    assert 'id="grant-a-role"' not in html  # IT grants nothing


def test_hr_sees_offboardings_in_progress_overdue_and_scheduled(app, db, company):
    with app.test_request_context():
        off = _start_lea(db, company)
        off.due_at = utcnow() - timedelta(hours=1)
        schedule_offboarding(db, actor=company.hr, person=company.sam, effective_at=utcnow() + timedelta(days=5),
                                         settings=SETTINGS)
    db.commit()
    html = _client(app, db, company.users["hr"]).get("/").get_data(as_text=True)
    section = _section(html, "waiting-offboardings")
    assert "1 offboarding in progress" in section and "1 past the deadline" in section and "1 scheduled" in section


def test_admin_sees_approvals_and_leavers_scim_tokens_to_revoke(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    leaver = make_user(db, kit, roles=("admin",), full_name="Tom Token")
    from govern.scim import services as scim

    with app.test_request_context():
        scim.create_token(db, actor=leaver.user, name="okta")
        person = make_person(db)
        make_grant(db, person, make_account(db, display_name="Needs Yes"), "owner", status="requested")
        schedule_offboarding(db, actor=admin.user, person=leaver.user.person, effective_at=None,
                                         settings=SETTINGS)
    db.commit()
    html = _client(app, db, admin).get("/").get_data(as_text=True)
    assert "Needs Yes" in _section(html, "waiting-approvals")
    assert "1 SCIM token of leavers to revoke" in _section(html, "waiting-admin-items")
    assert "1 offboarding in progress" in _section(html, "waiting-offboardings")


def test_staff_see_their_own_pending_requests_and_no_grant_action(app, db, kit):
    staff = make_user(db, kit, full_name="Stella Staff")
    make_grant(db, staff.user.person, make_account(db, display_name="Wanted Account"), "publisher", status="requested")
    db.commit()
    client = _client(app, db, staff)
    html = client.get("/").get_data(as_text=True)
    section = _section(html, "waiting-my-requests")
    assert "Your 1 request waiting for a decision" in section and "Publisher on Wanted Account" in section
    assert 'id="grant-a-role"' not in html and 'id="waiting-approvals"' not in html
    assert csrf_token(client, "/account")  # still signed in
