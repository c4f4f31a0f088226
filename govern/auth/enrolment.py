"""Setting up a login: one-time setup secrets, the password chosen at setup, enrolling an authenticator."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.credentials import replace_recovery_codes, user_password_problems
from govern.auth.kit import AuthKit
from govern.auth.lockout import count_failure, ensure_not_locked
from govern.auth.login import GENERIC_CODE_ERROR, seed_context
from govern.auth.models import SetupToken, User
from govern.auth.sessions import end_user_sessions
from govern.auth.throttle import account_key, ip_key
from govern.crypto import totp
from govern.crypto.secretbox import SecretBoxError
from govern.crypto.tokens import new_token, token_digest
from govern.db import rowcount, utcnow
from govern.errors import ConflictError, InvalidError

SETUP_TOKEN_ERROR = "This setup secret is not valid: it may have expired or been used already. Ask an administrator for a new one."  # noqa: S105 - a message, not a secret


def issue_setup_token(session: Session, kit: AuthKit, *, user: User, purpose: str, actor: User | None) -> str:
    """Create a one-time setup secret (returned once, stored hashed); earlier unused ones die."""
    now = utcnow()
    session.execute(
        update(SetupToken)
        .where(SetupToken.user_id == user.id, SetupToken.used_at.is_(None), SetupToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = new_token()
    row = SetupToken(
        user_id=user.id,
        token_digest=token_digest(token),
        purpose=purpose,
        created_at=now,
        expires_at=now + kit.setup_token_ttl,
        created_by_id=actor.id if actor is not None else None,
    )
    session.add(row)
    session.flush()
    audit.record(session, "auth.setup_token.issued", actor=actor, target_type="user", target_id=user.id,
                 details={"purpose": purpose, "expires_at": row.expires_at.isoformat()})
    return token


def redeem_setup_token(session: Session, kit: AuthKit, *, token: str, ip: str | None) -> SetupToken:
    """Spend a live setup secret: it works once, and the setup goes on in the session that redeemed it.

    The secret is marked redeemed by one conditional update, so of two redemptions (one after the
    other, or at the same moment) exactly one wins; the other gets the same generic message as an
    unknown secret. Failures are throttled per client IP.
    """
    ensure_not_locked(session, kit, [ip_key(ip)])
    row = None
    if 20 <= len(token.strip()) <= 100:
        row = session.scalar(select(SetupToken).where(SetupToken.token_digest == token_digest(token.strip())))
    now = utcnow()
    user = session.get(User, row.user_id) if row is not None else None
    claimed = 0
    if row is not None and user is not None and user.is_active:
        claimed = rowcount(session.execute(
            update(SetupToken)
            .where(SetupToken.id == row.id, SetupToken.redeemed_at.is_(None), SetupToken.used_at.is_(None),
                   SetupToken.revoked_at.is_(None), SetupToken.expires_at > now)
            .values(redeemed_at=now)
            .execution_options(synchronize_session=False)
        ))
    if claimed != 1:
        count_failure(session, kit, email=None, ip=ip, user=None)
        audit.record(session, "auth.setup_token.rejected", outcome="failure",
                     details={"reason": "unknown" if row is None else "expired_or_used"})
        raise InvalidError(SETUP_TOKEN_ERROR)
    assert row is not None and user is not None
    session.refresh(row)
    audit.record(session, "auth.setup_token.redeemed", actor=user, target_type="user", target_id=user.id,
                 details={"purpose": row.purpose})
    return row


def live_setup_token(session: Session, token_id: int) -> SetupToken:
    """Return a redeemed setup token whose setup is still under way (between the steps of the flow).

    Only the session that redeemed the token knows its id; a revoked, expired or finished one is refused.
    """
    row = session.get(SetupToken, token_id)
    if (row is None or row.redeemed_at is None or row.used_at is not None or row.revoked_at is not None
            or row.expires_at <= utcnow()):
        raise InvalidError(SETUP_TOKEN_ERROR)
    return row


def set_password_during_setup(
    session: Session, kit: AuthKit, *, setup: SetupToken, password: str, current_password: str | None, ip: str | None
) -> User:
    """Setup step 1: a new user chooses a password; after an MFA reset the user proves theirs."""
    user = session.get(User, setup.user_id)
    assert user is not None
    ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    if setup.purpose == "mfa_reset":
        if not kit.hashing.verify(user.password_hash, current_password or ""):
            count_failure(session, kit, email=user.email, ip=ip, user=user)
            audit.record(session, "auth.setup.password_failed", actor=user, target_type="user", target_id=user.id, outcome="failure")
            raise InvalidError("The password is incorrect.", {"current_password": "The password is incorrect."})
        return user
    problems = user_password_problems(kit, user, password)
    if problems:
        raise InvalidError(problems[0], {"password": " ".join(problems)})
    user.password_hash = kit.hashing.hash(password)
    user.password_changed_at = utcnow()
    audit.record(session, "auth.password.set", actor=user, target_type="user", target_id=user.id, details={"via": "setup"})
    session.flush()
    return user


def enrolment_uri(kit: AuthKit, user: User, seed: str) -> str:
    """The otpauth:// URI shown as a QR code during enrolment."""
    return totp.provisioning_uri(seed, user.email, kit.issuer)


def seal_pending_seed(kit: AuthKit, user: User, seed: str) -> bytes:
    """Seal a not-yet-confirmed seed for storage in the server-side session."""
    return kit.mfa_box.seal(seed.encode("ascii"), seed_context(user.id) + b":pending")


def open_pending_seed(kit: AuthKit, user: User, sealed: bytes) -> str:
    """Open a pending seed sealed by ``seal_pending_seed``."""
    try:
        return kit.mfa_box.open(sealed, seed_context(user.id) + b":pending")[0].decode("ascii")
    except SecretBoxError:
        raise InvalidError("Enrolment expired; start again.") from None


def confirm_enrolment(
    session: Session, kit: AuthKit, *, setup: SetupToken, seed: str, code: str, ip: str | None
) -> tuple[User, list[str]]:
    """Setup step 2: a code from the new authenticator proves it works; MFA becomes active.

    Returns the user and their 10 new recovery codes (shown once, stored hashed).
    """
    user = session.get(User, setup.user_id)
    assert user is not None
    ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    step = totp.matching_step(seed, code)
    if step is None:
        count_failure(session, kit, email=user.email, ip=ip, user=user)
        audit.record(session, "auth.mfa.enrol_failed", actor=user, target_type="user", target_id=user.id, outcome="failure")
        raise InvalidError(GENERIC_CODE_ERROR, {"code": GENERIC_CODE_ERROR})
    claimed = session.execute(
        update(SetupToken)
        .where(SetupToken.id == setup.id, SetupToken.used_at.is_(None), SetupToken.revoked_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        raise ConflictError(SETUP_TOKEN_ERROR)
    user.mfa_seed_sealed = kit.mfa_box.seal(seed.encode("ascii"), seed_context(user.id))
    user.mfa_enabled_at = utcnow()
    user.last_totp_step = step
    codes = replace_recovery_codes(session, kit, user)
    ended = end_user_sessions(session, user=user, actor=user, reason="mfa_enrolled")
    kit.throttle.reset(session, account_key(user.email))
    audit.record(session, "auth.mfa.enrolled", actor=user, target_type="user", target_id=user.id,
                 details={"factor": "totp", "purpose": setup.purpose, "sessions_ended": ended})
    return user, codes

