"""SQLite: pages that only read do not hold the write lock, and their rare writes still take it first.

Before, every transaction began with BEGIN IMMEDIATE, so a page held the database's one write lock
from its first query to its end and two workers served pages one at a time.
"""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import select, text

from govern import audit
from govern.audit.models import AuditChainHead
from govern.audit.services import AuditContext, verify_chain
from govern.db import database, get_session, make_engine
from govern.db_tuning import enter_view

CTX = AuditContext(actor_label="test")


@pytest.fixture
def sqlite_app(scratch_database_url, request) -> Flask:
    if not scratch_database_url.startswith("sqlite"):
        pytest.skip("SQLite's locking; PostgreSQL locks rows, not the database")
    return request.getfixturevalue("scratch_app")


def _write_in_another_worker(app: Flask, done: dict[str, bool]) -> threading.Thread:
    """A POST-like writer (no request context: BEGIN IMMEDIATE) in its own thread and session."""

    def write() -> None:
        with app.app_context(), database(app).session_scope() as session:
            audit.record(session, "test.writer", context=CTX)
            session.commit()
            done["written"] = True

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_a_page_that_reads_does_not_block_a_writer(sqlite_app):
    done: dict[str, bool] = {}
    with sqlite_app.test_request_context("/people/", method="GET"), database(sqlite_app).session_scope() as reader:
        reader.execute(select(AuditChainHead.last_event_id)).one()  # the page's transaction is open
        assert reader.connection().info["govern.read_transaction"] is True
        writer = _write_in_another_worker(sqlite_app, done)
        writer.join(timeout=10)
        # With BEGIN IMMEDIATE the writer would wait for this page to end (up to busy_timeout, 30 s).
        assert done.get("written"), "the writer waited for a page that only reads"


def test_a_write_on_a_page_takes_the_lock_first_and_sees_the_latest_data(sqlite_app):
    done: dict[str, bool] = {}
    with sqlite_app.test_request_context("/", method="GET"), database(sqlite_app).session_scope() as page:
        before = page.execute(select(AuditChainHead.last_event_id)).scalar_one()
        _write_in_another_worker(sqlite_app, done).join(timeout=10)
        assert done.get("written")
        # The page's snapshot is now stale; a plain upgrade of its read transaction would fail with
        # SQLITE_BUSY ("database is locked") at once. The swap to BEGIN IMMEDIATE makes it a writer.
        event = audit.record(page, "test.page_write", context=CTX)
        page.commit()
        assert event.id == before + 2  # chained after the other worker's event, not beside it
    with sqlite_app.app_context(), database(sqlite_app).session_scope() as session:
        result = verify_chain(session)
        assert result.ok and result.checked == before + 2, result.problem


def test_the_views_of_requests_that_change_state_and_jobs_begin_with_the_write_lock(sqlite_app):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with sqlite_app.test_request_context("/", method=method):
            session = get_session()
            session.execute(select(AuditChainHead.last_event_id))  # the session and user, read before the view
            assert session.connection().info["govern.read_transaction"] is True
            enter_view()
            session.execute(select(AuditChainHead.last_event_id))  # the view's first statement
            assert session.connection().info["govern.read_transaction"] is False
            session.close()
    with sqlite_app.app_context(), database(sqlite_app).session_scope() as session:  # CLI and jobs
        session.execute(select(AuditChainHead.last_event_id))
        assert session.connection().info["govern.read_transaction"] is False


def test_after_its_commit_a_form_reads_without_the_write_lock(sqlite_app):
    done: dict[str, bool] = {}
    with sqlite_app.test_request_context("/vault/secrets/1/reveal", method="POST"), \
            database(sqlite_app).session_scope() as form:
        enter_view()
        audit.record(form, "test.form_write", context=CTX)
        assert form.connection().info["govern.read_transaction"] is False  # the change itself: locked
        form.commit()
        # Rendering the answer reads (the layout's notice count, say) and must not lock others out.
        form.execute(select(AuditChainHead.last_event_id)).one()
        assert form.connection().info["govern.read_transaction"] is True
        _write_in_another_worker(sqlite_app, done).join(timeout=10)
        assert done.get("written"), "a writer waited for a form that had already committed"
        # A second change in the same request still takes the lock first and chains correctly.
        audit.record(form, "test.form_second_write", context=CTX)
        form.commit()
    with sqlite_app.app_context(), database(sqlite_app).session_scope() as session:
        assert verify_chain(session).ok


def test_what_a_form_reads_before_its_view_does_not_block_a_writer(sqlite_app):
    done: dict[str, bool] = {}
    with sqlite_app.test_request_context("/vault/secrets/1/reveal", method="POST"):
        session = get_session()
        before = session.execute(select(AuditChainHead.last_event_id)).scalar_one()  # session, user, permission
        _write_in_another_worker(sqlite_app, done).join(timeout=10)
        assert done.get("written"), "a writer waited for a form that had not reached its view"
        enter_view()
        # The view sees the other worker's write and chains after it, under the lock.
        assert session.execute(select(AuditChainHead.last_event_id)).scalar_one() == before + 1
        assert session.connection().info["govern.read_transaction"] is False
        audit.record(session, "test.form_write", context=CTX)
        session.commit()
        session.close()
    with sqlite_app.app_context(), database(sqlite_app).session_scope() as check:
        assert verify_chain(check).ok


def test_a_write_in_sql_text_on_a_page_takes_the_lock_first(sqlite_app):
    with sqlite_app.test_request_context("/", method="GET"), database(sqlite_app).session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
        assert page.connection().info["govern.read_transaction"] is True
        page.connection().exec_driver_sql("UPDATE audit_chain_head SET last_hash = last_hash")
        assert page.connection().info["govern.read_transaction"] is False  # upgraded to BEGIN IMMEDIATE
        page.rollback()


def test_a_read_in_sql_text_on_a_page_takes_the_lock_too(sqlite_app):
    """Told from the statement object, never from its text: SQL text counts as writing."""
    with sqlite_app.test_request_context("/", method="GET"), database(sqlite_app).session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
        assert page.connection().info["govern.read_transaction"] is True
        page.execute(text("SELECT 1"))
        assert page.connection().info["govern.read_transaction"] is False


def test_a_connection_used_directly_after_a_page_starts_clean(sqlite_app):
    db = database(sqlite_app)
    with sqlite_app.test_request_context("/", method="GET"), db.session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
    with db.engine.connect() as conn:  # its first statement writes, outside any request
        conn.execute(text("UPDATE audit_chain_head SET last_hash = last_hash"))
        conn.rollback()


def test_a_new_sqlite_database_and_its_wal_files_are_private(tmp_path):
    """0600 from the first moment, and the -wal/-shm files SQLite adds while it is open too."""
    path = tmp_path / "fresh.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
        assert {"fresh.db", "fresh.db-wal", "fresh.db-shm"} <= set(modes)
        assert set(modes.values()) == {oct(0o600)}, modes
        engine.dispose()
        # A database restored with a loose mode is made private at the next connection.
        path.chmod(0o644)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            assert {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}["fresh.db"] == oct(0o600)
    finally:
        engine.dispose()
