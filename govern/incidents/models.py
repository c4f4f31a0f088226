"""Compromise incidents: an account IT locked down, until IT closes the incident."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.accounts.models import Account
from govern.db import Base, utcnow

INCIDENT_STATUSES = ("open", "closed")
OPEN_INCIDENT_CONDITION = "status = 'open'"


class Incident(Base):
    """An account IT marked compromised: locked until IT closes the incident."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    summary: Mapped[str] = mapped_column(Text)
    #: From when the account may have been in other hands: the timeline starts here.
    compromised_since: Mapped[datetime]
    #: The account's status before the lockdown, restored when the incident closes.
    previous_status: Mapped[str] = mapped_column(String(16), default="active")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_note: Mapped[str | None] = mapped_column(Text)

    account: Mapped[Account] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"status IN {INCIDENT_STATUSES!r}", name="status"),
        # One open incident per account, even when two people lock it down at once.
        Index("uq_incidents_open", "account_id", unique=True,
              sqlite_where=text(OPEN_INCIDENT_CONDITION), postgresql_where=text(OPEN_INCIDENT_CONDITION)),
    )
