"""Failure throttling per account and per client IP, in storage shared by every worker.

Each key counts consecutive failures. At the limit the key is locked for a delay that doubles
with each lockout (capped), and the counter starts again. A success resets the account's key
(not the IP's: an attacker must not clear their IP's count by logging in to their own account).
Two stores: the database (embedded default) and Redis (production). Never process memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from govern.auth.models import LoginThrottle
from govern.db import utcnow


class ThrottleUnavailableError(Exception):
    """The shared throttle store cannot be reached; logins fail closed."""


@dataclass(frozen=True)
class ThrottlePolicy:
    """Limits and delays."""

    max_failures: int
    lockout_seconds: int
    max_lockout_seconds: int
    #: Consecutive failures (across lockouts) after which only an admin can unlock (NIST: at most 100).
    hard_cap: int = 100


@dataclass(frozen=True)
class FailureOutcome:
    """What one recorded failure did to a key."""

    key: str
    failures: int
    locked_for: int  # seconds; 0 when this failure did not lock the key
    until_unlocked: bool = False  # the hard cap was reached: locked until an admin unlocks


def account_key(email: str) -> str:
    """Throttle key of a login name (hashed: the table must not list the emails that were tried)."""
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


def ip_key(ip: str | None) -> str:
    """Throttle key of a client address."""
    return f"ip:{ip or 'unknown'}"


#: Seconds a key stays locked once the hard cap is reached; an admin unlock clears it.
HARD_LOCK_SECONDS = 10 * 365 * 86400


def lock_delay(policy: ThrottlePolicy, lockouts_before: int) -> int:
    """Seconds of the next lockout: doubling per lockout, capped."""
    return min(policy.lockout_seconds * (2 ** min(lockouts_before, 20)), policy.max_lockout_seconds)


class ThrottleStore(Protocol):
    """Where failure counters live."""

    def locked_for(self, session: Session, keys: list[str]) -> int:
        """Seconds until every key in ``keys`` is unlocked (0 when none is locked)."""
        ...

    def fail(self, session: Session, key: str, policy: ThrottlePolicy) -> FailureOutcome:
        """Count one failure atomically; lock the key at the limit."""
        ...

    def reset(self, session: Session, key: str) -> None:
        """Forget the key's failures and lockouts."""
        ...


class DatabaseThrottleStore:
    """Counters in the ``login_throttles`` table, updated in the request's transaction."""

    def locked_for(self, session: Session, keys: list[str]) -> int:
        now = utcnow()
        rows = session.scalars(select(LoginThrottle.locked_until).where(LoginThrottle.key.in_(keys)))
        return max((_seconds_until(until, now) for until in rows if until is not None), default=0)

    def fail(self, session: Session, key: str, policy: ThrottlePolicy) -> FailureOutcome:
        now = utcnow()
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        first = insert(LoginThrottle).values(key=key, failures=1, consecutive_failures=1, lockouts=0, updated_at=now)
        stmt = first.on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={"failures": LoginThrottle.failures + 1, "consecutive_failures": LoginThrottle.consecutive_failures + 1,
                  "updated_at": now},
        ).returning(LoginThrottle.failures, LoginThrottle.consecutive_failures, LoginThrottle.lockouts)
        failures, consecutive, lockouts = session.execute(stmt).one()
        hard = consecutive >= policy.hard_cap
        if failures < policy.max_failures and not hard:
            return FailureOutcome(key, failures, 0)
        delay = HARD_LOCK_SECONDS if hard else lock_delay(policy, lockouts)
        row = session.get(LoginThrottle, key, populate_existing=True)
        assert row is not None
        row.failures = 0
        row.lockouts = lockouts + 1
        row.locked_until = now + timedelta(seconds=delay)
        session.flush()
        return FailureOutcome(key, failures, delay, until_unlocked=hard)

    def reset(self, session: Session, key: str) -> None:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


class RedisThrottleStore:
    """Counters in Redis, shared by every process and host; a Lua script keeps each update atomic."""

    #: KEYS[1] = counter hash. ARGV = max_failures, base delay, max delay, now, ttl.
    _FAIL_SCRIPT = """
    local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
    local consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
    local lockouts = tonumber(redis.call('HGET', KEYS[1], 'lockouts') or '0')
    local delay = 0
    local hard = 0
    if consecutive >= tonumber(ARGV[6]) then
      hard = 1
      delay = tonumber(ARGV[7])
    elseif failures >= tonumber(ARGV[1]) then
      delay = math.min(tonumber(ARGV[2]) * (2 ^ math.min(lockouts, 20)), tonumber(ARGV[3]))
    end
    if delay > 0 then
      redis.call('HSET', KEYS[1], 'failures', 0, 'lockouts', lockouts + 1, 'locked_until', tonumber(ARGV[4]) + delay)
    end
    if hard == 1 then
      redis.call('PERSIST', KEYS[1])
    else
      redis.call('EXPIRE', KEYS[1], ARGV[5])
    end
    return {failures, delay, hard}
    """

    def __init__(self, url: str, prefix: str = "govern:throttle:") -> None:
        import redis  # noqa: PLC0415 loaded only when GOVERN_REDIS_URL is set

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._fail = self._redis.register_script(self._FAIL_SCRIPT)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)

    def _name(self, key: str) -> str:
        return self._prefix + key

    def locked_for(self, session: Session, keys: list[str]) -> int:
        now = utcnow().timestamp()
        try:
            pipe = self._redis.pipeline()
            for key in keys:
                pipe.hget(self._name(key), "locked_until")
            values = pipe.execute()
        except self._errors as exc:
            raise ThrottleUnavailableError("the throttle store (Redis) is unreachable") from exc
        return max((max(0, int(float(v) - now + 0.999)) for v in values if v is not None), default=0)

    def fail(self, session: Session, key: str, policy: ThrottlePolicy) -> FailureOutcome:
        # Keep counters long enough to outlive the longest lockout and a day of slow guessing.
        ttl = max(policy.max_lockout_seconds * 2, 86400)
        try:
            failures, delay, hard = self._fail(
                keys=[self._name(key)],
                args=[policy.max_failures, policy.lockout_seconds, policy.max_lockout_seconds,
                      int(utcnow().timestamp()), ttl, policy.hard_cap, HARD_LOCK_SECONDS],
            )
        except self._errors as exc:
            raise ThrottleUnavailableError("the throttle store (Redis) is unreachable") from exc
        return FailureOutcome(key, int(failures), int(delay), until_unlocked=bool(hard))

    def reset(self, session: Session, key: str) -> None:
        try:
            self._redis.delete(self._name(key))
        except self._errors as exc:
            raise ThrottleUnavailableError("the throttle store (Redis) is unreachable") from exc


def _seconds_until(until: datetime, now: datetime) -> int:
    seconds = (until - now).total_seconds()
    return max(0, int(seconds + 0.999))
