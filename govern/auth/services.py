"""Login, second factor, setup, sessions and app-role administration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Integer, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from govern import audit, timezones
from govern.auth.models import APP_ROLES, RecoveryCode, SetupToken, User, UserRole, WebSession
from govern.auth.passwords import PasswordHashing, password_problems
from govern.auth.throttle import (
    ThrottlePolicy,
    ThrottleStore,
    account_key,
    ip_key,
)
from govern.auth.users import count_active_admins
from govern.crypto import totp
from govern.crypto.secretbox import SecretBox, SecretBoxError
from govern.crypto.tokens import new_recovery_code, new_token, normalise_recovery_code, token_digest
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.directory.services import find_person_by_email, normalise_email, validate_email
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, ThrottledError

RECOVERY_CODE_COUNT = 10
GENERIC_LOGIN_ERROR = "The email or password is incorrect."
GENERIC_CODE_ERROR = "That code is not valid. Codes are used once and change every 30 seconds."
SETUP_TOKEN_ERROR = "This setup secret is not valid: it may have expired or been used already. Ask an administrator for a new one."  # noqa: S105 - a message, not a secret


@dataclass
class AuthKit:
    """Everything the auth services need that comes from configuration (injected by create_app)."""

    hashing: PasswordHashing
    mfa_box: SecretBox
    throttle: ThrottleStore
    account_policy: ThrottlePolicy
    ip_policy: ThrottlePolicy
    setup_token_ttl: timedelta
    issuer: str
    #: GOVERN_ORGANISATION_NAME: refused in passwords as a context word.
    organisation_name: str = ""


# --- throttling -------------------------------------------------------------------------------


def _ensure_not_locked(session: Session, kit: AuthKit, keys: list[str]) -> None:
    wait = kit.throttle.locked_for(session, keys)
    if wait > 0:
        # The 429 handler audits the refusal in its own transaction (this one is rolled back).
        raise ThrottledError(f"Too many failed attempts. Try again in {_humanise(wait)}.", wait)


def _count_failure(session: Session, kit: AuthKit, *, email: str | None, ip: str | None, user: User | None) -> None:
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


# --- login ------------------------------------------------------------------------------------


def check_password_login(session: Session, kit: AuthKit, *, email: str, password: str, ip: str | None) -> User:
    """First step of login: check the password. Returns the user, who still owes a second factor.

    Unknown emails, wrong passwords and deactivated users get the same message and cost the
    same time (a dummy hash is verified), so responses do not reveal who has an account.
    """
    email = normalise_email(email)
    _ensure_not_locked(session, kit, [account_key(email), ip_key(ip)])
    user = session.scalar(select(User).where(User.email == email))
    ok = kit.hashing.verify(user.password_hash if user is not None else None, password)
    if not ok or user is None or not user.is_active:
        _count_failure(session, kit, email=email, ip=ip, user=user)
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
        seed, under_old_key = kit.mfa_box.open(user.mfa_seed_sealed, _seed_context(user.id))
    except SecretBoxError:
        raise ConflictError("Your authenticator cannot be checked (the server's key changed). Ask an administrator to reset it.") from None
    if under_old_key:
        # Re-seal under the current secret key, so the old one can leave GOVERN_SECRET_KEY_FALLBACKS.
        user.mfa_seed_sealed = kit.mfa_box.seal(seed, _seed_context(user.id))
    return seed.decode("ascii")


def _seed_context(user_id: int) -> bytes:
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
    _ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
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
    _count_failure(session, kit, email=user.email, ip=ip, user=user)
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


# --- setup: new users and MFA resets ----------------------------------------------------------


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
    _ensure_not_locked(session, kit, [ip_key(ip)])
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
        _count_failure(session, kit, email=None, ip=ip, user=None)
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
    _ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    if setup.purpose == "mfa_reset":
        if not kit.hashing.verify(user.password_hash, current_password or ""):
            _count_failure(session, kit, email=user.email, ip=ip, user=user)
            audit.record(session, "auth.setup.password_failed", actor=user, target_type="user", target_id=user.id, outcome="failure")
            raise InvalidError("The password is incorrect.", {"current_password": "The password is incorrect."})
        return user
    problems = _password_problems(kit, user, password)
    if problems:
        raise InvalidError(problems[0], {"password": " ".join(problems)})
    user.password_hash = kit.hashing.hash(password)
    user.password_changed_at = utcnow()
    audit.record(session, "auth.password.set", actor=user, target_type="user", target_id=user.id, details={"via": "setup"})
    session.flush()
    return user


def _password_problems(kit: AuthKit, user: User, password: str) -> list[str]:
    """Why ``user`` may not choose ``password``: the rules, with their name, email and the company's name."""
    return password_problems(password, email=user.email, extra_words=tuple(user.person.full_name.split()),
                             organisation=kit.organisation_name)


