"""The jobs runner: records every run, is idempotent, isolates a failing step, warns when stale."""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.auth.models import WebSession
from govern.db import database, utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.jobs import services
from govern.jobs.models import JobRun
from govern.jobs.services import Step, parse_interval, run_jobs, run_loop, staleness
from govern.jobs.steps import STEPS
from govern.notifications import services as notifications
from govern.notifications.models import Notification, OutboxMessage
from tests.factories import make_account, make_grant, make_user


def _run(app, **kwargs):
    with app.app_context():
        return run_jobs(database(app), app.config, **kwargs)


def _count(db, model, *where):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_the_registry_runs_expiry_and_session_purge_before_sending_email():
    names = [s.name for s in STEPS]
    assert names[:3] == ["grants.expire", "sessions.purge", "jobs.prune"]
    # Email after every step that queues some; the backup last, so its snapshot holds the whole run.
    assert names[-2:] == ["email.send", "backup.make"]
    assert len(set(names)) == len(names)


def test_a_run_is_recorded_with_host_pid_steps_and_outcome(app, db):
    run = _run(app)
    db.expire_all()
    row = db.get(JobRun, run.id)
    assert row.outcome == "ok" and row.finished_at >= row.started_at
    assert row.host == socket.gethostname() and row.pid == os.getpid()
    assert [s["name"] for s in row.steps] == [s.name for s in STEPS]
    assert all(s["outcome"] == "ok" and s["error"] is None and s["started_at"] and s["finished_at"] for s in row.steps)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "jobs.run")).one()
    assert event.target_id == str(run.id) and json.loads(event.details_json)["failed"] == []


def test_running_twice_does_the_work_once(app, db, kit):
    holder = make_user(db, kit)
    account = make_account(db)
    grant = make_grant(db, holder.user.person, account, "analyst", expires_at=utcnow() + timedelta(minutes=5))
    db.add(WebSession(id="a" * 64, public_id="p" * 16, user_id=holder.id, data="{}",
                      created_at=utcnow() - timedelta(hours=1), last_seen_at=utcnow() - timedelta(hours=1),
                      authenticated_at=utcnow() - timedelta(hours=1)))
    db.commit()
    with time_machine.travel(utcnow() + timedelta(minutes=10)):
        first = _run(app)
        second = _run(app)
    counts = [{s["name"]: s["counts"] for s in run.steps} for run in (first, second)]
    assert counts[0]["grants.expire"]["expired"] == 1 and counts[1]["grants.expire"]["expired"] == 0
    assert counts[0]["sessions.purge"] == {"purged": 1, "signed_in": 1}
    assert counts[1]["sessions.purge"] == {"purged": 0, "signed_in": 0}
    db.expire_all()
    assert db.get(Grant, grant.id).status == "expired"
    assert _count(db, PlatformRemoval, PlatformRemoval.grant_id == grant.id) == 1
    assert _count(db, Notification, Notification.kind == "grant.expired") == 1
    assert _count(db, OutboxMessage, OutboxMessage.kind == "grant.expired") == 1
    assert _count(db, AuditEvent, AuditEvent.action == "grant.expired") == 1
    # No SMTP server is configured: the holder's email waits, counted, and nothing failed.
    assert counts[1]["email.send"] == {"sent": 0, "not_configured_waiting": 1}


def _boom(session, context):
    notifications.notify(session, user=context.config["TEST_USER_ID"], kind="test", title="from the failing step")
    raise RuntimeError("the platform API is down")


def _fine(session, context):
    notifications.notify(session, user=context.config["TEST_USER_ID"], kind="test", title="from the good step")
    return {"done": 1}


def test_a_failing_step_is_rolled_back_and_recorded_and_the_others_still_run(app, db, kit):
    who = make_user(db, kit)
    app.config["TEST_USER_ID"] = who.id
    run = _run(app, steps=[Step("test.boom", "Fails", _boom), Step("test.fine", "Works", _fine)])
    assert run.outcome == "failed"
    boom, fine = run.steps
    assert boom["outcome"] == "failed" and boom["error"] == "RuntimeError: the platform API is down" and boom["counts"] == {}
    assert fine["outcome"] == "ok" and fine["counts"] == {"done": 1}
    titles = [n.title for n in db.scalars(select(Notification).where(Notification.user_id == who.id))]
    assert titles == ["from the good step"]
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "jobs.run")).one()
    assert event.outcome == "failure" and json.loads(event.details_json)["failed"] == ["test.boom"]


def test_database_errors_are_described_without_their_parameters(app, db):
    def clash(session, context):
        notifications.queue_email(session, to="a@example.com", subject="s", body_text="TOPSECRET-BODY", kind="t")
        session.add(OutboxMessage(kind="t", to_address="a@example.com", subject="s", body_text="TOPSECRET-BODY", status="nope"))
        session.flush()
        return {}

    run = _run(app, steps=[Step("test.clash", "Clashes", clash)])
    (step,) = run.steps
    assert step["outcome"] == "failed" and step["error"].startswith("IntegrityError: ")
    assert "TOPSECRET" not in step["error"]


def test_a_stop_request_skips_the_remaining_steps(app, db):
    calls = []
    stop = threading.Event()

    def first(session, context):
        calls.append("first")
        stop.set()
        return {}

    run = _run(app, steps=[Step("a", "A", first), Step("b", "B", lambda s, c: calls.append("b") or {})], should_stop=stop.is_set)
    assert calls == ["first"] and [s["outcome"] for s in run.steps] == ["ok", "skipped"]
    assert run.outcome == "ok"


def test_runs_older_than_90_days_are_pruned(app, db):
    old = _run(app, steps=[])
    with time_machine.travel(utcnow() + timedelta(days=91)):
        recent = _run(app, steps=[])
        third = _run(app)
    pruned = next(s for s in third.steps if s["name"] == "jobs.prune")
    assert pruned["counts"] == {"deleted": 1}
    db.expire_all()
    assert db.get(JobRun, old.id) is None and db.get(JobRun, recent.id) is not None
    assert _count(db, AuditEvent, AuditEvent.action == "jobs.runs_pruned") == 1


def test_staleness_for_the_admins_notice(app, db):
    assert "never run" in staleness(db)
    _run(app, steps=[])
    db.expire_all()
    assert staleness(db) is None
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        assert "25 hours ago" in staleness(db)


def test_the_step_lock_key_is_stable_and_distinct():
    assert services.step_lock_key("grants.expire") == services.step_lock_key("grants.expire")
    assert services.step_lock_key("grants.expire") != services.step_lock_key("email.send")
    assert -(2**63) <= services.step_lock_key("x") < 2**63


@pytest.mark.parametrize(("raw", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("45", 45), (" 5m ", 300)])
def test_parse_interval(raw, seconds):
    assert parse_interval(raw) == seconds


@pytest.mark.parametrize("raw", ["", "0", "5 minutes", "-1m", "1w", "99d"])
def test_parse_interval_refuses_nonsense(raw):
    with pytest.raises(ValueError):
        parse_interval(raw)


def test_the_loop_runs_until_stopped_and_survives_a_failing_round():
    stop = threading.Event()
    calls = []

    def once():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database away")
        if len(calls) == 3:
            stop.set()

    assert run_loop(once, 0, stop) == 3
