"""Rotation tasks and per-secret rotation intervals."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.auth.models import User
from govern.db import Base, utcnow
from govern.vault.models import Secret

TASK_REASONS = ("scheduled", "exposure", "offboarding", "compromise", "manual")
#: When triggers merge into one task, the task shows the most pressing reason.
REASON_PRIORITY = {"compromise": 5, "offboarding": 4, "exposure": 3, "manual": 2, "scheduled": 1}
REASON_LABELS = {"scheduled": "Scheduled", "exposure": "Exposure", "offboarding": "Offboarding",
                 "compromise": "Compromise", "manual": "Manual"}
#: open: to do; staged: a new value waits as a pending version; done: confirmed; cancelled: dropped.
TASK_STATUSES = ("open", "staged", "done", "cancelled")
LIVE_TASK_CONDITION = "status IN ('open', 'staged')"


class RotationInterval(Base):
    """IT's own interval for one secret, overriding the account's and the kind's default."""

    __tablename__ = "rotation_intervals"

    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id"), primary_key=True)
    #: Days between rotations; NULL means "never on a schedule" (exposures still rotate it).
    interval_days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint("interval_days IS NULL OR interval_days BETWEEN 1 AND 3650", name="days"),)


class RotationTask(Base):
    """A secret must get a new value: who and why, by when, and how far the rotation got."""

    __tablename__ = "rotation_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id"))
    #: Denormalised from the secret so the queue filters and counts by account in one query.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    #: The most pressing reason of ``reasons_json``.
    reason: Mapped[str] = mapped_column(String(16))
    #: JSON list of every reason that asked for this rotation.
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    #: JSON list of {person_id, name, why}: the people whose access makes the rotation necessary.
    people_json: Mapped[str] = mapped_column(Text, default="[]")
    #: JSON list of short notes on why the task exists (no secret values).
    notes_json: Mapped[str] = mapped_column(Text, default="[]")
    is_urgent: Mapped[bool] = mapped_column(default=False)
    due_at: Mapped[datetime]
    #: NULL: the IT team as a whole.
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    staged_version_id: Mapped[int | None] = mapped_column(ForeignKey("secret_versions.id"))
    #: An API token's new expiry, applied to the secret when the rotation is confirmed.
    new_token_expires_at: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    staged_at: Mapped[datetime | None]
    staged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    secret: Mapped[Secret] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[assignee_id])

    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES!r}", name="status"),
        CheckConstraint(f"reason IN {TASK_REASONS!r}", name="reason"),
        # One live task per secret: repeated triggers merge into it, even when they race.
        Index("uq_rotation_tasks_live", "secret_id", unique=True,
              sqlite_where=text(LIVE_TASK_CONDITION), postgresql_where=text(LIVE_TASK_CONDITION)),
        Index("ix_rotation_tasks_status_due_at", "status", "due_at"),
        Index("ix_rotation_tasks_account_id_status", "account_id", "status"),
        Index("ix_rotation_tasks_secret_id_id", "secret_id", "id"),
    )

    @property
    def reasons(self) -> list[str]:
        """Every reason that asked for this rotation."""
        value: list[str] = json.loads(self.reasons_json or "[]")
        return value

    @property
    def people(self) -> list[dict[str, Any]]:
        """The people whose lost access makes this rotation necessary, with why."""
        value: list[dict[str, Any]] = json.loads(self.people_json or "[]")
        return value

    @property
    def notes(self) -> list[str]:
        """Why the task exists, one line per trigger."""
        value: list[str] = json.loads(self.notes_json or "[]")
        return value

    @property
    def is_live(self) -> bool:
        """Open or staged."""
        return self.status in ("open", "staged")
