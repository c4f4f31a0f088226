"""Who may manage, view, choose successors in and work the items of an offboarding; whose login an offboarding ends."""

from __future__ import annotations

from typing import TypeGuard

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.audit.services import Actor
from govern.auth.models import User
from govern.auth.users import count_active_admins
from govern.directory.models import Person
from govern.errors import ConflictError
from govern.offboarding.models import Offboarding, OffboardingItem


def app_roles(user: Actor | None) -> frozenset[str]:
    return frozenset(getattr(user, "roles", ()) or ())


def is_user(actor: Actor | None) -> TypeGuard[User]:
    """A person signed in to govern (the import, SCIM and the jobs runner are trusted callers)."""
    return isinstance(actor, User)


def may_manage(user: Actor | None) -> bool:
    """HR and admins start, edit and cancel offboardings and add items."""
    return bool({"admin", "hr"} & app_roles(user))


def sees_all(user: Actor | None) -> bool:
    """Roles that see every offboarding (auditors read-only, IT works the removal items)."""
    return bool({"admin", "hr", "auditor", "it"} & app_roles(user))


def may_view(session: Session, user: Actor | None, offboarding: Offboarding) -> bool:
    """Everyone who sees all, the leaver's manager, and whoever owns one of its items."""
    if sees_all(user):
        return True
    person_id = getattr(user, "person_id", None)
    if person_id is None:
        return False
    if offboarding.person.manager_id == person_id:
        return True
    return session.scalar(select(OffboardingItem.id).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.owner_person_id == person_id).limit(1)) is not None


def may_choose_successor(user: Actor | None, offboarding: Offboarding) -> bool:
    """HR, admins and the leaver's manager pick successors."""
    return may_manage(user) or (offboarding.person.manager_id is not None
                                and offboarding.person.manager_id == getattr(user, "person_id", None))


def may_work_item(user: Actor | None, item: OffboardingItem) -> bool:
    """Admins any item; IT the IT items; HR the HR items; the named manager their items."""
    roles = app_roles(user)
    if "admin" in roles:
        return True
    if item.owner == "it":
        return "it" in roles
    if item.owner == "hr":
        return "hr" in roles
    return item.owner_person_id is not None and item.owner_person_id == getattr(user, "person_id", None)


def login_of(session: Session, person_id: int) -> User | None:
    return session.scalar(select(User).where(User.person_id == person_id))


def check_not_last_admin(session: Session, person: Person) -> None:
    login = login_of(session, person.id)
    if login is None or not login.is_active or "admin" not in login.roles:
        return
    if count_active_admins(session, excluding=login) == 0:
        raise ConflictError(f"{person.full_name} is govern's last active admin; make someone else an admin first.")
