"""Fixtures: the real database (SQLite by default, PostgreSQL with GOVERN_TEST_DATABASE_URL),
one transaction per test rolled back afterwards, the app, a client, the company a test builds
(tests/factories.py) and a vault keyring."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from govern.app import create_app
from govern.crypto.keyring import Keyring
from govern.db import Database, database, make_engine
from govern.offboarding.invariants import find_violations
from govern.schema import upgrade
from tests.factories import Company
from tests.support import app_config


def pytest_report_header(config: Any) -> list[str]:
    url = os.environ.get("GOVERN_TEST_DATABASE_URL")
    return [f"govern database: {'PostgreSQL (' + url.rsplit('/', 1)[-1] + ')' if url else 'SQLite'}"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database of this test run, migrated to the latest revision once."""
    url = os.environ.get("GOVERN_TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def is_postgresql(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test itself failed (the leaver check below then stays quiet)."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_TEST_FAILED] = True
    return report


_TEST_FAILED = pytest.StashKey[bool]()


def _checks_leavers(request: pytest.FixtureRequest) -> bool:
    return (request.node.get_closest_marker("allow_leaver_violations") is None
            and not request.node.stash.get(_TEST_FAILED, False))


def check_leaver_invariants(session: Session) -> None:
    """Fail when the database holds a leaver who keeps access (govern.offboarding.invariants)."""
    try:
        violations = find_violations(session)
    except DBAPIError as exc:
        if type(exc.orig).__name__ == "InFailedSqlTransaction":
            return  # PostgreSQL: the test left its transaction aborted, so nothing it did survives
        raise
    if violations:
        pytest.fail("The test left the leaver invariants broken (a status changed outside an offboarding?):\n"
                    + "\n".join(v.line() for v in violations), pytrace=False)


@pytest.fixture
def connection(engine: Engine, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """One outer transaction per test; everything the test and the app commit is rolled back.

    Before the rollback, the leaver invariants are checked on what the test left, so every path
    that changes a person's status is checked by every test that takes it. A test that breaks
    them on purpose is marked ``allow_leaver_violations``.
    """
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
        if _checks_leavers(request) and outer.is_active:
            # What the app committed (the test's own session is checked by the db fixture).
            with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
                check_leaver_invariants(session)
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def app(tmp_path: Path, database_url: str, connection: Connection, app_overrides: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(app_config(tmp_path, database_url, **app_overrides))
    db = app.extensions["govern.db"]
    db.engine.dispose()
    db.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    yield app


@pytest.fixture
def db(app: Flask, connection: Connection, request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session on the test's connection, for arranging data and checking results."""
    # No app context is pushed here: the test client's requests must each get their own.
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    try:
        if _checks_leavers(request) and session.is_active:
            # Before the close rolls back what the test left uncommitted: services never commit.
            try:
                session.flush()
            except Exception:  # a test that left its session broken on purpose; the connection check still runs
                session.rollback()
            else:
                check_leaver_invariants(session)
    finally:
        session.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def kit(app: Flask) -> Any:
    return app.extensions["govern.auth"]


@pytest.fixture
def company(app: Flask, db: Session) -> Company:
    """An empty company to build on (tests/factories.py); an area may override it with its cast."""
    return Company(app, db)


@pytest.fixture
def keyring() -> Keyring:
    """A fresh vault keyring; a module unseals its app with it by overriding ``app_overrides``."""
    return Keyring.generate()


@pytest.fixture
def ring(app: Flask) -> Keyring:
    """The keyring the app actually uses."""
    loaded: Keyring = app.extensions["govern.keyring"]
    assert loaded is not None, app.extensions["govern.keyring_problem"]
    return loaded


@pytest.fixture
def scratch_database_url(tmp_path: Path, database_url: str) -> Iterator[str]:
    """An empty database of the kind under test, committed to for real and removed afterwards.

    SQLite: a new file. PostgreSQL: a new database on the same server, dropped at the end.
    """
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    base, _, _ = database_url.rpartition("/")
    name = f"govern_scratch_{secrets.token_hex(6)}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def committed_database(scratch_database_url: str) -> Iterator[Database]:
    """The scratch database at the latest migration, with a Database to write to it for real."""
    upgrade(scratch_database_url)
    database = Database(scratch_database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def scratch_app(tmp_path: Path, scratch_database_url: str) -> Iterator[Flask]:
    """An app on the scratch database at the latest migration, for tests whose work is committed for real."""
    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    yield app
    database(app).engine.dispose()
