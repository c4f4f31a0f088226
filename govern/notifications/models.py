"""In-app notifications and the email outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
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


#: Groups of notifications a user may route: each is also emailed (the default), also sent to their
#: chat, or kept in the app only. Security notices (sign-in, second factor, sessions) always email.
NOTIFICATION_GROUPS = {
    "grants": "Grants and requests", "rotation": "Credential rotation", "offboarding": "Offboardings",
    "reviews": "Access reviews", "incidents": "Incidents and locked accounts", "other": "Everything else",
}
CHANNELS = ("email", "chat", "app")
CHAT_STATUSES = ("pending", "sent", "failed")


class NotificationPreference(Base):
    """How one user wants one group of notifications: also by email, also in their chat, or in the app only."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))

    __table_args__ = (CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),)


class ChatChannel(Base):
    """A user's own chat: the Slack or Teams incoming webhook their notifications go to, sealed."""

    __tablename__ = "chat_channels"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    url_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    url_hint: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatMessage(Base):
    """A notification for a user's chat, written with the notification; the jobs runner posts it."""

    __tablename__ = "chat_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN {CHAT_STATUSES!r}", name="status"),
        Index("ix_chat_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )
