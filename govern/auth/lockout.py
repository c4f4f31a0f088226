"""The lockout guard of every credential check: refuse while locked, count a failure, audit a lockout."""

from __future__ import annotations

from sqlalchemy.orm import Session

from govern import audit
from govern.auth.kit import AuthKit
from govern.auth.models import User
from govern.auth.throttle import ThrottlePolicy, account_key, ip_key
from govern.errors import ThrottledError


def ensure_not_locked(session: Session, kit: AuthKit, keys: list[str]) -> None:
    """Raise ThrottledError while any of ``keys`` (an account's, a client IP's) is locked."""
    wait = kit.throttle.locked_for(session, keys)
    if wait > 0:
        # The 429 handler audits the refusal in its own transaction (this one is rolled back).
        raise ThrottledError(f"Too many failed attempts. Try again in {_humanise(wait)}.", wait)


def count_failure(session: Session, kit: AuthKit, *, email: str | None, ip: str | None, user: User | None) -> None:
    """Count a failed check against the client IP (and the account); audit a lockout it causes."""
    targets: list[tuple[str, ThrottlePolicy, str]] = [(ip_key(ip), kit.ip_policy, "ip")]
    if email:
        targets.append((account_key(email), kit.account_policy, "account"))
    for key, policy, scope in targets:
        outcome = kit.throttle.fail(session, key, policy)
        if outcome.locked_for:
            audit.record(
                session,
                "auth.lockout",
                actor=None,
                target_type="user" if scope == "account" and user is not None else None,
                target_id=user.id if scope == "account" and user is not None else None,
                outcome="denied",
                details={"scope": scope, "locked_seconds": outcome.locked_for, "after_failures": outcome.failures,
                         "until_admin_unlocks": outcome.until_unlocked},
            )


def _humanise(seconds: int) -> str:
    if seconds > 30 * 86400:
        return "a while: an administrator must unlock the account"
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{(seconds + 59) // 60} minutes"
