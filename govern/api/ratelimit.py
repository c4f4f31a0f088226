"""Per-token rate limits in storage every worker shares: the database (embedded default) or Redis.

A fixed window per token: at most ``limit`` requests a minute; past it a 429 with Retry-After (the
seconds to the next window). Never process memory: four gunicorn workers must count as one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
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


class RateStore(Protocol):
    """Where the counts of the current window live."""

    def hit(self, session: Session, key: str, window: int) -> int:
        """Count one request of ``key`` in ``window``; return the window's count so far."""
        ...


class DatabaseRateStore:
    """One row per token in ``api_rate_counters``, updated in the request's transaction (committed by the caller)."""

    def hit(self, session: Session, key: str, window: int) -> int:
        insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        same = RateCounter.window_start == window
        statement = insert(RateCounter).values(key=key, window_start=window, count=1).on_conflict_do_update(
            index_elements=[RateCounter.key],
            set_={"count": _case(same, RateCounter.count + 1, 1), "window_start": window},
        ).returning(RateCounter.count)
        return int(session.execute(statement).scalar_one())


def _case(condition: Any, then: Any, otherwise: Any) -> Any:
    from sqlalchemy import case  # noqa: PLC0415 - kept next to its one use

    return case((condition, then), else_=otherwise)


class RedisRateStore:
    """INCR of a key per token and window, expiring with the window."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 - loaded only when GOVERN_REDIS_URL is set

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, session: Session, key: str, window: int) -> int:
        name = f"govern:api-rate:{key}:{window}"
        pipe = self._client.pipeline()
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
        return int(count)


def check(store: RateStore, session: Session, key: str, limit: int, now: float | None = None) -> Verdict:
    """Count this request against ``key``'s window."""
    moment = time.time() if now is None else now
    window = int(moment // WINDOW_SECONDS)
    count = store.hit(session, key, window)
    reset_in = max(1, int((window + 1) * WINDOW_SECONDS - moment))
    return Verdict(allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset_in=reset_in)
