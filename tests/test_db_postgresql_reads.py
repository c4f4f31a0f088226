"""PostgreSQL: writes, locking reads, advisory locks, savepoints and streamed reads of a page run in a
transaction that lasts to the end (the PostgreSQL read mode was removed in issue 17: it bought nothing measurable)."""

from __future__ import annotations

import pytest
from flask import Flask
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import OperationalError

from govern import audit
from govern.audit.models import AuditChainHead, AuditEvent
from govern.audit.services import AuditContext
from govern.db import database

CTX = AuditContext(actor_label="test")


@pytest.fixture
def pg_app(scratch_database_url, request) -> Flask:
    if not scratch_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's transactions; SQLite's own are in test_db_sqlite_locks.py")
    return request.getfixturevalue("scratch_app")


def _server_status(session) -> TransactionStatus:
    """What the server says about the session's connection: idle, or inside a transaction."""
    return session.connection().connection.dbapi_connection.info.transaction_status


def _events(app: Flask) -> int:
    with database(app).session_scope() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


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