def enrolment_uri(kit: AuthKit, user: User, seed: str) -> str:
    """The otpauth:// URI shown as a QR code during enrolment."""
    return totp.provisioning_uri(seed, user.email, kit.issuer)


def seal_pending_seed(kit: AuthKit, user: User, seed: str) -> bytes:
    """Seal a not-yet-confirmed seed for storage in the server-side session."""
    return kit.mfa_box.seal(seed.encode("ascii"), _seed_context(user.id) + b":pending")


def open_pending_seed(kit: AuthKit, user: User, sealed: bytes) -> str:
    """Open a pending seed sealed by ``seal_pending_seed``."""
    try:
        return kit.mfa_box.open(sealed, _seed_context(user.id) + b":pending")[0].decode("ascii")
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
    _ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    step = totp.matching_step(seed, code)
    if step is None:
        _count_failure(session, kit, email=user.email, ip=ip, user=user)
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
    user.mfa_seed_sealed = kit.mfa_box.seal(seed.encode("ascii"), _seed_context(user.id))
    user.mfa_enabled_at = utcnow()
    user.last_totp_step = step
    codes = _replace_recovery_codes(session, kit, user)
    ended = end_user_sessions(session, user=user, actor=user, reason="mfa_enrolled")
    kit.throttle.reset(session, account_key(user.email))
    audit.record(session, "auth.mfa.enrolled", actor=user, target_type="user", target_id=user.id,
                 details={"factor": "totp", "purpose": setup.purpose, "sessions_ended": ended})
    return user, codes


def _replace_recovery_codes(session: Session, kit: AuthKit, user: User) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=kit.hashing.hash(normalise_recovery_code(code))) for code in codes
    )
    session.flush()
    return codes


def regenerate_recovery_codes(session: Session, kit: AuthKit, *, user: User) -> list[str]:
    """Replace the user's recovery codes; the old ones stop working."""
    codes = _replace_recovery_codes(session, kit, user)
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
    _ensure_not_locked(session, kit, [account_key(user.email), ip_key(ip)])
    if not kit.hashing.verify(user.password_hash, current_password):
        _count_failure(session, kit, email=user.email, ip=ip, user=user)
        audit.record(session, "auth.password.change_failed", actor=user, target_type="user", target_id=user.id, outcome="failure", details={"factor": "password"})
        raise InvalidError("Your current password is incorrect.", {"current_password": "Your current password is incorrect."})
    # The new password is checked before the code, so a refused password does not use up the code.
    if new_password == current_password:
        raise InvalidError("Choose a password different from the current one.", {"new_password": "Choose a different password."})
    problems = _password_problems(kit, user, new_password)
    if problems:
        raise InvalidError(problems[0], {"new_password": " ".join(problems)})
    verify_second_factor(session, kit, user=user, code=code, ip=ip, purpose="password_change")
    user.password_hash = kit.hashing.hash(new_password)
    user.password_changed_at = utcnow()
    ended = end_user_sessions(session, user=user, actor=user, reason="password_changed", keep_session_id=keep_session_id)
    audit.record(session, "auth.password.changed", actor=user, target_type="user", target_id=user.id, details={"sessions_ended": ended})
    return ended


# --- sessions -----------------------------------------------------------------------------------


def end_user_sessions(
    session: Session, *, user: User, actor: User | None, reason: str, keep_session_id: str | None = None
) -> int:
    """End every session of ``user`` (but ``keep_session_id``); a captured cookie stops working at once."""
    stmt = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session_id is not None:
        stmt = stmt.where(WebSession.id != keep_session_id)
    ended: int = rowcount(session.execute(stmt.execution_options(synchronize_session=False)))
    if ended:
        audit.record(session, "auth.sessions.ended", actor=actor, target_type="user", target_id=user.id,
                     details={"count": ended, "reason": reason})
    return ended


