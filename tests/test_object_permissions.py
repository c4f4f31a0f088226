"""Object-level permissions across the registry, one table: a manager sees and changes only their
own accounts and their reports; an auditor reads everything and changes nothing.

The role matrix (tests/test_permissions.py) checks app roles per endpoint; this file checks the
objects behind them, with real rows, and that a refused change left the rows as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.directory.models import Person
from govern.grants.models import Grant, PlatformRemoval
from govern.reviews.models import ReviewCampaign, ReviewItem
from tests.factories import csrf_token, login, make_account, make_grant, make_person, make_user


@dataclass
class World:
    """A manager's own account and report, and everything outside their scope."""

    own_account: int
    foreign_account: int
    report: int
    stranger: int
    own_grant: int  # a stranger's grant on the manager's account
    report_grant: int  # the report's grant on a foreign account
    foreign_grant: int  # a stranger's grant on a foreign account
    foreign_removal: int
    foreign_item: int  # a review item assigned to someone else
    hidden_account: int  # no link at all to the manager or their reports
    hidden_person: int
    stranger_email: str


@pytest.fixture
def world(db: Any, kit: Any) -> tuple[World, dict[str, Any]]:
    manager = make_user(db, kit, roles=("manager",))
    auditor = make_user(db, kit, roles=("auditor",))
    admin = make_user(db, kit, roles=("admin",))
    boss = make_person(db, full_name="Other Owner")
    own = make_account(db, business_owner_id=manager.user.person_id, display_name="Own Account")
    foreign = make_account(db, business_owner_id=boss.id, display_name="Foreign Account")
    report = make_person(db, full_name="Rita Report", manager_id=manager.user.person_id)
    stranger = make_person(db, full_name="Sam Stranger", manager_id=boss.id)
    own_grant = make_grant(db, stranger, own, "analyst")
    report_grant = make_grant(db, report, foreign, "analyst")
    foreign_grant = make_grant(db, stranger, foreign, "moderator")
    ended = make_grant(db, boss, foreign, "analyst", status="revoked")
    removal = PlatformRemoval(grant_id=ended.id, account_id=foreign.id, person_id=boss.id, platform_role="Instagram Analyst")
    db.add(removal)
    campaign = ReviewCampaign(name="Q4", scope_kind="all", due_at=own_grant.starts_at.replace(year=2099))
    db.add(campaign)
    db.flush()
    item = ReviewItem(campaign_id=campaign.id, grant_id=foreign_grant.id, reviewer_id=boss.id)
    db.add(item)
    hidden = make_account(db, business_owner_id=boss.id, display_name="Hidden Account")
    hidden_person = make_person(db, full_name="Hal Hidden", manager_id=boss.id)
    make_grant(db, hidden_person, hidden, "analyst")
    db.commit()
    w = World(own.id, foreign.id, report.id, stranger.id, own_grant.id, report_grant.id, foreign_grant.id,
              removal.id, item.id, hidden.id, hidden_person.id, stranger.email)
    return w, {"manager": manager, "auditor": auditor, "admin": admin}


#: (role, path, status): what a GET answers.
READS = [
    ("manager", "/accounts/{own_account}", 200),
    ("manager", "/accounts/{foreign_account}", 404),
    ("manager", "/people/{report}", 200),
    ("manager", "/people/{stranger}", 404),
    ("manager", "/reports/accounts/{own_account}", 200),
    ("manager", "/reports/accounts/{hidden_account}", 404),
    ("manager", "/reports/people/{report}", 200),
    ("manager", "/reports/people/{hidden_person}", 404),
    ("auditor", "/accounts/{own_account}", 200),
    ("auditor", "/accounts/{foreign_account}", 200),
    ("auditor", "/people/{report}", 200),
    ("auditor", "/people/{stranger}", 200),
    ("auditor", "/reports/accounts/{hidden_account}", 200),
    ("auditor", "/reports/people/{hidden_person}", 200),
    ("auditor", "/reviews/", 200),
    ("auditor", "/policies/report", 200),
    ("auditor", "/audit/", 200),
]


@pytest.mark.parametrize(("role", "path", "status"), READS)
def test_reads(app, db, world, role, path, status):
    w, users = world
    client = app.test_client()
    login(client, db, users[role])
    assert client.get(path.format(**vars(w))).status_code == status


