"""What every rotation change checks first: only IT (the vault custodians) changes rotations, and the
texts they write are given and bounded."""

from __future__ import annotations

from datetime import datetime

from govern.auth.models import User
from govern.errors import ForbiddenError, InvalidError

#: The app role that rotates credentials, locks accounts down and gets told when a rotation is needed.
CUSTODIAN_ROLE = "it"
MAX_TEXT = 2000


def required_text(value: str, field_name: str, message: str) -> str:
    """``value`` stripped; InvalidError (on ``field_name``) when it is empty or longer than MAX_TEXT."""
    text = (value or "").strip()
    if not text:
        raise InvalidError(message, {field_name: message})
    if len(text) > MAX_TEXT:
        raise InvalidError(f"Keep it under {MAX_TEXT} characters.", {field_name: f"Keep it under {MAX_TEXT} characters."})
    return text


def require_custodian(actor: User) -> None:
    """ForbiddenError unless ``actor`` is IT."""
    if CUSTODIAN_ROLE not in set(actor.roles):
        raise ForbiddenError("Only IT (the vault custodians) may do this.")


def day_text(moment: datetime | None) -> str:
    """A moment as the day it fell on (YYYY-MM-DD) in notes and emails; "?" when unknown."""
    return moment.strftime("%Y-%m-%d") if moment else "?"