def list_user_sessions(session: Session, user: User, *, idle: timedelta, absolute: timedelta) -> list[WebSession]:
    """The user's live sessions (not past either timeout), most recently used first."""
    now = utcnow()
    return [
        row for row in session.scalars(
            select(WebSession).where(WebSession.user_id == user.id, WebSession.last_seen_at > now - idle)
            .order_by(WebSession.last_seen_at.desc())
        )
        if now - (row.authenticated_at or row.created_at) <= absolute
    ]


def end_one_session(session: Session, *, actor: User, owner: User, public_id: str) -> None:
    """End one session of ``owner`` by its public handle."""
    row = session.scalar(select(WebSession).where(WebSession.public_id == public_id, WebSession.user_id == owner.id))
    if row is None:
        raise NotFoundError("That session has already ended.")
    session.delete(row)
    audit.record(session, "auth.session.ended", actor=actor, target_type="user", target_id=owner.id,
                 details={"session": public_id, "reason": "ended_by_owner" if actor.id == owner.id else "ended_by_admin"})


# --- administration of users ---------------------------------------------------------------------


def _validate_roles(roles: set[str]) -> set[str]:
    unknown = roles - set(APP_ROLES)
    if unknown:
        raise InvalidError(f"Unknown role: {', '.join(sorted(unknown))}.", {"roles": "Choose roles from the list."})
    return roles


def create_user(
    session: Session, kit: AuthKit, *, actor: User | None, person: Person, roles: set[str]
) -> tuple[User, str]:
    """Invite a person to govern: a login with the given app roles and a one-time setup secret."""
    _validate_roles(roles)
    if session.scalar(select(User.id).where(User.person_id == person.id)) is not None:
        raise ConflictError(f"{person.full_name} already has a login.")
    if session.scalar(select(User.id).where(User.email == person.email)) is not None:
        raise ConflictError(f"A login with the email {person.email} already exists.")
    if person.status != "active":
        raise ConflictError(f"{person.full_name} is {person.status}; only active people can get a login.")
    user = User(person=person, email=person.email)
    session.add(user)
    session.flush()
    for role in sorted(roles):
        session.add(UserRole(user_id=user.id, role=role, granted_by_id=actor.id if actor else None))
    session.flush()
    session.refresh(user, ["role_rows"])
    audit.record(session, "users.created", actor=actor, target_type="user", target_id=user.id,
                 details={"email": user.email, "person_id": person.id, "roles": sorted(roles)})
    token = issue_setup_token(session, kit, user=user, purpose="setup", actor=actor)
    return user, token


