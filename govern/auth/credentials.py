"""A signed-in user's own credentials: changing the password, a new set of recovery codes."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.kit import AuthKit
from govern.auth.lockout import count_failure, ensure_not_locked
from govern.auth.login import verify_second_factor
from govern.auth.models import RecoveryCode, User
from govern.auth.passwords import password_problems
from govern.auth.sessions import end_user_sessions
from govern.auth.throttle import account_key, ip_key
from govern.crypto.tokens import new_recovery_code, normalise_recovery_code
from govern.db import utcnow
from govern.errors import InvalidError

RECOVERY_CODE_COUNT = 10


def user_password_problems(kit: AuthKit, user: User, password: str) -> list[str]:
    """Why ``user`` may not choose ``password``: the rules, with their name, email and the company's name."""
    return password_problems(password, email=user.email, extra_words=tuple(user.person.full_name.split()),
                             organisation=kit.organisation_name)


def replace_recovery_codes(session: Session, kit: AuthKit, user: User) -> list[str]:
    """Give ``user`` a new set of recovery codes (stored hashed, returned once); the old set dies."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=kit.hashing.hash(normalise_recovery_code(code))) for code in codes
    )
    session.flush()
    return codes


def regenerate_recovery_codes(session: Session, kit: AuthKit, *, user: User) -> list[str]:
    """Replace the user's recovery codes; the old ones stop working."""
    codes = replace_recovery_codes(session, kit, user)
    audit.record(session, "auth.recovery_codes.regenerated", actor=user, target_type="user", target_id=user.id,
                 details={"count": len(codes)})
    return codes


def change_password(
    session: Session, kit: AuthKit, *, user: User, current_password: str, code: str, new_password: str,
    ip: str | None, keep_session_id: str | None,
) -> int:
    """Change the user's own password: current password and a fresh TOTP code are required.

    Every other session of the user ends. Returns how many ended.
    """
    ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    if not kit.hashing.verify(user.password_hash, current_password):
        count_failure(session, kit, email=user.email, ip=ip, user=user)
        audit.record(session, "auth.password.change_failed", actor=user, target_type="user", target_id=user.id, outcome="failure", details={"factor": "password"})
        raise InvalidError("Your current password is incorrect.", {"current_password": "Your current password is incorrect."})
    # The new password is checked before the code, so a refused password does not use up the code.
    if new_password == current_password:
        raise InvalidError("Choose a password different from the current one.", {"new_password": "Choose a different password."})
    problems = user_password_problems(kit, user, new_password)
    if problems:
        raise InvalidError(problems[0], {"new_password": " ".join(problems)})
    verify_second_factor(session, kit, user=user, code=code, ip=ip, purpose="password_change")
    user.password_hash = kit.hashing.hash(new_password)
    user.password_changed_at = utcnow()
    ended = end_user_sessions(session, user=user, actor=user, reason="password_changed", keep_session_id=keep_session_id)
    audit.record(session, "auth.password.changed", actor=user, target_type="user", target_id=user.id, details={"sessions_ended": ended})
    return ended
