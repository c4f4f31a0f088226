"""App logins: inviting people, recovering an admin, roles, time zone, deactivation, MFA resets; who holds a role."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from govern import audit, timezones
from govern.auth.enrolment import issue_setup_token
from govern.auth.kit import AuthKit
from govern.auth.models import APP_ROLES, Passkey, RecoveryCode, SetupToken, User, UserRole
from govern.auth.sessions import end_user_sessions
from govern.auth.throttle import account_key
from govern.db import utcnow
from govern.directory.models import Person
from govern.directory.services import find_person_by_email, validate_email
from govern.errors import ConflictError, InvalidError, NotFoundError

# --- who holds a role -----------------------------------------------------------------------------


def active_users_with_roles(session: Session, roles: Iterable[str]) -> list[User]:
    """Active users holding any of ``roles``, each once, oldest login first."""
    return list(session.scalars(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .where(User.is_active.is_(True), UserRole.role.in_(list(roles))).order_by(User.id).distinct()
    ))


def count_active_admins(session: Session, *, excluding: User | None = None) -> int:
    """How many active users hold the admin role, not counting ``excluding``."""
    statement = (select(func.count()).select_from(UserRole).join(User, User.id == UserRole.user_id)
                 .where(UserRole.role == "admin", User.is_active.is_(True)))
    if excluding is not None:
        statement = statement.where(User.id != excluding.id)
    return session.scalar(statement) or 0


# --- administration of logins ---------------------------------------------------------------------


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
    """Clear a user's authenticator, recovery codes and passkeys; returns a new setup secret for re-enrolment.

    The user must still prove their password to enrol again; an admin never learns or sets it.
    """
    if not user.is_active:
        raise ConflictError("Reactivate the login before resetting its second factor.")
    user.mfa_seed_sealed = None
    user.mfa_enabled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    # A lost passkey is why an admin resets too: the user enrols again, and registers a new one.
    passkeys_removed = len(session.scalars(select(Passkey.id).where(Passkey.user_id == user.id)).all())
    session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    ended = end_user_sessions(session, user=user, actor=actor, reason="mfa_reset")
    audit.record(session, "users.mfa_reset", actor=actor, target_type="user", target_id=user.id,
                 details={"sessions_ended": ended, "passkeys_removed": passkeys_removed})
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
