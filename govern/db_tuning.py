"""Transaction modes by request on SQLite: a page that only reads takes no write lock.

What it buys (scripts/bench, SQLite, 2026-12-04, see docs/performance.md): switched off, the audited reveal
fell from 0.58 to 0.18 of govern's floor (noise 1 %), the admin's home from 0.20 to 0.09 (noise 14 %), and
every other page fell too. PostgreSQL's counterpart (reading in autocommit, without BEGIN and ROLLBACK)
was removed: switched off, no page got slower (every page's ratio rose, 4-127 %).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import CompoundSelect, Select, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

#: Requests that only read: their transactions begin in read mode; the first write leaves it.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Set on a connection while its transaction is in read mode.
READ_MODE = "govern.read_transaction"


#: Set by ``reading()``: work outside a request (a CLI, a job) whose next transactions start in read mode.
_reading: ContextVar[bool] = ContextVar("govern_reading", default=False)


@contextmanager
def reading() -> Iterator[None]:
    """Transactions that begin inside the block start in read mode, outside a request too (the audit
    shipper reads batches while the web workers write): no SQLite write lock until a statement writes."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def reads_first() -> bool:
    """Whether a transaction beginning now starts in read mode: inside a web request, except in the view
    of a request that changes state until that view commits.

    The session, the user and the permission are read before the view, and the answer is rendered after
    its commit: neither needs the SQLite write lock nor a PostgreSQL transaction.
    """
    if not has_request_context():
        return _reading.get()
    return request.method in READ_METHODS or not g.get("govern_in_view", False) or g.get("govern_committed", False)


def enter_view() -> None:
    """before_request, registered last: the view of a state-changing request starts a transaction of its own.

    What was read so far (session, user, permission) ran in read mode; that read is ended here, unless
    something in it wrote (and so left read mode already), so the view's first statement begins
    ``BEGIN IMMEDIATE`` on SQLite (a real transaction on PostgreSQL) and its check-then-write runs under it.
    """
    session: Session | None = g.get("db_session")
    if request.method not in READ_METHODS and session is not None and session.in_transaction() \
            and session.connection().info.get(READ_MODE):
        session.commit()  # nothing was written: this only ends the read (objects stay loaded)
    g.govern_in_view = True  # after that commit, which is not the view's


def _note_view_commits(engine: Engine) -> None:
    """After the view's commit the rest of the request (rendering the answer) only reads."""
    @event.listens_for(engine, "commit")
    def _on_commit(_connection: Any) -> None:
        if has_request_context() and g.get("govern_in_view", False):
            g.govern_committed = True


def only_reads(context: Any) -> bool:
    """Whether a statement about to run is a plain read: a SELECT built with SQLAlchemy, without
    FOR UPDATE or FOR SHARE and without a writing CTE.

    Told from the statement object, never from SQL text: SQL text (``text()``, ``exec_driver_sql``)
    counts as writing and takes the write lock first.
    """
    compiled = context.compiled
    statement = compiled.statement if compiled is not None else None
    if not isinstance(statement, Select | CompoundSelect) or statement._for_update_arg is not None:
        return False
    return not any(isinstance(cte.element, UpdateBase) for cte in (getattr(compiled, "ctes", None) or ()))


def discard_uncommitted(session: Session) -> None:
    """Roll back whatever the request flushed or changed and did not commit.

    A transaction still in read mode has nothing to undo (no object is new, changed or deleted):
    rolling it back would only expire every loaded object; the connection's own rollback happens
    when the session closes.
    """
    if not session.in_transaction():
        return
    if not (session.new or session.dirty or session.deleted) and session.connection().info.get(READ_MODE):
        return
    session.rollback()


def _forget_read_mode_at_checkin(engine: Engine) -> None:
    """A connection goes back to the pool as a plain one."""
    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info.pop(READ_MODE, None)


def read_mode_for_sqlite(engine: Engine) -> None:
    """SQLite: a page's transaction begins deferred (``BEGIN``, no write lock), every other one ``BEGIN IMMEDIATE``.

    In WAL mode readers never block, but a transaction holding the write lock makes every other
    writer wait. Before the first write (or locking read) of a deferred transaction, it is traded for
    a ``BEGIN IMMEDIATE``: nothing was written yet, so ending the read loses nothing; later statements
    see the latest data, as under PostgreSQL's READ COMMITTED, and the write lock is held before any
    write (a plain upgrade could fail with SQLITE_BUSY on a stale snapshot).
    """
    _note_view_commits(engine)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        deferred = reads_first()
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
        connection.info[READ_MODE] = deferred  # after the BEGIN, which is SQL text

    @event.listens_for(engine, "before_cursor_execute")
    def _before_cursor_execute(connection: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
        if connection.info.get(READ_MODE) and not only_reads(context):
            connection.info[READ_MODE] = False
            if connection.in_nested_transaction():
                return  # a savepoint would not survive the swap; the upgrade waits on busy_timeout instead
            raw = connection.connection.dbapi_connection
            raw.execute("COMMIT")
            raw.execute("BEGIN IMMEDIATE")

    _forget_read_mode_at_checkin(engine)
