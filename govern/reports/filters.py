"""The report filters: what a user may filter on, read from a request, and the choices the form offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.accounts.models import PLATFORMS, ROLE_CODES, Role
from govern.directory.services import all_departments


@dataclass
class AccessFilter:
    """Filters shared by the reports, their exports and the matrix."""

    department: str | None = None
    platform: str | None = None
    role: str | None = None
    #: Matches a person's name, email or employee id (case-insensitive substring).
    q: str | None = None
    account_id: int | None = None
    person_id: int | None = None
    statuses: tuple[str, ...] = ("active",)

    def as_params(self) -> dict[str, str]:
        """The user-chosen filters as query parameters (for links, forms and the audit event)."""
        values = {"department": self.department, "platform": self.platform, "role": self.role, "q": self.q}
        return {k: v for k, v in values.items() if v}


def parse_filter(args: Any) -> AccessFilter:
    """Filters from query or form parameters; unknown values are ignored, not errors."""
    platform = args.get("platform") or None
    role = args.get("role") or None
    return AccessFilter(
        department=(args.get("department") or "").strip()[:120] or None,
        platform=platform if platform in PLATFORMS else None,
        role=role if role in ROLE_CODES else None,
        q=(args.get("q") or "").strip()[:100] or None,
    )


def departments(session: Session) -> list[str]:
    """Department names of the directory, for the filter."""
    return all_departments(session)


def role_choices(session: Session) -> list[tuple[str, str]]:
    """(code, name) of the role catalogue in display order."""
    return [(code, name) for code, name in session.execute(select(Role.code, Role.name).order_by(Role.sort_order))]
