"""Scheduling, editing and cancelling an offboarding, who may, and the rehire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants.models import Grant
from govern.offboarding.checklist import skip_item
from govern.offboarding.models import Offboarding
from govern.offboarding.reading import items_of
from govern.offboarding.scheduling import cancel_offboarding, rehire_person, schedule_offboarding, update_offboarding
from govern.offboarding.start import start_due_offboardings
from tests.factories import make_person
from tests.offboarding.helpers import SETTINGS, count_rows, start_now


def test_scheduled_offboardings_wait_for_their_time_and_can_be_edited_or_cancelled(db, world):
    when = utcnow() + timedelta(days=3)
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=when, settings=SETTINGS,
                                        note="last day Friday")
    assert off.status == "scheduled" and off.deadline_hours == 24 and world.person.status == "active"
    assert start_due_offboardings(db, when - timedelta(minutes=1))["started"] == 0
    later = when + timedelta(days=1)
    changes = update_offboarding(db, actor=world.hr, offboarding=off, effective_at=later, deadline_hours=48, note="moved")
    assert set(changes) == {"effective_at", "deadline_hours", "note"}
    with pytest.raises(InvalidError):
        update_offboarding(db, actor=world.hr, offboarding=off, effective_at=utcnow() - timedelta(hours=1),
                                    deadline_hours=24, note="")
    with pytest.raises(ForbiddenError):
        cancel_offboarding(db, actor=world.it, offboarding=off, reason="x")
    with pytest.raises(InvalidError):
        cancel_offboarding(db, actor=world.hr, offboarding=off, reason=" ")
    cancel_offboarding(db, actor=world.hr, offboarding=off, reason="stays after all")
    assert off.status == "cancelled"
    assert start_due_offboardings(db, later + timedelta(hours=1))["started"] == 0
    assert world.lea.is_active



def test_a_started_offboarding_can_no_longer_be_changed(db, world):
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    with pytest.raises(ConflictError, match="in progress"):
        cancel_offboarding(db, actor=world.hr, offboarding=off, reason="oops")
    with pytest.raises(ConflictError):
        update_offboarding(db, actor=world.hr, offboarding=off, effective_at=utcnow() + timedelta(days=1),
                                    deadline_hours=24, note="")



@pytest.mark.parametrize("who", ["it", "max", "auditor", "lea"])
def test_only_hr_and_admins_start_offboardings(db, world, who):
    with pytest.raises((ForbiddenError, ConflictError)):
        schedule_offboarding(db, actor=getattr(world, who), person=world.person, effective_at=None, settings=SETTINGS)
    assert count_rows(db, Offboarding) == 0



def test_one_open_offboarding_per_person_and_none_for_the_departed(db, world):
    schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1), settings=SETTINGS)
    with pytest.raises(ConflictError, match="already has an open offboarding"):
        schedule_offboarding(db, actor=world.admin, person=world.person, effective_at=None, settings=SETTINGS)
    gone = make_person(db, full_name="Gone Already", status="departed")
    with pytest.raises(ConflictError, match="departed"):
        schedule_offboarding(db, actor=world.hr, person=gone, effective_at=None, settings=SETTINGS)



def test_the_last_active_admin_cannot_be_offboarded(db, world):
    with pytest.raises(ConflictError, match="last active admin"):
        schedule_offboarding(db, actor=world.hr, person=world.admin.person, effective_at=None, settings=SETTINGS)



def test_bad_input_is_refused_with_reasons(db, world):
    with pytest.raises(InvalidError) as exc:
        schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() - timedelta(hours=1), settings=SETTINGS)
    assert "effective_at" in exc.value.reasons
    with pytest.raises(InvalidError) as exc:
        schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS, deadline_hours=0)
    assert "deadline_hours" in exc.value.reasons
    assert count_rows(db, Offboarding) == 0



def test_rehire_restores_no_grant(db, world):
    off = start_now(db, world)
    with pytest.raises(ConflictError, match="in progress"):
        rehire_person(db, actor=world.hr, person=world.person)
    for item in items_of(db, off):
        skip_item(db, actor=world.admin, item=item, reason="test")
    assert world.person.status == "departed"
    rehire_person(db, actor=world.hr, person=world.person)
    assert world.person.status == "active" and world.person.end_date is None
    assert count_rows(db, Grant, Grant.person_id == world.person.id, Grant.status == "active") == 0
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "person.rehired")).one()
    assert '"grants_restored":0' in event.details_json
