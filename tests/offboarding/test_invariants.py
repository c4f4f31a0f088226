"""The leaver invariants: the checker finds each kind of violation, `govern check`, the jobs step."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.auth.models import SetupToken, WebSession
from govern.db import utcnow
from govern.jobs.models import JobRun
from govern.jobs.services import JobContext
from govern.jobs.steps import STEPS, check_leavers
from govern.notifications.models import Notification, OutboxMessage
from govern.offboarding import invariants
from govern.offboarding.cli import check_command
from tests.factories import make_account, make_grant, make_person, make_user, offboard
from tests.sql_capture import sent


def _leaver_with_everything(db, kit, status="leaving"):
    """A person marked leaving behind the offboarding's back, who still has every kind of access."""
    who = make_user(db, kit, full_name="Lou Leftover")
    person = who.user.person
    account = make_account(db)
    grant = make_grant(db, person, account, "publisher")
    request = make_grant(db, person, make_account(db), "analyst", status="requested")
    db.add(WebSession(id=secrets.token_hex(32), public_id=secrets.token_hex(16), user_id=who.user.id))
    db.add(SetupToken(user_id=who.user.id, token_digest=secrets.token_hex(32), purpose="setup",
                      expires_at=utcnow() + timedelta(days=1)))
    person.status = status
    db.flush()
    return who, grant, request


@pytest.mark.allow_leaver_violations
def test_each_kind_of_violation_is_found(app, db, kit):
    who, grant, request = _leaver_with_everything(db, kit)
    gone = make_person(db, full_name="Dee Departed")
    gone.status = "departed"
    db.flush()
    found = invariants.find_violations(db)
    kinds = {(v.kind, v.person_id, v.ref) for v in found}
    person_id = who.user.person_id
    assert kinds == {
        ("active_grant", person_id, f"grant:{grant.id}"),
        ("pending_request", person_id, f"grant:{request.id}"),
        ("active_login", person_id, f"user:{who.user.id}"),
        ("pending_setup", person_id, next(v.ref for v in found if v.kind == "pending_setup")),
        ("live_session", person_id, next(v.ref for v in found if v.kind == "live_session")),
        ("leaving_without_offboarding", person_id, "person"),
        ("departed_without_offboarding", gone.id, "person"),
    }
    assert {c.kind for c in invariants.CHECKS} == {k for k, _p, _r in kinds}
    assert "Lou Leftover" in next(v.line() for v in found if v.kind == "active_grant")


def test_a_real_offboarding_leaves_no_violation(app, db, kit):
    who = make_user(db, kit)
    make_grant(db, who.user.person, make_account(db), "publisher")
    db.add(WebSession(id=secrets.token_hex(32), public_id=secrets.token_hex(16), user_id=who.user.id))
    db.flush()
    with app.test_request_context():
        offboard(db, who.user.person, "leaving")
        assert invariants.find_violations(db) == []
    departed = make_person(db, status="departed")
    assert departed.status == "departed" and invariants.find_violations(db) == []


@pytest.mark.allow_leaver_violations
def test_the_check_is_one_query_per_invariant_however_many_leavers(app, db, kit, connection):
    _leaver_with_everything(db, kit)
    one = len(sent(connection, lambda: invariants.find_violations(db)))
    for _ in range(5):
        _leaver_with_everything(db, kit)
    assert len(invariants.find_violations(db)) == 6 * 6  # 6 kinds for each of the 6 leavers
    assert len(sent(connection, lambda: invariants.find_violations(db))) == one == len(invariants.CHECKS)


@pytest.mark.allow_leaver_violations
def test_govern_check_lists_violations_and_exits_1(app, db, kit):
    runner = app.test_cli_runner()
    clean = runner.invoke(check_command, [])
    assert clean.exit_code == 0, clean.output
    assert "leaver invariants hold" in clean.output
    _leaver_with_everything(db, kit)
    db.commit()
    broken = runner.invoke(check_command, [])
    assert broken.exit_code == 1
    assert "active_grant: Lou Leftover" in broken.output and "6 violation(s)" in broken.output


@pytest.mark.allow_leaver_violations
def test_the_jobs_step_notifies_the_admins_once_per_set_of_violations(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    assert "offboarding.check" in [s.name for s in STEPS]
    context = JobContext(now=utcnow(), config=app.config)
    with app.test_request_context():
        assert check_leavers(db, context) == {"violations": 0, "admins_notified": 0}
        _leaver_with_everything(db, kit)
        counts = check_leavers(db, context)
        assert counts["violations"] == 6 and counts["active_grant"] == 1 and counts["admins_notified"] == 1
        assert db.scalar(select(func.count()).select_from(Notification).where(
            Notification.user_id == admin.user.id, Notification.kind == "invariants.violated")) == 1
        mail = db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invariants.violated")).one()
        assert mail.to_address == admin.email and "Lou Leftover" in mail.body_text
        assert db.scalars(select(AuditEvent).where(AuditEvent.action == "invariants.violated")).one().outcome == "failure"
        # The same violations on the next run: reported in the counts, nobody told again.
        again = check_leavers(db, context)
        assert again["violations"] == 6 and again["admins_notified"] == 0
        assert db.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "invariants.violated")) == 1
        # A new violation is news.
        gone = make_person(db)
        gone.status = "departed"
        db.flush()
        assert check_leavers(db, context)["admins_notified"] == 1


@pytest.mark.allow_leaver_violations
def test_govern_jobs_run_records_the_violations_on_the_run(app, db, kit):
    from govern.jobs.cli import group

    make_user(db, kit, roles=("admin",))
    _leaver_with_everything(db, kit)
    db.commit()
    result = app.test_cli_runner().invoke(group, ["run"])
    assert "offboarding.check: ok (violations 6" in result.output, result.output
    db.expire_all()
    run = db.scalars(select(JobRun)).one()
    step = next(s for s in run.steps if s["name"] == "offboarding.check")
    assert step["counts"]["violations"] == 6 and step["counts"]["admins_notified"] == 1
