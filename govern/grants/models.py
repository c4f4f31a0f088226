"""Grants and the platform-removal confirmations that revocations create."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.accounts.models import Account, Role
from govern.auth.models import User
from govern.db import Base, utcnow
from govern.directory.models import Person

GRANT_STATUSES = ("requested", "active", "expired", "revoked", "rejected")
LIVE_CONDITION = "status IN ('requested', 'active')"


class Grant(Base):
    """A person holds a role on an account, from ``starts_at`` until expiry or revocation."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    role_code: Mapped[str] = mapped_column(ForeignKey("roles.code"))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: When the request was approved or rejected.
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    person: Mapped[Person] = relationship(lazy="joined")
    account: Mapped[Account] = relationship(lazy="joined")
    role: Mapped[Role] = relationship(lazy="joined")
    #: Loaded when needed (whether the account's owner asked for it); lists load it in one query.
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])

    __table_args__ = (
        CheckConstraint(f"status IN {GRANT_STATUSES!r}", name="status"),
        Index("ix_grants_account_id_status", "account_id", "status"),
        Index("ix_grants_person_id_status", "person_id", "status"),
        Index("ix_grants_status_expires_at", "status", "expires_at"),
        # The access report sorted by start date reads its page from here; counted by role, here.
        Index("ix_grants_status_starts_at_id", "status", "starts_at", "id"),
        Index("ix_grants_status_role_code", "status", "role_code"),
        # At most one live (requested or active) grant per person, account and role; the
        # database enforces it even when two requests race.
        Index("uq_grants_live", "person_id", "account_id", "role_code", unique=True,
              sqlite_where=text(LIVE_CONDITION), postgresql_where=text(LIVE_CONDITION)),
    )


class PlatformRemoval(Base):
    """A human must remove the person from the platform's own role list and confirm it here."""

    __tablename__ = "platform_removals"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    #: The platform's own role name, e.g. "LinkedIn Super admin".
    platform_role: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)

    grant: Mapped[Grant] = relationship(lazy="joined")
