"""An organisation's offboarding settings (deadlines, notice) and the limits every offboarding text obeys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from govern.errors import InvalidError

MAX_NOTE = 2000


MAX_TITLE = 300


MAX_DEADLINE_HOURS = 24 * 30


#: The revoke reason every offboarding revocation carries.
REVOKE_REASON = "offboarding"


OWNER_LABELS = {"it": "IT", "manager": "the manager", "hr": "HR"}


@dataclass(frozen=True)
class Settings:
    """Deadlines and the hour of the last day at which an end date takes effect (UTC)."""

    deadline_hours: int = 24
    immediate_deadline_hours: int = 1
    last_day_hour: int = 17
    #: An overdue item escalates again after this many hours.
    escalation_hours: int = 24


def settings_from(config: Any) -> Settings:
    """Settings from the app configuration."""
    return Settings(config["OFFBOARDING_DEADLINE_HOURS"], config["OFFBOARDING_IMMEDIATE_DEADLINE_HOURS"],
                    config["OFFBOARDING_LAST_DAY_HOUR"], int(config.get("OFFBOARDING_ESCALATION_HOURS") or 24))


def end_of_last_day(day: date, settings: Settings) -> datetime:
    """When an end date takes effect: the configured hour of that day, in UTC."""
    return datetime.combine(day, time(hour=settings.last_day_hour), tzinfo=UTC)


def clean_note(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_NOTE:
        raise InvalidError(f"Keep the note under {MAX_NOTE} characters.", {"note": "Too long."})
    return text or None
