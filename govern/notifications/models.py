"""In-app notifications and the email outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow

OUTBOX_STATUSES = ("pending", "sent", "failed")


class Notification(Base):
    """A message to one user inside govern, unread until they mark it read."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: What caused it, e.g. "grant.approval_needed"; lets later areas filter and group.
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    #: A path inside govern (never an external URL).
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
    )


class OutboxMessage(Base):
    """An email written in the transaction of the event that causes it; the jobs runner sends it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    #: Whoever queues a reminder names it here, so the same reminder is never queued twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The earliest time of the next attempt (backs off exponentially after a failure).
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A sender holds the message until then; a crashed sender's claim simply runs out.
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None]
    #: The SMTP server's answer to the last failed attempt (never a credential).
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )
