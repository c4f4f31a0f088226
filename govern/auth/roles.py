"""Role predicates: what a user's app roles let them see, with no database and no other area.

They sit low on the ladder (in ``auth``) so that policies, accounts, grants, reviews and reports can
all ask the same question without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: App roles that see the whole registry (accounts, grants, policy acceptance, reports).
REGISTRY_WIDE_ROLES = frozenset({"admin", "it", "hr", "auditor"})


def sees_all_accounts(roles: Iterable[str]) -> bool:
    """Admins, IT, HR and auditors see the whole registry; managers see their own accounts."""
    return bool(REGISTRY_WIDE_ROLES & set(roles))


def is_admin(user: Any) -> bool:
    """App admins may manage every grant."""
    return "admin" in user.roles
