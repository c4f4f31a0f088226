"""Database plumbing: declarative base, engine, and one session per app context."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from flask import Flask, current_app, g
from sqlalchemy import BindParameter, DateTime, Integer, MetaData, bindparam, create_engine, event, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import CursorResult, Dialect, Engine, Result
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from govern import db_tuning

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use govern.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every govern model; constraint names are stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


#: What a constant string written into the SQL may look like: one of govern's own codes ("active").
_CONSTANT_WORD = re.compile(r"[a-z][a-z_]*\Z")


def sql_constant(value: int | Sequence[str]) -> BindParameter[Any]:
    """An integer (a page's bounds) or a list of govern's own codes, written into the SQL instead of sent
    as a parameter.

    PostgreSQL plans a prepared statement (psycopg prepares one after a few runs on a connection)
    once for any parameter values only when that plan costs about what one for the values at hand
    would; with the LIMIT a parameter it never does, and plans every run anew. A statement without
    parameters has one plan, made once per connection: the access report's page of ids then takes
    0.25 ms instead of 0.6-1.0 ms, most of which was planning. Written in at execution time (a
    post-compile literal), so SQLAlchemy's cached compilation is shared by every value.

    Text a user typed must stay a parameter: anything but an int or lower-case codes is refused
    (TypeError), so no caller can pass it here by mistake. A page number is the user's, but only as
    an int that its view parsed and bounded.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return bindparam("constant", value, type_=Integer, literal_execute=True, unique=True)
    if isinstance(value, list | tuple) and all(isinstance(v, str) and _CONSTANT_WORD.match(v) for v in value):
        return bindparam("constants", list(value), expanding=True, literal_execute=True, unique=True)
    raise TypeError(f"not a constant to write into SQL: {type(value).__name__}")


def page_bounds(page: int, per_page: int, *, in_sql: bool) -> tuple[Any, Any]:
    """LIMIT and OFFSET of one page; written into the SQL (``sql_constant``) when ``in_sql``.

    Callers pass ``in_sql`` only for a statement with no other parameter, which PostgreSQL then plans
    once per connection. With a filter the LIMIT stays a parameter, so each run is planned for the
    value filtered on: a plan for any value could walk the wrong index for a rare one.
    """
    limit, offset = int(per_page), (int(page) - 1) * int(per_page)
    return (sql_constant(limit), sql_constant(offset)) if in_sql else (limit, offset)


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched.

    ``Session.execute`` is typed to return a ``Result``; for DML it is a ``CursorResult``.
    """
    return cast(CursorResult[*tuple[Any, ...]], result).rowcount


def bulk_insert(session: Session, objects: Sequence[Base]) -> None:
    """Insert new ORM objects of one model with one executemany per shape, without reading ids back.

    A plain flush inserts them one row at a time on SQLite, which cannot hand back the ids of a
    multi-row insert in order; callers that need the rows select them again by a unique key. The
    objects themselves stay transient (they are only the values).
    """
    if not objects:
        return
    model = type(objects[0])
    columns = {c.key for c in sa_inspect(model).column_attrs}
    rows = [{k: v for k, v in sa_inspect(obj).dict.items() if k in columns} for obj in objects]
    session.execute(insert(model), rows)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine: SQLite gets private files, WAL, foreign keys and write-locking transactions
    (read mode: ``govern.db_tuning``); PostgreSQL a ping after idling."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_after_idle(engine)
    return engine


#: A pooled connection idle for longer than this is checked with a ping before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle: ``pool_pre_ping``, minus a round trip per request.

    ``pool_pre_ping`` sends a ``SELECT 1`` at every checkout, that is on every request: a tenth of a
    page's waits for the server. What it guards against (a database restarted or a connection cut
    while it sat in the pool: a firewall's or a proxy's idle timeout) shows on connections that sat
    idle; one used a moment ago is alive. Raising InvalidatePoolError (a DisconnectionError) here makes
    the pool replace its connections and check out again (SQLAlchemy's documented checkout contract).
    """
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["govern.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("govern.idle_since")
        if idle_since is not None and time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                # As pool_pre_ping does: after a restart the other pooled connections are dead too.
                raise InvalidatePoolError(str(exc)) from exc
            raise


#: What SQLite writes next to a database file (WAL mode, or a rollback journal).
SQLITE_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def _sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine, or None for an in-memory or URI database."""
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


def keep_sqlite_files_private(path: str) -> None:
    """Make a SQLite database file and its companions readable by their owner only (0600).

    SQLite creates a database as 0644; the folder is 0700, but a copied or moved file keeps its mode.
    The database holds wrapped keys, password hashes and the audit trail. The -wal, -shm and
    -journal files SQLite creates later take the database file's mode; existing ones are fixed here.
    """
    for name in (path, *(path + suffix for suffix in SQLITE_COMPANION_SUFFIXES)):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not the file's owner: say so, and go on
            logging.getLogger("govern").warning("cannot make %s private (0600): %s", name, exc.strerror)


def _configure_sqlite(engine: Engine) -> None:
    """Private files, WAL, foreign keys and a busy timeout; transactions as ``govern.db_tuning`` begins them.

    pysqlite delays BEGIN until the first write, so two transactions could read the same audit chain
    head: a transaction that may write begins ``BEGIN IMMEDIATE`` and holds the write lock from its start
    (SQLAlchemy's documented recipe); one that only reads begins deferred (``db_tuning.read_mode_for_sqlite``).
    """
    @event.listens_for(engine, "do_connect")
    def _create_private(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        # Create a new database file as 0600 before SQLite does (as 0644): no moment readable by others.
        path = _sqlite_file(engine)
        if path is not None and not os.path.exists(path):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass  # another process created it meanwhile; the connect handler checks its mode
            except OSError:
                pass  # a missing folder: sqlite3.connect reports it as it always did

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        path = _sqlite_file(engine)
        if path is not None:
            keep_sqlite_files_private(path)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


    db_tuning.read_mode_for_sqlite(engine)


class Database:
    """The engine and session factory of one app."""

    def __init__(self, url: str, *, lock_timeout_seconds: int | None = None,
                 statement_timeout_seconds: int | None = None) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("postgresql") and (lock_timeout_seconds or statement_timeout_seconds):
            # A request waiting on a lock (the audit chain head, a row) or a runaway query fails
            # with an OperationalError, which the app answers with a 503, instead of hanging.
            options = []
            if lock_timeout_seconds:
                options.append(f"-c lock_timeout={int(lock_timeout_seconds)}s")
            if statement_timeout_seconds:
                options.append(f"-c statement_timeout={int(statement_timeout_seconds)}s")
            kwargs["connect_args"] = {"options": " ".join(options)}
        self.engine = make_engine(url, **kwargs)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        """Register the per-context session and its teardown."""
        app.extensions["govern.db"] = self
        app.teardown_appcontext(_close_session)

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A session for work outside a request (CLI, jobs); the caller commits."""
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def database(app: Flask) -> Database:
    """Return the app's Database."""
    db: Database = app.extensions["govern.db"]
    return db


def get_session() -> Session:
    """Return the session of the current app context, opening it on first use."""
    if "db_session" not in g:
        g.db_session = database(current_app).sessionmaker()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
