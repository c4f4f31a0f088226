"""Signing in and out: the password, then the second factor (a TOTP code or a recovery code)."""

from __future__ import annotations

from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.kit import AuthKit
from govern.auth.lockout import count_failure, ensure_not_locked
from govern.auth.models import RecoveryCode, User
from govern.auth.throttle import account_key, ip_key
from govern.crypto import totp
from govern.crypto.secretbox import SecretBoxError
from govern.crypto.tokens import normalise_recovery_code
from govern.db import rowcount, utcnow
from govern.directory.services import normalise_email
from govern.errors import ConflictError, ForbiddenError, InvalidError

GENERIC_LOGIN_ERROR = "The email or password is incorrect."
GENERIC_CODE_ERROR = "That code is not valid. Codes are used once and change every 30 seconds."


def check_password_login(session: Session, kit: AuthKit, *, email: str, password: str, ip: str | None) -> User:
    """First step of login: check the password. Returns the user, who still owes a second factor.

    Unknown emails, wrong passwords and deactivated users get the same message and cost the
    same time (a dummy hash is verified), so responses do not reveal who has an account.
    """
    email = normalise_email(email)
    ensure_not_locked(session, kit, [account_key(email), ip_key(ip)])
    user = session.scalar(select(User).where(User.email == email))
    ok = kit.hashing.verify(user.password_hash if user is not None else None, password)
    if not ok or user is None or not user.is_active:
        count_failure(session, kit, email=email, ip=ip, user=user)
        audit.record(
            session,
            "auth.login.password_failed",
            target_type="user" if user is not None else None,
            target_id=user.id if user is not None else None,
            outcome="failure",
            details={"known_user": user is not None, "factor": "password"},
        )
        raise InvalidError(GENERIC_LOGIN_ERROR)
    if kit.hashing.needs_rehash(user.password_hash or ""):
        user.password_hash = kit.hashing.hash(password)
        audit.record(session, "auth.password.rehashed", actor=user, target_type="user", target_id=user.id)
    if not user.has_mfa:
        audit.record(session, "auth.login.setup_incomplete", actor=user, target_type="user", target_id=user.id, outcome="denied")
        raise ForbiddenError("Your sign-in is not set up yet: use the setup secret an administrator gave you.")
    audit.record(session, "auth.login.password_ok", actor=user, target_type="user", target_id=user.id, details={"factor": "password"})
    session.flush()
    return user


def _open_seed(kit: AuthKit, user: User) -> str:
    assert user.mfa_seed_sealed is not None
    try:
        seed, under_old_key = kit.mfa_box.open(user.mfa_seed_sealed, seed_context(user.id))
    except SecretBoxError:
        raise ConflictError("Your authenticator cannot be checked (the server's key changed). Ask an administrator to reset it.") from None
    if under_old_key:
        # Re-seal under the current secret key, so the old one can leave GOVERN_SECRET_KEY_FALLBACKS.
        user.mfa_seed_sealed = kit.mfa_box.seal(seed, seed_context(user.id))
    return seed.decode("ascii")


def seed_context(user_id: int) -> bytes:
    """What a user's TOTP seed is sealed under: it opens for that user's row only."""
    return f"govern:users.mfa_seed:{user_id}".encode()


def _accept_totp(session: Session, user: User, seed: str, code: str) -> tuple[bool, bool]:
    """Return (accepted, replayed). Acceptance moves last_totp_step forward atomically."""
    step = totp.matching_step(seed, code)
    if step is None:
        return False, False
    result = session.execute(
        update(User)
        .where(User.id == user.id, User.last_totp_step < step)
        .values(last_totp_step=step)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False, True
    user.last_totp_step = step
    return True, False


def verify_second_factor(
    session: Session, kit: AuthKit, *, user: User, code: str, ip: str | None, purpose: str
) -> str:
    """Check a TOTP code (or, at login, a recovery code). Returns the factor used.

    Failures count towards the account's lockout; a replayed code is refused and audited.
    """
    ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    if not user.is_active or not user.has_mfa:
        raise InvalidError(GENERIC_CODE_ERROR)
    cleaned = code.strip().replace(" ", "")
    if len(cleaned) == totp.DIGITS and cleaned.isdigit():
        accepted, replayed = _accept_totp(session, user, _open_seed(kit, user), cleaned)
        if accepted:
            kit.throttle.reset(session, account_key(user.email))
            audit.record(session, f"auth.{purpose}.mfa_ok", actor=user, target_type="user", target_id=user.id, details={"factor": "totp"})
            return "totp"
        if replayed:
            audit.record(session, "auth.totp.replayed", actor=user, target_type="user", target_id=user.id, outcome="denied", details={"purpose": purpose})
    elif purpose == "login" and _use_recovery_code(session, kit, user, cleaned):
        kit.throttle.reset(session, account_key(user.email))
        remaining = count_unused_recovery_codes(session, user)
        audit.record(session, "auth.recovery_code.used", actor=user, target_type="user", target_id=user.id, details={"factor": "recovery_code", "remaining": remaining})
        return "recovery_code"
    count_failure(session, kit, email=user.email, ip=ip, user=user)
    audit.record(session, f"auth.{purpose}.mfa_failed", actor=user, target_type="user", target_id=user.id, outcome="failure", details={"factor": "totp"})
    raise InvalidError(GENERIC_CODE_ERROR)


def _use_recovery_code(session: Session, kit: AuthKit, user: User, code: str) -> bool:
    normalised = normalise_recovery_code(code)
    if not normalised or len(normalised) > 40:
        return False
    candidates = session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for candidate in candidates:
        if kit.hashing.verify(candidate.code_hash, normalised):
            result = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == candidate.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return rowcount(result) == 1
    return False


def count_unused_recovery_codes(session: Session, user: User) -> int:
    """How many recovery codes the user has left."""
    return session.scalar(_UNUSED_CODES, {"user_id": user.id}) or 0


#: Built once: every home page asks it.
_UNUSED_CODES = select(func.count()).select_from(RecoveryCode).where(
    RecoveryCode.user_id == bindparam("user_id", type_=Integer), RecoveryCode.used_at.is_(None))


def record_login(session: Session, *, user: User, factor: str) -> None:
    """The login completed: stamp it and audit it."""
    user.last_login_at = utcnow()
    audit.record(session, "auth.login.succeeded", actor=user, target_type="user", target_id=user.id, details={"factor": factor})


def record_logout(session: Session, *, user: User) -> None:
    """Audit a logout (the session interface deletes the session row)."""
    audit.record(session, "auth.logout", actor=user, target_type="user", target_id=user.id)
