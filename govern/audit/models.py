"""Audit events and the head of their hash chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base

#: Integer primary keys on SQLite, 64-bit on PostgreSQL (a million events a year is normal).
BigId = BigInteger().with_variant(Integer(), "sqlite")

GENESIS_HASH = "0" * 64


class AuditEvent(Base):
    """One recorded action. Never updated, never deleted (a trigger enforces it on PostgreSQL)."""

    __tablename__ = "audit_events"

    #: Gapless sequence number handed out by the chain head, so a deleted event shows as a gap.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    #: The actor's email (or "system", "cli") at the time, kept even if the user changes later.
    actor_label: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str | None] = mapped_column(String(64))
    #: A keyed digest of the web session id, to correlate events without storing the id.
    session_ref: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(32))
    #: Byte-wise ("C") on PostgreSQL, so a prefix filter is an index range scan (SQLite: BINARY).
    action: Mapped[str] = mapped_column(String(80).with_variant(String(80, collation="C"), "postgresql"))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))
    #: Canonical JSON text; hashed exactly as stored.
    details_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    #: The audit key (outside the database) whose HMAC chains this event; None: a plain SHA-256 link,
    #: as every event before the keyed chain began.
    key_id: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_audit_events_actor_user_id_id", "actor_user_id", "id"),
        Index("ix_audit_events_actor_label_id", "actor_label", "id"),
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_target_id", "target_type", "target_id", "id"),
    )


class AuditChainHead(Base):
    """A single row holding the last event's id and hash.

    Every append updates this row first, which takes a row lock (PostgreSQL) or the write lock
    (SQLite) until commit, so concurrent transactions extend the chain one after another.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigId)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of the chain head: "event ``event_id`` had hash ``event_hash``".

    Signed with an Ed25519 key kept outside the database and shipped with the events, so a chain
    rewritten or cut short after it no longer matches it.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId)
    event_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("ix_audit_checkpoints_event_id", "event_id"),)
