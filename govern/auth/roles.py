"""Role predicates: what a user's app roles let them see, with no database and no other area.

They sit low on the ladder (in ``auth``) so that policies, accounts, grants, reviews and reports can
all ask the same question without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Protocol

#: App roles that see the whole registry (accounts, grants, policy acceptance, reports).
REGISTRY_WIDE_ROLES = frozenset({"admin", "it", "hr", "auditor"})


def sees_all_accounts(roles: Iterable[str]) -> bool:
    """Admins, IT, HR and auditors see the whole registry; managers see their own accounts."""
    return bool(REGISTRY_WIDE_ROLES & set(roles))


class HasRoles(Protocol):
    """Whoever holds app roles: a user, or a principal that carries its own (SCIM)."""

    @property
    def roles(self) -> Set[str]:
        """The app role codes held."""


def is_admin(user: HasRoles) -> bool:
    """App admins may manage every grant."""
    return "admin" in user.roles
