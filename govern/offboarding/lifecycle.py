"""Every path that ends someone's employment ends their access: status changes go through here.

A person becomes ``leaving`` only when their offboarding starts, and ``departed`` only when it
completes (see ``invariants``). What a path says about a person (the HR file's status and end
date, HR's edit of the person, the identity provider's active=false) is turned into offboardings:

- a status saying the person left or is leaving, or an end date today or in the past: an
  offboarding starts now (a scheduled one is brought forward);
- a future end date: an offboarding is scheduled at the end of that day (``end_of_last_day``);
- back to active: a rehire (HR's edit or SCIM; never the HR file, whose "Active" may simply lag
  behind an offboarding HR started in govern: that is reported instead).

The directory services never write a status themselves; they refuse to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.auth.models import User
from govern.db import utcnow
from govern.directory import import_parse, import_plan
from govern.directory import services as directory
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants.models import Grant
from govern.offboarding.models import Offboarding
from govern.offboarding.permissions import may_manage
from govern.offboarding.reading import open_offboarding_of
from govern.offboarding.scheduling import cancel_offboarding, rehire_person, schedule_offboarding
from govern.offboarding.settings import Settings, end_of_last_day
from govern.offboarding.start import start_offboarding

#: Statuses that say the person is leaving or has left.
GONE = ("leaving", "departed")


@dataclass(frozen=True)
class Record:
    """What a path says about one person: a status (active, leaving, departed) and an end date."""

    status: str
    end_date: date | None


def departure(record: Record, *, today: date, settings: Settings) -> datetime | str | None:
    """When the record says the person's access ends: "now", a time in the future, or None (it does not)."""
    if directory.has_left(record.status, record.end_date, today=today):
        return "now"
    return end_of_last_day(record.end_date, settings) if record.end_date is not None else None


@dataclass
class Outcome:
    """What the records did to offboardings, and what could not be done (person id, why)."""

    started: int = 0
    scheduled: int = 0
    moved: int = 0
    cancelled: int = 0
    rehired: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: The offboardings started or scheduled, by person id (for the views' messages).
    offboardings: dict[int, Offboarding] = field(default_factory=dict)


def offboard_now(session: Session, *, actor: Actor | None, person: Person, settings: Settings, origin: str,
                 note: str | None = None, now: datetime | None = None) -> Offboarding | None:
    """Start ``person``'s offboarding now: bring a scheduled one forward, or start a new one.

    Nothing happens for someone who has departed or whose offboarding is running already; returns
    the offboarding that started, if any.
    """
    now = now or utcnow()
    current = open_offboarding_of(session, person.id)
    if person.status == "departed" or (current is not None and current.status == "in_progress"):
        return None
    if current is None:
        return schedule_offboarding(session, actor=actor, person=person, effective_at=None, settings=settings,
                                                origin=origin, note=note, now=now)
    if isinstance(actor, User) and not may_manage(actor):  # the import, SCIM, jobs are trusted callers
        raise ForbiddenError("Only HR or an admin can start an offboarding.")
    old = current.effective_at
    current.effective_at = now
    current.kind = "immediate"
    current.deadline_hours = min(current.deadline_hours, settings.immediate_deadline_hours)
    session.flush()
    audit.record(session, "offboarding.brought_forward", actor=actor, target_type="offboarding", target_id=current.id,
                 details={"origin": origin, "effective_at": {"old": old.isoformat(), "new": now.isoformat()}})
    start_offboarding(session, current, actor=actor, now=now)
    return current


def follow_records(session: Session, *, actor: Actor | None, records: dict[int, Record], settings: Settings, origin: str,
                   adjusts_any: bool = False, rehires: bool = False, now: datetime | None = None) -> Outcome:
    """Turn what a path says about people (person id -> Record) into offboardings.

    A record saying the person left starts their offboarding now; a future end date schedules one,
    or moves the scheduled one, or (no end date any more) cancels it. Only offboardings this
    ``origin`` scheduled are moved or cancelled, unless ``adjusts_any`` (HR's own edit). A record
    saying "active" for someone leaving or departed rehires them when ``rehires``, else it is a
    problem. Each person is a savepoint: a problem (e.g. govern's last admin) is reported, never
    fatal to the others. Two queries load everyone, whatever the number of records.
    """
    outcome = Outcome()
    if not records:
        return outcome
    now = now or utcnow()
    today = now.date()
    ids = list(records)
    people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))}
    open_ = {o.person_id: o for o in session.scalars(select(Offboarding).where(
        Offboarding.person_id.in_(ids), Offboarding.status.in_(("scheduled", "in_progress")))).unique()}
    for person_id, record in records.items():
        person = people.get(person_id)
        if person is None:
            continue
        when = departure(record, today=today, settings=settings)
        current = open_.get(person_id)
        if not _acts(person, record, when, current, origin=origin, adjusts_any=adjusts_any):
            continue  # most records of an HR file change nothing: no savepoint for them
        try:
            with session.begin_nested():
                if when == "now":
                    started = offboard_now(session, actor=actor, person=person, settings=settings, origin=origin,
                                           note=_note(origin), now=now)
                    if started is not None:
                        outcome.started += 1
                        outcome.offboardings[person_id] = started
                    continue
                if person.status in GONE:
                    if record.status == "active" and when is None:
                        _rehire(session, actor=actor, person=person, origin=origin, rehires=rehires, outcome=outcome)
                    continue
                adjustable = current is not None and current.status == "scheduled" and (
                    adjusts_any or current.origin == origin)
                if when is None:
                    if adjustable and current is not None:
                        cancel_offboarding(session, actor=actor, offboarding=current,
                                                       reason=f"end date removed ({_where(origin)})")
                        outcome.cancelled += 1
                    continue
                assert isinstance(when, datetime)
                if current is None:
                    outcome.offboardings[person_id] = schedule_offboarding(
                        session, actor=actor, person=person, effective_at=when, settings=settings, origin=origin,
                        note=_note(origin), now=now)
                    outcome.scheduled += 1
                elif adjustable and current.effective_at != when:
                    old = current.effective_at
                    current.effective_at = when
                    session.flush()
                    audit.record(session, "offboarding.updated", actor=actor, target_type="offboarding",
                                 target_id=current.id, details={"changes": {"effective_at": {
                                     "old": old.isoformat(), "new": when.isoformat()}}, "origin": origin})
                    outcome.moved += 1
        except (ConflictError, InvalidError, ForbiddenError) as exc:
            outcome.problems.append((person_id, exc.message))
    return outcome


