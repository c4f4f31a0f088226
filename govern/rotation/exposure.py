"""Rotation's reaction to lost access (subscribed to govern.events.access_lost by govern.subscribers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.directory.models import Person
from govern.rotation.services import open_exposure_rotations


def on_access_lost(sender: Any, *, session: Session, actor: Any, person: Person, account: Account, reason: str) -> None:
    """The person lost this access: rotate what they saw or could have seen (rotation's rule)."""
    open_exposure_rotations(session, actor=actor, person=person, account=account, reason=reason)
