"""Per-token rate limits in storage every worker shares: the database (embedded default) or Redis.

A fixed window per token: at most ``limit`` requests a minute; past it a 429 with Retry-After (the
seconds to the next window). Never process memory: four gunicorn workers must count as one.
"""

from __future__ import annotations

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

    def hit(self, session: Session, key: str, window: int) -> int:
        """Count one request of ``key`` in ``window``; return the window's count so far."""
        ...


class DatabaseRateStore:
    """One row per token in ``api_rate_counters``, counted by one statement on a pooled connection of its own.

    Outside the request's transaction, on the bare driver connection: the count is shared the moment it is
    taken, a request that only reads keeps its read-mode transaction, and the statement costs about 0.03 ms
    on SQLite where the same upsert through an ORM session or an autocommit engine connection cost 0.5-0.75 ms
    (scripts/bench's API pages; measured 2026-12-04).
    """

    _SQL = ("INSERT INTO api_rate_counters (key, window_start, count) VALUES ({p}, {p}, 1) ON CONFLICT (key) DO UPDATE "
            "SET count = CASE WHEN api_rate_counters.window_start = excluded.window_start "
            "THEN api_rate_counters.count + 1 ELSE 1 END, window_start = excluded.window_start RETURNING count")

    def hit(self, session: Session, key: str, window: int) -> int:
        bind = session.get_bind()
        if not isinstance(bind, Engine):  # a session bound to one connection (the tests' savepoints)
            insert: Any = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
            same = RateCounter.window_start == window
            statement = insert(RateCounter).values(key=key, window_start=window, count=1).on_conflict_do_update(
                index_elements=[RateCounter.key],
                set_={"count": _case(same, RateCounter.count + 1, 1), "window_start": window},
            ).returning(RateCounter.count)
            count = int(session.execute(statement).scalar_one())
            session.commit()
            return count
        sql = self._SQL.format(p="%s" if bind.dialect.name == "postgresql" else "?")
        connection = bind.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, (key, window))
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

    def hit(self, session: Session, key: str, window: int) -> int:
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
    count = store.hit(session, key, window)
    reset_in = max(1, int((window + 1) * WINDOW_SECONDS - moment))
    return Verdict(allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset_in=reset_in)
