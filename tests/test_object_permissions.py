"""Object-level permissions across the registry, one table: a manager sees and changes only their
own accounts and their reports; an auditor reads everything and changes nothing.

The role matrix (tests/test_permissions.py) checks app roles per endpoint; this file checks the
objects behind them, with real rows, and that a refused change left the rows as they were.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.directory.models import Person
from govern.grants.models import Grant, PlatformRemoval
from govern.reviews.models import ReviewCampaign, ReviewItem
from tests.factories import Company, csrf_token, login


@pytest.fixture
def company(company: Company) -> Company:
    """A manager's own account and report, and everything outside their scope."""
    company.add_staff("manager", "auditor", "admin")
    company.add_person("boss", full_name="Other Owner")
    company.add_account("own_account", owner=company.manager, display_name="Own Account")
    company.add_account("foreign_account", owner=company.boss, display_name="Foreign Account")
    company.add_person("report", full_name="Rita Report", manager=company.manager)
    company.add_person("stranger", full_name="Sam Stranger", manager=company.boss)
    company.add_grant("own_grant", company.stranger, company.own_account, "analyst")  # a stranger's, on the manager's account
    company.add_grant("report_grant", company.report, company.foreign_account, "analyst")  # the report's, on a foreign account
    company.add_grant("foreign_grant", company.stranger, company.foreign_account, "moderator")
    ended = company.add_grant("ended_grant", company.boss, company.foreign_account, "analyst", status="revoked")
    company.add("foreign_removal", PlatformRemoval(grant_id=ended.id, account_id=company.foreign_account.id,
                                                   person_id=company.boss.id, platform_role="Instagram Analyst"))
    campaign = company.add("campaign", ReviewCampaign(name="Q4", scope_kind="all",
                                                      due_at=company.own_grant.starts_at.replace(year=2099)))
    # A review item assigned to someone else.
    company.add("foreign_item", ReviewItem(campaign_id=campaign.id, grant_id=company.foreign_grant.id,
                                           reviewer_id=company.boss.id))
    # No link at all to the manager or their reports.
    company.add_account("hidden_account", owner=company.boss, display_name="Hidden Account")
    company.add_person("hidden_person", full_name="Hal Hidden", manager=company.boss)
    company.add_grant("hidden_grant", company.hidden_person, company.hidden_account, "analyst")
    return company.commit()


#: The rows the paths and forms below name, by their placeholders.
PLACES = ("own_account", "foreign_account", "report", "stranger", "own_grant", "report_grant", "foreign_grant",
          "foreign_removal", "foreign_item", "hidden_account", "hidden_person")


def _places(company: Company) -> dict[str, Any]:
    return {name: getattr(company, name).id for name in PLACES} | {"stranger_email": company.stranger.email}


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
def test_reads(app, db, company, role, path, status):
    places = _places(company)
    client = app.test_client()
    login(client, db, getattr(company, role))
    assert client.get(path.format(**places)).status_code == status


def test_a_manager_sees_only_their_peoples_rows_of_a_shared_account_or_person(app, db, company):
    client = app.test_client()
    login(client, db, company.manager)
    # The report holds a role on the foreign account: that row only, not the stranger's.
    page = client.get(f"/reports/accounts/{company.foreign_account.id}").get_data(as_text=True)
    assert "Rita Report" in page and "Sam Stranger" not in page
    # The stranger holds a role on the manager's account: that row only, not their foreign one.
    page = client.get(f"/reports/people/{company.stranger.id}").get_data(as_text=True)
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
def test_refused_changes_change_nothing(app, db, company, role, path, form):
    places = _places(company)
    client = app.test_client()
    login(client, db, getattr(company, role))
    before = _state(db)
    events = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success",
                                                                           ~AuditEvent.action.like("auth.%")))
    data = {key: value.format(**places) for key, value in form.items()}
    response = client.post(path.format(**places), data={"csrf_token": csrf_token(client, "/account"), **data})
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
def test_a_manager_changes_their_own_accounts_and_reports(app, db, company, path, form, grant):
    places = _places(company)
    client = app.test_client()
    login(client, db, company.manager)
    response = client.post(path.format(**places), data={"csrf_token": csrf_token(client, "/account"), **form})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(Grant, places[grant]).status == "revoked"
