"""Two jobs runs at the same time on PostgreSQL, each with its own connections: no duplicates.

On SQLite the write lock (BEGIN IMMEDIATE) serialises runs, so these tests run on PostgreSQL only.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.audit.services import verify_chain
from govern.db import Database, utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.jobs.services import run_jobs, step_lock_key
from govern.notifications import services as notifications
from govern.notifications.models import Notification, OutboxMessage
from govern.schema import upgrade
from tests.factories import make_account, make_grant, make_user
from tests.smtp_server import start_server
from tests.support import app_config

pytestmark = pytest.mark.postgresql

HOLDERS = 12


@pytest.fixture
def pg_app(tmp_path, scratch_database_url, is_postgresql):
    if not is_postgresql:
        pytest.skip("PostgreSQL only: on SQLite the write lock serialises concurrent runs")
    upgrade(scratch_database_url)
    server = start_server(tmp_path)
    app = create_app(app_config(tmp_path, scratch_database_url, **server.config()))
    yield app, server
    server.controller.stop()
    app.extensions["govern.db"].engine.dispose()


def _seed(app, holders=HOLDERS):
    database = app.extensions["govern.db"]
    kit = app.extensions["govern.auth"]
    with app.app_context(), database.session_scope() as db:
        account = make_account(db)
        for _ in range(holders):
            user = make_user(db, kit)
            make_grant(db, user.user.person, account, "analyst", expires_at=utcnow() - timedelta(minutes=1))
        db.commit()


def _count(database, model, *where):
    with database.session_scope() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_two_concurrent_runs_create_no_duplicates_and_send_each_email_once(pg_app):
    app, server = pg_app
    _seed(app)
    barrier = threading.Barrier(2)
    runs, errors = [], []

    def worker():
        database = Database(app.config["DATABASE_URL"])  # its own engine, its own connections
        try:
            with app.app_context():
                barrier.wait(timeout=60)
                runs.append(run_jobs(database, app.config))
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and len(runs) == 2
    assert [r.outcome for r in runs] == ["ok", "ok"], [r.steps for r in runs]
    expired = [next(s for s in r.steps if s["name"] == "grants.expire") for r in runs]
    assert sum(s["counts"].get("expired", 0) for s in expired) == HOLDERS
    sent = [next(s for s in r.steps if s["name"] == "email.send") for r in runs]
    assert sum(s["counts"]["sent"] for s in sent) == HOLDERS

    database = app.extensions["govern.db"]
    assert _count(database, Grant, Grant.status == "expired") == HOLDERS
    assert _count(database, PlatformRemoval) == HOLDERS
    assert _count(database, AuditEvent, AuditEvent.action == "grant.expired") == HOLDERS
    assert _count(database, Notification, Notification.kind == "grant.expired") == HOLDERS
    assert _count(database, OutboxMessage) == HOLDERS
    assert _count(database, OutboxMessage, OutboxMessage.status == "sent", OutboxMessage.attempts == 1) == HOLDERS
    assert _count(database, AuditEvent, AuditEvent.action == "email.sent") == HOLDERS
    received = Counter(m["To"] for m in server.inbox.messages)
    assert len(received) == HOLDERS and set(received.values()) == {1}
    with database.session_scope() as db:
        assert verify_chain(db).ok


def test_a_step_another_host_is_running_is_skipped_not_repeated(pg_app):
    app, _ = pg_app
    _seed(app, holders=1)
    database = app.extensions["govern.db"]
    other_host = Database(app.config["DATABASE_URL"])
    try:
        with other_host.engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": step_lock_key("grants.expire")})
            with app.app_context():
                run = run_jobs(database, app.config)
            step = next(s for s in run.steps if s["name"] == "grants.expire")
            assert step["outcome"] == "skipped" and "another run" in step["error"]
            assert run.outcome == "ok"
            assert _count(database, Grant, Grant.status == "expired") == 0
        # The other host finished (its transaction ended): the next run does the work.
        with app.app_context():
            run = run_jobs(database, app.config)
        step = next(s for s in run.steps if s["name"] == "grants.expire")
        assert step["outcome"] == "ok" and step["counts"]["expired"] == 1
    finally:
        other_host.engine.dispose()


def test_a_message_locked_by_one_sender_is_skipped_by_another(pg_app):
    app, _ = pg_app
    database = app.extensions["govern.db"]
    with app.app_context(), database.session_scope() as db:
        for n in range(2):
            notifications.queue_email(db, to=f"p{n}@example.com", subject="s", body_text="b", kind="t")
        db.commit()
    second = Database(app.config["DATABASE_URL"])
    try:
        with database.session_scope() as a, second.session_scope() as b:
            first = notifications.claim_due_email(a)  # row locked, not yet committed
            other = notifications.claim_due_email(b)  # SKIP LOCKED: the next message, never the same
            assert first is not None and other is not None and first.id != other.id
            a.commit()
            b.commit()
        with database.session_scope() as c:
            assert notifications.claim_due_email(c) is None  # both are claimed for the lease
    finally:
        second.engine.dispose()
