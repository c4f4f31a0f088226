"""Audit sinks an admin configured, each with the cursor of what it acknowledged."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow

SINK_KINDS = ("syslog", "https")
#: syslog: RFC 5424 lines (JSON message) or CEF lines; https: batches of OCSF-shaped JSON.
SINK_FORMATS = ("rfc5424", "cef", "ocsf")


class AuditSink(Base):
    """Where the audit trail goes, and how far it got: at least once, in order, from ``cursor`` on."""

    __tablename__ = "audit_sinks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    #: host, port, tls, ca_file (syslog); url, ca_file (https). Never a secret.
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    #: The HTTPS sink's signing secret, sealed with a key derived from SECRET_KEY (None: unsigned).
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The last audit event id the sink acknowledged; the next batch starts after it.
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The last checkpoint id shipped.
    checkpoint_cursor: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    #: When the admins were told that the sink lags (cleared when it catches up).
    lag_alerted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(f"kind IN {SINK_KINDS!r}", name="kind"),
        CheckConstraint(f"format IN {SINK_FORMATS!r}", name="format"),
    )

    @property
    def settings(self) -> dict[str, Any]:
        """The sink's settings."""
        value: dict[str, Any] = json.loads(self.settings_json or "{}")
        return value