def _acts(person: Person, record: Record, when: datetime | str | None, current: Offboarding | None, *,
          origin: str, adjusts_any: bool) -> bool:
    """Whether ``follow_records`` has something to do for this person (a cheap test, no query)."""
    if person.status == "departed" or (person.status == "leaving" and current is not None):
        return record.status == "active" and when is None
    if person.status == "leaving":  # leaving with no offboarding running: only an offboarding or a rehire mends it
        return when == "now" or (record.status == "active" and when is None)
    if when == "now":
        return current is None or current.status == "scheduled"
    adjustable = current is not None and current.status == "scheduled" and (adjusts_any or current.origin == origin)
    if when is None:
        return adjustable
    return current is None or (adjustable and current is not None and current.effective_at != when)


#: The note of the offboarding of someone who was already gone when govern first heard of them.
NEWCOMER_NOTE = "Already gone when govern first heard of them: no login, grant or duty to take away."


def depart_newcomers(session: Session, *, actor: Actor | None, people: dict[int, date | None], settings: Settings,
                     origin: str, now: datetime | None = None) -> list[int]:
    """People added in this very transaction who had already left: departed, through an offboarding.

    They cannot hold anything yet (no login, grant, request, duty or exposure: they did not exist),
    so their offboarding has an empty checklist and completes at once; it is written in bulk, a
    fixed number of statements however many there are (a first HR import lists years of leavers).
    Anyone who does hold something after all goes through ``follow_records`` instead: their ids
    are returned.
    """
    if not people:
        return []
    now = now or utcnow()
    ids = list(people)
    holders = set(session.scalars(select(User.person_id).where(User.person_id.in_(ids)))) | set(
        session.scalars(select(Grant.person_id).where(Grant.person_id.in_(ids))))
    gone = [pid for pid in ids if pid not in holders]
    if gone:
        due = now + timedelta(hours=settings.immediate_deadline_hours)
        rows = [{"person_id": pid, "kind": "immediate", "status": "completed", "origin": origin, "effective_at": now,
                 "deadline_hours": settings.immediate_deadline_hours, "due_at": due, "note": NEWCOMER_NOTE,
                 "created_at": now, "updated_at": now, "started_at": now, "completed_at": now,
                 "created_by_id": actor.id if isinstance(actor, User) else None, "grants_before_json": "[]"}
                for pid in gone]
        offboarding_ids = session.scalars(insert(Offboarding).returning(Offboarding.id, sort_by_parameter_order=True),
                                          rows).all()
        session.execute(update(Person), [{"id": pid, "status": "departed", "end_date": people[pid] or now.date(),
                                          "updated_at": now} for pid in gone])
        audit.record_many(session, [audit.Entry(
            "offboarding.completed", actor=actor, target_type="offboarding", target_id=offboarding_id,
            details={"person_id": pid, "status_before": "active", "origin": origin, "items_created": 0,
                     "nothing_to_take": True}) for offboarding_id, pid in zip(offboarding_ids, gone, strict=True)])
    return [pid for pid in ids if pid in holders]


