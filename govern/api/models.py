"""What the API keeps between requests: idempotent answers and rate-limit counters (embedded default)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow


class IdempotentRequest(Base):
    """The answer to a POST sent with an Idempotency-Key: the same key gets the same answer again.

    Written in the transaction of the change itself, so a retry finds either both or neither.
    Never holds a secret: the endpoints that answer one (reveal) take no key.
    """

    __tablename__ = "api_idempotent_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    key: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("token_id", "key", name="uq_api_idempotent_requests_token_key"),)


class RateCounter(Base):
    """Requests of one token in one window, shared by every worker (Redis replaces it in production)."""

    __tablename__ = "api_rate_counters"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
