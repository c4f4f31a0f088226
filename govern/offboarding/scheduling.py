"""Scheduling an offboarding: create, move and cancel it before it starts, and a rehire that cancels it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.offboarding.models import Offboarding
from govern.offboarding.permissions import check_not_last_admin, is_user, may_manage
from govern.offboarding.reading import open_offboarding_of
from govern.offboarding.settings import MAX_DEADLINE_HOURS, MAX_NOTE, Settings, clean_note
from govern.offboarding.start import start_offboarding


def _deadline(hours: int | None, default: int) -> int:
    if hours is None:
        return default
    if not 1 <= hours <= MAX_DEADLINE_HOURS:
        raise InvalidError(f"The deadline is between 1 and {MAX_DEADLINE_HOURS} hours.",
                           {"deadline_hours": f"Between 1 and {MAX_DEADLINE_HOURS} hours."})
    return hours


def schedule_offboarding(
    session: Session, *, actor: Actor | None, person: Person, effective_at: datetime | None, settings: Settings,
    deadline_hours: int | None = None, note: str | None = None, origin: str = "manual", now: datetime | None = None,
) -> Offboarding:
    """Start offboarding ``person``: now (``effective_at`` None: immediate) or at ``effective_at``.

    An immediate offboarding starts in the same transaction.
    """
    now = now or utcnow()
    if is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can start an offboarding.")
    if person.status == "departed":
        raise ConflictError(f"{person.full_name} has departed already.")
    if actor is not None and getattr(actor, "person_id", None) == person.id:
        raise ConflictError("You cannot offboard yourself; ask a colleague in HR.")
    if open_offboarding_of(session, person.id) is not None:
        raise ConflictError(f"{person.full_name} already has an open offboarding.")
    immediate = effective_at is None
    if not immediate and origin == "manual" and effective_at is not None and effective_at <= now:
        raise InvalidError("Choose a time in the future, or offboard immediately.", {"effective_at": "Choose a time in the future."})
    hours = _deadline(deadline_hours, settings.immediate_deadline_hours if immediate else settings.deadline_hours)
    check_not_last_admin(session, person)
    offboarding = Offboarding(
        person_id=person.id, kind="immediate" if immediate else "scheduled", status="scheduled", origin=origin,
        effective_at=now if immediate else effective_at, deadline_hours=hours, note=clean_note(note),
        created_by_id=getattr(actor, "id", None),
    )
    session.add(offboarding)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError(f"{person.full_name} already has an open offboarding.") from None
    audit.record(session, "offboarding.scheduled", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": person.id, "kind": offboarding.kind, "origin": origin,
                          "effective_at": offboarding.effective_at.isoformat(), "deadline_hours": hours})
    if immediate:
        start_offboarding(session, offboarding, actor=actor, now=now)
    return offboarding


def _pending(offboarding: Offboarding) -> None:
    if offboarding.status != "scheduled":
        raise ConflictError(f"This offboarding is {offboarding.status.replace('_', ' ')}; it can no longer be changed.")


def update_offboarding(session: Session, *, actor: Actor | None, offboarding: Offboarding, effective_at: datetime | None,
                       deadline_hours: int | None, note: str | None, now: datetime | None = None) -> dict[str, Any]:
    """Move a scheduled offboarding, change its deadline or note (until it starts). Returns the changes."""
    if not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can change an offboarding.")
    _pending(offboarding)
    now = now or utcnow()
    if effective_at is None:
        raise InvalidError("Choose when the offboarding takes effect.", {"effective_at": "Choose a date and time."})
    if effective_at <= now:
        raise InvalidError("Choose a time in the future, or offboard immediately.", {"effective_at": "Choose a time in the future."})
    values = {"effective_at": effective_at, "deadline_hours": _deadline(deadline_hours, offboarding.deadline_hours),
              "note": clean_note(note)}
    changes: dict[str, Any] = {}
    for name, new in values.items():
        old = getattr(offboarding, name)
        if old != new:
            changes[name] = {"old": old.isoformat() if isinstance(old, datetime) else old,
                             "new": new.isoformat() if isinstance(new, datetime) else new}
            setattr(offboarding, name, new)
    if changes:
        session.flush()
        audit.record(session, "offboarding.updated", actor=actor, target_type="offboarding", target_id=offboarding.id,
                     details={"changes": changes})
    return changes


def cancel_offboarding(session: Session, *, actor: Actor | None, offboarding: Offboarding, reason: str) -> None:
    """Call off a scheduled offboarding (it has not started), with a reason."""
    if is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can cancel an offboarding.")
    _pending(offboarding)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidError("Say why the offboarding is cancelled.", {"reason": "Say why."})
    if len(reason) > MAX_NOTE:
        raise InvalidError(f"Keep the reason under {MAX_NOTE} characters.", {"reason": "Too long."})
    offboarding.status = "cancelled"
    offboarding.cancelled_at = utcnow()
    offboarding.cancelled_by_id = getattr(actor, "id", None)
    offboarding.cancel_reason = reason
    session.flush()
    audit.record(session, "offboarding.cancelled", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": offboarding.person_id, "reason": reason})


def rehire_person(session: Session, *, actor: Actor | None, person: Person) -> Person:
    """A departed (or leaving, with no open offboarding) person is active again; no grant comes back."""
    if is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can rehire.")
    if person.status == "active":
        return person
    current = open_offboarding_of(session, person.id)
    if current is not None:
        if current.status == "in_progress":
            raise ConflictError(f"{person.full_name}'s offboarding is in progress; it must finish before a rehire.")
        cancel_offboarding(session, actor=actor, offboarding=current, reason="rehired")
    old = person.status
    person.status = "active"
    person.end_date = None
    session.flush()
    audit.record(session, "person.rehired", actor=actor, target_type="person", target_id=person.id,
                 details={"status_before": old, "grants_restored": 0})
    return person