def bootstrap_admin(session: Session, kit: AuthKit, *, email: str) -> tuple[User, str, bool]:
    """Create the first admin, or recover an admin's access: returns user, setup secret, created?

    For recovery the user's password and authenticator are cleared and every session ends; the
    operator running this command on the server is the one who vouches for the person.
    """
    email = validate_email(email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        person = find_person_by_email(session, email)
        if person is None:
            person = Person(full_name=email.split("@", 1)[0], email=email)
            session.add(person)
            session.flush()
            audit.record(session, "person.created", target_type="person", target_id=person.id, details={"email": email, "source": "manual"})
        user, token = create_user(session, kit, actor=None, person=person, roles={"admin"})
        return user, token, True
    if user.person.status != "active":
        # A leaver's login stays blocked, even from the server's command line (the leaver invariants).
        raise ConflictError(f"{user.person.full_name} is {user.person.status}; rehire them in the directory first.")
    user.is_active = True
    user.deactivated_at = None
    user.password_hash = None
    user.mfa_seed_sealed = None
    user.mfa_enabled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    if "admin" not in user.roles:
        session.add(UserRole(user_id=user.id, role="admin"))
    end_user_sessions(session, user=user, actor=None, reason="admin_recovery")
    kit.throttle.reset(session, account_key(user.email))
    session.flush()
    session.refresh(user, ["role_rows"])
    audit.record(session, "users.admin_recovered", target_type="user", target_id=user.id, details={"email": email})
    token = issue_setup_token(session, kit, user=user, purpose="setup", actor=None)
    return user, token, False


def set_roles(session: Session, *, actor: User, user: User, roles: set[str]) -> None:
    """Replace a user's app roles; their sessions end so the change applies at once."""
    roles = _validate_roles(set(roles))
    before = set(user.roles)
    if before == roles:
        return
    if "admin" in before and "admin" not in roles and user.is_active and count_active_admins(session, excluding=user) == 0:
        raise ConflictError("This is the last active admin; make someone else an admin first.")
    for row in list(user.role_rows):
        if row.role not in roles:
            user.role_rows.remove(row)
    for role in sorted(roles - before):
        user.role_rows.append(UserRole(role=role, granted_by_id=actor.id))
    session.flush()
    ended = end_user_sessions(session, user=user, actor=actor, reason="roles_changed")
    audit.record(session, "users.roles_changed", actor=actor, target_type="user", target_id=user.id,
                 details={"added": sorted(roles - before), "removed": sorted(before - roles), "sessions_ended": ended})


def set_time_zone(session: Session, *, actor: User, user: User, time_zone: str | None) -> None:
    """Choose the zone ``user`` reads times in; empty or None returns them to the organisation's zone."""
    name = (time_zone or "").strip() or None
    if name is not None and not timezones.is_zone_name(name):
        message = "Unknown time zone: choose a name from the list, such as Europe/Paris or UTC."
        raise InvalidError(message, {"time_zone": message})
    if name == user.time_zone:
        return
    before, user.time_zone = user.time_zone, name
    session.flush()
    audit.record(session, "users.time_zone_changed", actor=actor, target_type="user", target_id=user.id,
                 details={"old": before, "new": name})


def deactivate_user(session: Session, *, actor: User | None, user: User) -> None:
    """Block a login: sessions end, setup secrets die; history is kept (``actor`` None: the system)."""
    if not user.is_active:
        return
    if actor is not None and user.id == actor.id:
        raise ConflictError("You cannot deactivate your own login.")
    if "admin" in user.roles and count_active_admins(session, excluding=user) == 0:
        raise ConflictError("This is the last active admin; make someone else an admin first.")
    user.is_active = False
    user.deactivated_at = utcnow()
    user.deactivated_by_id = actor.id if actor is not None else None
    session.execute(
        update(SetupToken).where(SetupToken.user_id == user.id, SetupToken.used_at.is_(None), SetupToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    ended = end_user_sessions(session, user=user, actor=actor, reason="deactivated")
    audit.record(session, "users.deactivated", actor=actor, target_type="user", target_id=user.id, details={"sessions_ended": ended})


def reactivate_user(session: Session, *, actor: User, user: User) -> None:
    """Allow a deactivated login again (its password and authenticator are unchanged)."""
    if user.is_active:
        return
    if user.person.status != "active":
        # A leaver's login stays blocked: the offboarding blocked it (govern.offboarding.invariants).
        raise ConflictError(f"{user.person.full_name} is {user.person.status}; rehire them in the directory first.")
    user.is_active = True
    user.deactivated_at = None
    user.deactivated_by_id = None
    audit.record(session, "users.reactivated", actor=actor, target_type="user", target_id=user.id)


def reset_mfa(session: Session, kit: AuthKit, *, actor: User, user: User) -> str:
    """Clear a user's authenticator and recovery codes; returns a new setup secret for re-enrolment.

    The user must still prove their password to enrol again; an admin never learns or sets it.
    """
    if not user.is_active:
        raise ConflictError("Reactivate the login before resetting its second factor.")
    user.mfa_seed_sealed = None
    user.mfa_enabled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    ended = end_user_sessions(session, user=user, actor=actor, reason="mfa_reset")
    audit.record(session, "users.mfa_reset", actor=actor, target_type="user", target_id=user.id, details={"sessions_ended": ended})
    purpose = "mfa_reset" if user.password_hash else "setup"
    return issue_setup_token(session, kit, user=user, purpose=purpose, actor=actor)


def unlock_user(session: Session, kit: AuthKit, *, actor: User, user: User) -> None:
    """Clear the account's failed-login lockout."""
    kit.throttle.reset(session, account_key(user.email))
    audit.record(session, "users.unlocked", actor=actor, target_type="user", target_id=user.id)


def get_user(session: Session, user_id: int) -> User:
    """Return the user or raise NotFoundError."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError("No such user.")
    return user


def list_users(session: Session) -> list[User]:
    """All logins, by email (a company has hundreds, not millions, of govern users)."""
    return list(session.scalars(select(User).order_by(User.email)))
