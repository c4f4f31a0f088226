"""Review campaigns and their items."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow
from govern.grants.models import Grant

SCOPE_KINDS = ("all", "platform", "department")
DECISIONS = ("keep", "revoke", "not_reviewed")


class ReviewCampaign(Base):
    """An access review over the active grants in a scope."""

    __tablename__ = "review_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope_kind: Mapped[str] = mapped_column(String(16))
    #: The platform or department, for scoped campaigns.
    scope_value: Mapped[str | None] = mapped_column(String(120))
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint(f"scope_kind IN {SCOPE_KINDS!r}", name="scope_kind"),)


class ReviewItem(Base):
    """One grant to keep or revoke, assigned to a reviewer."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("review_campaigns.id"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    grant: Mapped[Grant] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("campaign_id", "grant_id", name="uq_review_items_campaign_grant"),
        CheckConstraint(f"decision IS NULL OR decision IN {DECISIONS!r}", name="decision"),
        Index("ix_review_items_campaign_id_decision", "campaign_id", "decision"),
    )
