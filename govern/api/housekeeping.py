"""What the API keeps only for a while: idempotent answers (a day) and the counters of past windows."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from govern.api.models import IdempotentRequest, RateCounter
from govern.api.ratelimit import WINDOW_SECONDS
from govern.db import rowcount, utcnow

#: A retry with the same Idempotency-Key comes within minutes; a day covers a client down overnight.
IDEMPOTENCY_RETENTION = timedelta(hours=24)


def prune(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Delete idempotent answers older than a day and rate counters of windows long past."""
    moment = now or utcnow()
    answers = rowcount(session.execute(delete(IdempotentRequest).where(
        IdempotentRequest.created_at < moment - IDEMPOTENCY_RETENTION)))
    window = int(moment.timestamp() // WINDOW_SECONDS)
    counters = rowcount(session.execute(delete(RateCounter).where(RateCounter.window_start < window - 1)))
    return {"idempotent_answers_deleted": answers, "rate_counters_deleted": counters}