def test_a_manager_sees_only_their_peoples_rows_of_a_shared_account_or_person(app, db, world):
    w, users = world
    client = app.test_client()
    login(client, db, users["manager"])
    # The report holds a role on the foreign account: that row only, not the stranger's.
    page = client.get(f"/reports/accounts/{w.foreign_account}").get_data(as_text=True)
    assert "Rita Report" in page and "Sam Stranger" not in page
    # The stranger holds a role on the manager's account: that row only, not their foreign one.
    page = client.get(f"/reports/people/{w.stranger}").get_data(as_text=True)
    assert "Own Account" in page and "Foreign Account" not in page


def _state(db: Any) -> tuple[Any, ...]:
    """Everything a refused change must leave as it was."""
    db.expire_all()
    return (
        tuple(db.execute(select(Grant.id, Grant.status, Grant.revoked_by_id).order_by(Grant.id)).all()),
        tuple(db.execute(select(PlatformRemoval.id, PlatformRemoval.confirmed_at).order_by(PlatformRemoval.id)).all()),
        tuple(db.execute(select(ReviewItem.id, ReviewItem.decision).order_by(ReviewItem.id)).all()),
        tuple(db.execute(select(Account.id, Account.display_name, Account.status).order_by(Account.id)).all()),
        tuple(db.execute(select(Person.id, Person.full_name, Person.status).order_by(Person.id)).all()),
    )


#: (role, path, form): changes that must not happen. The view may answer 403, 404, the form again
#: with a message, or a redirect with one; in every case nothing changes and no success is audited.
REFUSED = [
    ("manager", "/grants/{foreign_grant}/revoke", {"reason": "not mine"}),
    ("manager", "/removals/{foreign_removal}/confirm", {"note": "done"}),
    ("manager", "/reviews/items/{foreign_item}/decide", {"decision": "revoke", "reason": "x"}),
    ("manager", "/accounts/{own_account}/edit", {"display_name": "Renamed"}),
    ("manager", "/people/{report}/edit", {"full_name": "Renamed"}),
    ("manager", "/grants/new?account_id={foreign_account}", {"account_id": "{foreign_account}", "person": "{stranger_email}",
                                                            "role_code": "analyst", "reason": "x"}),
    ("auditor", "/grants/{own_grant}/revoke", {"reason": "auditors change nothing"}),
    ("auditor", "/grants/{foreign_grant}/revoke", {"reason": "auditors change nothing"}),
    ("auditor", "/removals/{foreign_removal}/confirm", {"note": "done"}),
    ("auditor", "/reviews/items/{foreign_item}/decide", {"decision": "keep", "reason": ""}),
    ("auditor", "/accounts/{foreign_account}/edit", {"display_name": "Renamed"}),
    ("auditor", "/accounts/new", {"platform": "x", "handle": "auditor", "display_name": "Nope"}),
    ("auditor", "/people/{stranger}/edit", {"full_name": "Renamed"}),
    ("auditor", "/people/new", {"full_name": "New", "email": "new@example.com"}),
    ("auditor", "/grants/new", {"account_id": "{foreign_account}", "person": "{stranger_email}", "role_code": "analyst",
                                "reason": "x"}),
    ("auditor", "/policies/new", {"tier": "standard", "title": "Mine", "body_markdown": "text"}),
]


@pytest.mark.parametrize(("role", "path", "form"), REFUSED)
def test_refused_changes_change_nothing(app, db, world, role, path, form):
    w, users = world
    client = app.test_client()
    login(client, db, users[role])
    before = _state(db)
    events = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success",
                                                                           ~AuditEvent.action.like("auth.%")))
    data = {key: value.format(**vars(w)) for key, value in form.items()}
    response = client.post(path.format(**vars(w)), data={"csrf_token": csrf_token(client, "/account"), **data})
    assert response.status_code in (200, 302, 403, 404), response.status_code
    assert _state(db) == before
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success",
                                                                        ~AuditEvent.action.like("auth.%"))) == events


#: (path, form, the grant it revokes): what the manager may change, to show the table above is not
#: passing only because nothing ever works.
ALLOWED = [
    ("/grants/{own_grant}/revoke", {"reason": "Left the team"}, "own_grant"),
    ("/grants/{report_grant}/revoke", {"reason": "Changed role"}, "report_grant"),
]


@pytest.mark.parametrize(("path", "form", "grant"), ALLOWED)
def test_a_manager_changes_their_own_accounts_and_reports(app, db, world, path, form, grant):
    w, users = world
    client = app.test_client()
    login(client, db, users["manager"])
    response = client.post(path.format(**vars(w)), data={"csrf_token": csrf_token(client, "/account"), **form})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(Grant, getattr(w, grant)).status == "revoked"
