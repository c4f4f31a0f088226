"""PostgreSQL: what a page only reads runs without BEGIN and ROLLBACK; its writes are still transactions.

psycopg opens a transaction with a BEGIN round trip of its own, and the request's end costs a
ROLLBACK one. Under READ COMMITTED a read in a transaction sees nothing a read outside one would
not, so reading runs in autocommit and the first write, locking read or savepoint sends BEGIN.
"""

from __future__ import annotations

import pytest
from flask import Flask
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import OperationalError

from govern import audit
from govern.app import create_app
from govern.audit.models import AuditChainHead, AuditEvent
from govern.audit.services import AuditContext
from govern.db import database
from govern.db_tuning import enter_view
from govern.schema import upgrade
from tests.conftest import app_config

CTX = AuditContext(actor_label="test")


@pytest.fixture
def pg_app(tmp_path, scratch_database_url) -> Flask:
    if not scratch_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's transactions; SQLite's own are in test_db_sqlite_locks.py")
    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    yield app
    database(app).engine.dispose()


def _server_status(session) -> TransactionStatus:
    """What the server says about the session's connection: idle, or inside a transaction."""
    return session.connection().connection.dbapi_connection.info.transaction_status


def _events(app: Flask) -> int:
    with database(app).session_scope() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_a_page_that_only_reads_opens_no_transaction(pg_app):
    with pg_app.test_request_context("/people/", method="GET"), database(pg_app).session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
        assert _server_status(page) == TransactionStatus.IDLE
        page.execute(select(AuditChainHead.last_hash)).one()
        assert _server_status(page) == TransactionStatus.IDLE


def test_a_write_on_a_page_is_one_transaction_with_the_writes_after_it(pg_app):
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
        audit.record(page, "test.first", context=CTX)
        assert _server_status(page) == TransactionStatus.INTRANS
        audit.record(page, "test.second", context=CTX)
        page.rollback()  # neither event, nor the chain head's move, may survive
    assert _events(pg_app) == 0
    with database(pg_app).session_scope() as session:
        assert session.scalar(select(AuditChainHead.last_event_id)) == 0


def test_a_write_on_a_page_commits_and_the_page_reads_on_without_a_transaction(pg_app):
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        audit.record(page, "test.touch", context=CTX)
        page.commit()
        page.execute(select(AuditChainHead.last_event_id)).one()
        assert _server_status(page) == TransactionStatus.IDLE
    assert _events(pg_app) == 1


def test_a_locking_read_on_a_page_holds_its_lock_to_the_end(pg_app):
    other = create_engine(database(pg_app).url, isolation_level="AUTOCOMMIT")
    try:
        with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
            page.execute(select(AuditChainHead).with_for_update()).one()
            page.execute(select(AuditEvent.id).limit(1)).all()  # a later read must not end the lock
            with other.connect() as conn:
                conn.execute(text("SET lock_timeout = '200ms'"))
                with pytest.raises(OperationalError, match="lock timeout"):
                    conn.execute(update(AuditChainHead).values(last_hash=AuditChainHead.last_hash))
    finally:
        other.dispose()


def test_an_advisory_transaction_lock_on_a_page_is_held_to_the_end(pg_app):
    key = 4242
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        assert page.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
        other = create_engine(database(pg_app).url)
        try:
            with other.connect() as conn:
                assert not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
        finally:
            other.dispose()


def test_a_savepoint_on_a_page_sits_in_a_real_transaction(pg_app):
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        with page.begin_nested():
            audit.record(page, "test.inner", context=CTX)
        assert _server_status(page) == TransactionStatus.INTRANS
        page.rollback()
    assert _events(pg_app) == 0


def test_a_form_reads_before_its_view_without_a_transaction_and_its_view_runs_in_one(pg_app):
    with pg_app.test_request_context("/people/new", method="POST"), database(pg_app).session_scope() as form:
        from flask import g

        g.db_session = form
        form.execute(select(AuditChainHead.last_event_id)).one()  # the session and user, before the view
        assert _server_status(form) == TransactionStatus.IDLE
        enter_view()
        form.execute(select(AuditChainHead.last_event_id)).one()
        assert _server_status(form) == TransactionStatus.INTRANS
        audit.record(form, "test.view", context=CTX)
        form.commit()
        form.execute(select(AuditChainHead.last_event_id)).one()  # rendering the answer
        assert _server_status(form) == TransactionStatus.IDLE
    assert _events(pg_app) == 1


def test_outside_a_request_every_transaction_is_one_after_a_page_used_the_connection(pg_app):
    db = database(pg_app)
    with pg_app.test_request_context("/", method="GET"), db.session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
        assert _server_status(page) == TransactionStatus.IDLE
    with pg_app.app_context(), db.session_scope() as job:  # the pool hands back the same connection
        job.execute(select(AuditChainHead.last_event_id)).one()
        assert _server_status(job) == TransactionStatus.INTRANS


def test_a_chosen_isolation_level_is_left_alone(pg_app):
    db = database(pg_app)
    with pg_app.test_request_context("/", method="GET"), db.session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()  # the pooled connection served a page
    with pg_app.test_request_context("/", method="GET"):
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM audit_chain_head"))  # refused inside a transaction
        with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.execute(select(AuditChainHead.last_event_id)).one()
            assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS


def test_a_streamed_read_on_a_page_gets_the_transaction_its_server_side_cursor_needs(pg_app):
    with pg_app.test_request_context("/audit/export", method="GET"), database(pg_app).session_scope() as page:
        audit.record(page, "test.one", context=CTX)
        audit.record(page, "test.two", context=CTX)
        page.commit()
        rows = page.execute(select(AuditEvent.action).order_by(AuditEvent.id).execution_options(yield_per=1))
        assert [r.action for r in rows] == ["test.one", "test.two"]


def test_writes_in_sql_text_on_a_page_begin_a_transaction_too(pg_app):
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        page.connection().exec_driver_sql("UPDATE audit_chain_head SET last_event_id = last_event_id + 1")
        assert _server_status(page) == TransactionStatus.INTRANS
        page.rollback()
        page.execute(text("WITH moved AS (UPDATE audit_chain_head SET last_event_id = last_event_id + 1 RETURNING 1)"
                          " SELECT count(*) FROM moved")).one()
        assert _server_status(page) == TransactionStatus.INTRANS
        page.rollback()
    with database(pg_app).session_scope() as session:
        assert session.scalar(select(AuditChainHead.last_event_id)) == 0


def test_a_write_in_a_cte_built_with_sqlalchemy_begins_a_transaction(pg_app):
    """A SELECT whose CTE inserts writes: told from the statement object, not from its text."""
    moved = update(AuditChainHead).values(last_event_id=AuditChainHead.last_event_id + 1) \
        .returning(AuditChainHead.last_event_id).cte("moved")
    with pg_app.test_request_context("/", method="GET"), database(pg_app).session_scope() as page:
        page.execute(select(func.count()).select_from(moved)).one()
        assert _server_status(page) == TransactionStatus.INTRANS
        page.rollback()
    with database(pg_app).session_scope() as session:
        assert session.scalar(select(AuditChainHead.last_event_id)) == 0


def test_a_connection_used_directly_after_a_page_starts_clean(pg_app):
    db = database(pg_app)
    with pg_app.test_request_context("/", method="GET"), db.session_scope() as page:
        page.execute(select(AuditChainHead.last_event_id)).one()
    with db.engine.connect() as conn:  # the same pooled connection; its first statement writes
        conn.execute(update(AuditChainHead).values(last_hash=AuditChainHead.last_hash))
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS
        conn.rollback()
