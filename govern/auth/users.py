"""Who holds an app role: the lists that notices go to, and the last-admin count that guards changes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.auth.models import User, UserRole


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