def _where(origin: str) -> str:
    return {"import": "the HR import", "scim": "the identity provider"}.get(origin, "the person's page")


def _note(origin: str) -> str:
    return {"import": "From the HR import (status or end date).",
            "scim": "Deactivated by the identity provider."}.get(origin, "From the person's page (status or end date).")


def _rehire(session: Session, *, actor: Actor | None, person: Person, origin: str, rehires: bool, outcome: Outcome) -> None:
    if not rehires:
        then = ("their offboarding is in progress; nothing changed" if person.status == "leaving"
                else "rehire them on their page if they came back")
        outcome.problems.append((person.id, f"{person.full_name} is {person.status} in govern but active in "
                                            f"{_where(origin)}: {then}."))
        return
    rehire_person(session, actor=actor, person=person)
    outcome.rehired += 1


# --- the person form ----------------------------------------------------------------------------------


def _raise_problems(outcome: Outcome) -> None:
    """On the person form a problem is the user's error: nothing is saved."""
    if outcome.problems:
        message = outcome.problems[0][1]
        raise InvalidError(message, {"status": message})


def import_people(session: Session, parsed: import_parse.ParsedFile, *, actor: Actor | None, settings: Settings | None = None,
                  progress: import_plan.Progress | None = None) -> import_plan.ImportReport:
    """Apply an HR import (directory.import_plan.apply_import), then follow what its rows say about leaving.

    A row saying the person left (a leaving or departed status, an end date today or in the past)
    starts their offboarding, a future end date schedules it (or moves, or cancels, the one an
    earlier import scheduled). Raises ImportInvalidError, writing nothing, while a line has an error.
    """
    report = import_plan.apply_import(session, parsed, actor=actor, progress=progress)
    settings = settings or Settings()
    records = {person_id: Record(status, end_date) for person_id, (status, end_date) in report.leaving.items()}
    newcomers = report.newcomers_gone
    held = depart_newcomers(session, actor=actor, people=newcomers, settings=settings, origin="import")
    for person_id in set(newcomers) - set(held):
        del records[person_id]
    outcome = follow_records(session, actor=actor, records=records, settings=settings, origin="import")
    report.offboardings_started = outcome.started + len(newcomers) - len(held)
    report.offboardings_scheduled, report.offboardings_moved = outcome.scheduled, outcome.moved
    report.offboardings_cancelled = outcome.cancelled
    report.offboarding_problems = [f"person #{pid}: {message}" for pid, message in outcome.problems]
    return report


def create_person(session: Session, *, actor: Actor | None, data: directory.PersonInput, settings: Settings,
                  now: datetime | None = None) -> tuple[Person, Outcome]:
    """Add a person by hand; a leaving or departed status, or an end date, goes through an offboarding."""
    status = data.status or "active"  # a new person has no status to keep
    person = directory.create_person(
        session, actor=actor, full_name=data.full_name, email=data.email, department=data.department,
        employee_id=data.employee_id, title=data.title, manager=data.manager, start_date=data.start_date,
        end_date=data.end_date, status="active" if status in GONE else status)
    outcome = follow_records(session, actor=actor, records={person.id: Record(status, data.end_date)},
                             settings=settings, origin="manual", adjusts_any=True, now=now)
    _raise_problems(outcome)
    return person, outcome


def update_person(session: Session, *, actor: Actor | None, person: Person, data: directory.PersonInput, settings: Settings,
                  now: datetime | None = None) -> tuple[dict[str, dict[str, Any]], Outcome]:
    """HR's edit of a person: the fields as given; a status or end date change through offboarding or rehire."""
    old_status, old_end = person.status, person.end_date
    if data.status not in ("active", *GONE):
        raise InvalidError("Choose active, leaving or departed.", {"status": "Choose active, leaving or departed."})
    changes = directory.update_person(session, actor=actor, person=person,
                                      data=directory.PersonInput(**{**vars(data), "status": None}))
    outcome = Outcome()
    if old_status in GONE and data.status == "active":
        # A rehire: the end date the form still shows is the one they left on (rehire clears it).
        try:
            rehire_person(session, actor=actor, person=person)
        except (ConflictError, ForbiddenError) as exc:
            raise InvalidError(exc.message, {"status": exc.message}) from None
        outcome.rehired += 1
    elif data.status != old_status or data.end_date != old_end:
        outcome = follow_records(session, actor=actor, records={person.id: Record(data.status, data.end_date)},
                                 settings=settings, origin="manual", adjusts_any=True, rehires=True, now=now)
        _raise_problems(outcome)
    return changes, outcome
