"""Offboardings, their checklist items and the successors managers pick before the day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow
from govern.directory.models import Person

OFFBOARDING_KINDS = ("immediate", "scheduled")
OFFBOARDING_STATUSES = ("scheduled", "in_progress", "completed", "cancelled")
OFFBOARDING_ORIGINS = ("manual", "import", "scim")
OPEN_CONDITION = "status IN ('scheduled', 'in_progress')"

#: Kinds of checklist item. ``rotation`` and ``token_revoke`` are reserved for the rotation
#: tasks and API tokens of later areas: their items point at their row through ref_type/ref_id.
ITEM_KINDS = ("platform_removal", "successor", "manual", "rotation", "token_revoke")
ITEM_OWNERS = ("it", "manager", "hr")
#: Working order of the kinds (lower first): successors, rotations of revealed secrets, rotations of
#: secrets they could have seen, platform removals, token revocations, HR's own items.
SUCCESSOR_ORDER = 10
ROTATION_REVEALED_ORDER = 14
ROTATION_ORDER = 16
REMOVAL_ORDER = 20
TOKEN_ORDER = 25
MANUAL_ORDER = 30
ITEM_STATUSES = ("open", "done", "skipped")


class Offboarding(Base):
    """One person's departure: scheduled or immediate, then in progress until every item is closed."""

    __tablename__ = "offboardings"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    #: Who or what asked for it: HR by hand, the HR CSV import (an end date), or SCIM.
    origin: Mapped[str] = mapped_column(String(16), default="manual")
    #: When the login is blocked and the grants revoked.
    effective_at: Mapped[datetime]
    #: How long the checklist may take once started.
    deadline_hours: Mapped[int] = mapped_column(Integer)
    #: effective_at (or the actual start) plus deadline_hours; set when it starts.
    due_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    #: JSON list of the person's live grants when it started (the "before" of the evidence).
    grants_before_json: Mapped[str | None] = mapped_column(Text)

    person: Mapped[Person] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"kind IN {OFFBOARDING_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {OFFBOARDING_STATUSES!r}", name="status"),
        CheckConstraint(f"origin IN {OFFBOARDING_ORIGINS!r}", name="origin"),
        CheckConstraint("deadline_hours >= 1", name="deadline"),
        Index("ix_offboardings_status_effective_at", "status", "effective_at"),
        # One open offboarding per person, even when HR and the identity provider race.
        Index("uq_offboardings_open", "person_id", unique=True,
              sqlite_where=text(OPEN_CONDITION), postgresql_where=text(OPEN_CONDITION)),
    )


class OffboardingItem(Base):
    """One step of the checklist, owned by IT, the manager or HR."""

    __tablename__ = "offboarding_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    offboarding_id: Mapped[int] = mapped_column(ForeignKey("offboardings.id"))
    #: What the step is about, unique per offboarding, e.g. "removal:17" or "successor:4"; a
    #: re-run or a double submit finds the row instead of adding a second one.
    key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(16))
    #: The person who owns a manager's item (the leaver's manager).
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    #: How to do it, including the platform's ordering rules.
    instructions: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    platform_removal_id: Mapped[int | None] = mapped_column(ForeignKey("platform_removals.id"))
    #: The row of another area this item tracks (e.g. "rotation_task"), for kinds added later.
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[int | None] = mapped_column(Integer)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    done_at: Mapped[datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: What was done, as proof (for a skip: why it was skipped).
    evidence_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("offboarding_id", "key", name="uq_offboarding_items_key"),
        CheckConstraint(f"kind IN {ITEM_KINDS!r}", name="kind"),
        CheckConstraint(f"owner IN {ITEM_OWNERS!r}", name="owner"),
        CheckConstraint(f"status IN {ITEM_STATUSES!r}", name="status"),
        Index("ix_offboarding_items_offboarding_id_status", "offboarding_id", "status"),
    )

    @property
    def revealed(self) -> bool:
        """A rotation item for a secret the leaver actually revealed (not only could have)."""
        return self.kind == "rotation" and self.sort_order == ROTATION_REVEALED_ORDER


class OffboardingSuccessor(Base):
    """Who takes over an account the leaver owns or is a contact of, chosen before or on the day."""

    __tablename__ = "offboarding_successors"

    id: Mapped[int] = mapped_column(primary_key=True)
    offboarding_id: Mapped[int] = mapped_column(ForeignKey("offboardings.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    successor_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    chosen_at: Mapped[datetime] = mapped_column(default=utcnow)
    chosen_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    successor: Mapped[Person] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("offboarding_id", "account_id", name="uq_offboarding_successors_account"),)
