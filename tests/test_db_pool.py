"""PostgreSQL pool: a connection that sat idle is checked before use; one used a moment ago is not.

``pool_pre_ping`` cost every request a ``SELECT 1`` round trip. The check now runs only after
``PING_AFTER_IDLE_SECONDS`` in the pool, which is where dead connections come from (a restarted
server, a proxy or firewall dropping idle connections).
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import govern.db
from govern.db import PING_AFTER_IDLE_SECONDS, make_engine


@pytest.fixture
def pg_url(scratch_database_url) -> str:
    if not scratch_database_url.startswith("postgresql"):
        pytest.skip("SQLite connections live in the process; there is nothing to ping")
    return scratch_database_url


@pytest.fixture
def engine(pg_url):
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def _kill(pg_url: str, pid: int) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(50):  # wait until the server has let it go
                if not conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}):
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()


def _count_pings(engine, monkeypatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection):
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(engine, monkeypatch):
    first = _backend_pid(engine)
    pings = _count_pings(engine, monkeypatch)
    assert _backend_pid(engine) == first
    assert _backend_pid(engine) == first
    assert pings == []


def test_a_connection_that_sat_idle_and_died_is_replaced_before_use(engine, pg_url, monkeypatch):
    first = _backend_pid(engine)
    _kill(pg_url, first)
    pings = _count_pings(engine, monkeypatch)
    later = time.monotonic() + PING_AFTER_IDLE_SECONDS + 1
    monkeypatch.setattr(govern.db.time, "monotonic", lambda: later)
    second = _backend_pid(engine)  # no error: the ping found it dead and the pool reconnected
    assert second != first
    assert len(pings) == 1


def test_a_connection_that_sat_idle_and_lives_is_pinged_and_kept(engine, monkeypatch):
    first = _backend_pid(engine)
    pings = _count_pings(engine, monkeypatch)
    later = time.monotonic() + PING_AFTER_IDLE_SECONDS + 1
    monkeypatch.setattr(govern.db.time, "monotonic", lambda: later)
    assert _backend_pid(engine) == first
    assert len(pings) == 1


def test_a_connection_cut_while_busy_fails_once_and_the_pool_recovers(engine, pg_url):
    # The price of skipping the ping: a connection cut within seconds of its last use fails the one
    # statement that finds it dead (a web request answers 503); the pool then starts afresh.
    first = _backend_pid(engine)
    _kill(pg_url, first)
    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _backend_pid(engine) != first
