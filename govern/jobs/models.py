"""One row per run of the jobs runner, with what each step did."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow

RUN_OUTCOMES = ("running", "ok", "failed")


class JobRun(Base):
    """A run of `govern jobs run` on one host: when, where, and each step's counts or error."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: "running" until every step has run; then "ok", or "failed" when any step failed.
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    #: JSON list of {name, label, outcome, counts, error, started_at, finished_at}.
    steps_json: Mapped[str] = mapped_column(Text, default="[]")

    __table_args__ = (
        CheckConstraint(f"outcome IN {RUN_OUTCOMES!r}", name="outcome"),
        Index("ix_job_runs_finished_at", "finished_at"),
    )

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The recorded step results."""
        value: list[dict[str, Any]] = json.loads(self.steps_json or "[]")
        return value
