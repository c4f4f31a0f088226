"""One row per backup govern made (by `govern backup` or the jobs step), for the admin home page."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow

BACKUP_OUTCOMES = ("ok", "failed")


class BackupRecord(Base):
    """A backup archive written to disk: where, how big, its checksum and what it holds."""

    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: "cli" or "jobs": who asked for it.
    made_by: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    #: The archive's path as the writer saw it (never a secret; the directory is the operator's).
    path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    #: "none", "passphrase" or "recipient" (age).
    encryption: Mapped[str] = mapped_column(String(16))
    migration: Mapped[str | None] = mapped_column(String(64))
    audit_head_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    #: When the jobs step deleted the archive because newer ones are kept.
    pruned_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"outcome IN {BACKUP_OUTCOMES!r}", name="outcome"),
        Index("ix_backups_outcome_finished_at", "outcome", "finished_at"),
    )
