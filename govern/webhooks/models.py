"""Webhook subscriptions: an endpoint, the event types it wants, and the cursor of what it got."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow

WEBHOOK_FORMATS = ("standard", "slack", "teams")


class WebhookSubscription(Base):
    """An endpoint an admin subscribed to some event types; events reach it in order, each once
    acknowledged (retried with backoff until then), from ``cursor`` on."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    format: Mapped[str] = mapped_column(String(16))
    #: The endpoint's address, sealed: a Slack or Teams incoming-webhook URL lets anyone post.
    url_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    #: What pages show of it: scheme, host and the last 4 characters.
    url_hint: Mapped[str] = mapped_column(String(160))
    #: The signing secret of a standard webhook (whsec_…), sealed; None for Slack and Teams.
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: JSON list of event types (govern.webhooks.events.EVENT_TYPES).
    event_types_json: Mapped[str] = mapped_column(Text, default="[]")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The last audit event id this subscription got (or that it never wanted).
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: The first failure of the current run of failures; a day of them disables the endpoint.
    failing_since: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint(f"format IN {WEBHOOK_FORMATS!r}", name="format"),)

    @property
    def event_types(self) -> list[str]:
        """The event types it is subscribed to."""
        value: list[str] = json.loads(self.event_types_json or "[]")
        return value
