"""Per-token rate limits in storage every worker shares: the database (embedded default) or Redis.

A fixed window per token: at most ``limit`` requests a minute; past it a 429 with Retry-After (the
seconds to the next window). Never process memory: four gunicorn workers must count as one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from govern.api.models import RateCounter

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    """What one request did to its token's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_in: int


class RateStoreUnavailableError(Exception):
    """The shared counter store cannot be reached: the API refuses (fails closed) rather than count nothing."""


class RateStore(Protocol):
    """Where the counts of the current window live."""

    def hit(self, session: Session, key: str, window: int, limit: int) -> int:
        """Count one request of ``key`` in ``window``; return its place in the window (1 for the first)."""
        ...


def lease_size(limit: int) -> int:
    """How many places of a window a worker of the database store takes at once: one for every 100 of the limit,
    at most 20, so a limit under 200 is counted request by request."""
    return max(1, min(20, limit // 100))


@dataclass
class _Lease:
    window: int
    next_place: int
    last_place: int


class DatabaseRateStore:
    """One row per token in ``api_rate_counters``; each worker takes a lease of places from it at a time.

    On SQLite every write takes the database's one write lock, so a write per request made two workers queue
    for it (scripts/bench's API pages: about 7% of a GET by id). A worker adds ``lease_size(limit)`` to the row
    at once and hands out those places itself: the places are unique across workers, so never more than
    ``limit`` requests pass in a window; a worker's unused places are lost at the window's end, so with W
    workers a token may be refused up to W x (lease - 1) requests early (4 workers, the default 600 a minute:
    at most 15 early). Limits under 200 take one place per request, exactly.

    The write goes outside the request's transaction, on the bare driver connection: the count is shared the
    moment it is taken, and the statement costs about 0.03 ms on SQLite where the same upsert through an ORM
    session or an autocommit engine connection cost 0.5-0.75 ms (scripts/bench; measured 2026-12-04).
    """

    _SQL = ("INSERT INTO api_rate_counters (key, window_start, count) VALUES ({p}, {p}, {p}) ON CONFLICT (key) "
            "DO UPDATE SET count = CASE WHEN api_rate_counters.window_start = excluded.window_start "
            "THEN api_rate_counters.count + excluded.count ELSE excluded.count END, "
            "window_start = excluded.window_start RETURNING count")

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()  # threaded workers share the process's leases

    def hit(self, session: Session, key: str, window: int, limit: int) -> int:
        """A place from this worker's lease, taking a new lease when it is spent (which commits ``session``)."""
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.window != window or lease.next_place > lease.last_place:
                size = lease_size(limit)
                last = self._take(session, key, window, size)
                lease = self._leases[key] = _Lease(window, last - size + 1, last)
                if len(self._leases) > 10_000:  # a worker serving very many tokens: keep only this one's lease
                    self._leases = {key: lease}
            place = lease.next_place
            lease.next_place += 1
            return place

    def _take(self, session: Session, key: str, window: int, size: int) -> int:
        """Add ``size`` places to ``key``'s window (a new window starts at ``size``); the window's count after."""
        bind = session.get_bind()
        if not isinstance(bind, Engine):  # a session bound to one connection (the tests' savepoints)
            insert: Any = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
            same = RateCounter.window_start == window
            statement = insert(RateCounter).values(key=key, window_start=window, count=size).on_conflict_do_update(
                index_elements=[RateCounter.key],
                set_={"count": _case(same, RateCounter.count + size, size), "window_start": window},
            ).returning(RateCounter.count)
            count = int(session.execute(statement).scalar_one())
            session.commit()
            return count
        # End the request's read snapshot first (nothing is written before the count): on SQLite a reader open
        # across every write keeps the WAL from restarting; it grew without end and this write went from
        # 0.03 ms to 0.7 ms within a few thousand requests (scripts/bench's API pages).
        session.commit()
        sql = self._SQL.format(p="%s" if bind.dialect.name == "postgresql" else "?")
        connection = bind.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, (key, window, size))
            row = cursor.fetchone()
            connection.commit()
        finally:
            connection.close()
        assert row is not None  # RETURNING of an upsert always gives its row
        return int(row[0])


def _case(condition: Any, then: Any, otherwise: Any) -> Any:
    from sqlalchemy import case  # noqa: PLC0415 - kept next to its one use

    return case((condition, then), else_=otherwise)


class RedisRateStore:
    """INCR of a key per token and window, expiring with the window."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - loaded only when GOVERN_REDIS_URL is set

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        #: Keys are <prefix><token key>:<window>; tests set a prefix of their own.
        self.prefix = "govern:api-rate:"

    def hit(self, session: Session, key: str, window: int, limit: int) -> int:
        import redis  # noqa: PLC0415 - loaded only when GOVERN_REDIS_URL is set

        name = f"{self.prefix}{key}:{window}"
        pipe = self._client.pipeline()
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
        try:
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            raise RateStoreUnavailableError(str(exc)) from exc
        return int(count)


def check(store: RateStore, session: Session, key: str, limit: int, now: float | None = None) -> Verdict:
    """Count this request against ``key``'s window."""
    moment = time.time() if now is None else now
    window = int(moment // WINDOW_SECONDS)
    count = store.hit(session, key, window, limit)
    reset_in = max(1, int((window + 1) * WINDOW_SECONDS - moment))
    return Verdict(allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset_in=reset_in)
