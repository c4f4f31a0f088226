"""The HR CSV import schedules, moves and cancels offboardings from end dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from govern.db import utcnow
from govern.directory.import_parse import parse_file
from govern.directory.models import Person
from govern.offboarding.lifecycle import import_people
from govern.offboarding.models import Offboarding
from govern.offboarding.scheduling import cancel_offboarding, schedule_offboarding
from govern.offboarding.settings import Settings
from tests.directory.helpers import csv_bytes
from tests.factories import make_user


def _import(db, rows, actor=None):
    report = import_people(db, parse_file(csv_bytes(rows)), actor=actor, settings=Settings(last_day_hour=18))
    db.commit()
    return report


def _offboarding(db, email):
    person = db.scalar(select(Person).where(Person.email == email))
    return db.scalar(select(Offboarding).where(Offboarding.person_id == person.id).order_by(Offboarding.id.desc()))


def test_an_end_date_schedules_an_offboarding_that_follows_the_file(app, db, kit):
    day = (utcnow() + timedelta(days=10)).date()
    report = _import(db, [["E1", "eve@acme.example", "Eve", "", "", "", "", day.isoformat(), ""]])
    assert report.offboardings_scheduled == 1
    off = _offboarding(db, "eve@acme.example")
    assert off.status == "scheduled" and off.origin == "import"
    assert off.effective_at == datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
    # The same file again changes nothing.
    assert _import(db, [["E1", "eve@acme.example", "Eve", "", "", "", "", day.isoformat(), ""]]).offboardings_scheduled == 0
    assert db.scalar(select(Offboarding.id).where(Offboarding.id != off.id)) is None
    # A later end date moves it; a cleared one cancels it.
    later = day + timedelta(days=3)
    assert _import(db, [["E1", "eve@acme.example", "Eve", "", "", "", "", later.isoformat(), ""]]).offboardings_moved == 1
    db.refresh(off)
    assert off.effective_at.date() == later
    assert _import(db, [["E1", "eve@acme.example", "Eve", "", "", "", "", "", ""]]).offboardings_cancelled == 1
    db.refresh(off)
    assert off.status == "cancelled"


def test_an_offboarding_hr_adjusted_by_hand_is_left_alone(app, db, kit):
    hr = make_user(db, kit, roles=("hr",))
    day = (utcnow() + timedelta(days=10)).date()
    _import(db, [["E2", "fay@acme.example", "Fay", "", "", "", "", day.isoformat(), ""]])
    person = db.scalar(select(Person).where(Person.email == "fay@acme.example"))
    off = _offboarding(db, "fay@acme.example")
    with app.test_request_context():
        cancel_offboarding(db, actor=hr.user, offboarding=off, reason="HR will handle it")
        manual = schedule_offboarding(db, actor=hr.user, person=person, settings=Settings(),
                                               effective_at=utcnow() + timedelta(days=20))
    db.commit()
    report = _import(db, [["E2", "fay@acme.example", "Fay", "", "", "", "", (day + timedelta(days=1)).isoformat(), ""]])
    assert (report.offboardings_scheduled, report.offboardings_moved) == (0, 0)
    db.refresh(manual)
    assert manual.status == "scheduled" and manual.effective_at.date() != day + timedelta(days=1)


def test_departed_rows_and_problems_do_not_stop_the_import(app, db, kit):
    hr = make_user(db, kit, roles=("hr",), email="hana@acme.example")
    past = date(2020, 1, 31).isoformat()
    report = _import(db, [
        ["E3", "gus@acme.example", "Gus", "", "", "", "", past, "Terminated"],
        ["E4", "hana@acme.example", "Hana", "", "", "", "", (utcnow() + timedelta(days=5)).date().isoformat(), ""],
    ], actor=hr.user)
    assert report.applied and report.offboardings_scheduled == 0
    assert report.offboarding_problems and "offboard yourself" in report.offboarding_problems[0]
    # Gus left before govern knew him: he is departed through an offboarding with nothing to take away.
    gus = _offboarding(db, "gus@acme.example")
    assert report.offboardings_started == 1
    assert (gus.status, gus.origin, gus.person.status) == ("completed", "import", "departed")
