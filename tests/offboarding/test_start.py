"""The start on the effective time: access blocked, the checklist built, idempotent and crash-safe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern import failpoints
from govern.audit.models import AuditEvent
from govern.auth.models import WebSession
from govern.db import utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.reading import flags_of, items_of
from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.start import generate_items, start_due_offboardings, start_offboarding
from tests.offboarding.helpers import SETTINGS, count_rows, start_now


def _snapshot(db, offboarding_id):
    """Everything the start touches, to compare two runs."""
    db.expire_all()
    return (
        sorted((g.id, g.status) for g in db.scalars(select(Grant))),
        count_rows(db, PlatformRemoval),
        sorted((i.key, i.status) for i in db.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == offboarding_id))),
        count_rows(db, AuditEvent),
    )



def _session_for(db, user):
    db.add(WebSession(id=f"{user.id:064d}", public_id=f"{user.id:032d}", user_id=user.id, authenticated_at=utcnow()))
    db.flush()



def test_an_immediate_offboarding_blocks_revokes_and_builds_the_checklist(db, world):
    _session_for(db, world.lea)
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    assert off.kind == "immediate" and off.status == "in_progress" and off.deadline_hours == 1
    assert off.due_at == off.started_at + timedelta(hours=1)
    assert world.person.status == "leaving"
    assert world.lea.is_active is False
    assert count_rows(db, WebSession, WebSession.user_id == world.lea.id) == 0
    lea_grants = db.scalars(select(Grant).where(Grant.person_id == world.person.id)).all()
    assert {g.status for g in lea_grants} == {"revoked", "rejected"}
    assert all(g.revoke_reason == "offboarding" for g in lea_grants if g.status == "revoked")
    items = items_of(db, off)
    removals = [i for i in items if i.kind == "platform_removal"]
    assert len(removals) == 3 and all(i.owner == "it" for i in removals)
    titles = " | ".join(i.title for i in removals)
    assert "LinkedIn Super admin" in titles and "Instagram" in titles
    assert {i.platform_removal_id for i in removals} == set(db.scalars(select(PlatformRemoval.id)))
    successors = [i for i in items if i.kind == "successor"]
    assert {i.account_id for i in successors} == {world.linkedin.id, world.insta.id}
    assert all(i.owner == "manager" and i.owner_person_id == world.max.person_id for i in successors)
    linkedin_item = next(i for i in successors if i.account_id == world.linkedin.id)
    assert "business owner, crisis contact" in linkedin_item.title and "Super admin" in linkedin_item.instructions
    # Successors come first in working order, and the LinkedIn removal waits for them.
    assert items[0].kind == "successor"
    li_removal = next(i for i in removals if i.account_id == world.linkedin.id)
    assert "after the successor" in li_removal.instructions
    # The review item Lea was to decide now goes to her manager.
    db.refresh(world.review_item)
    assert world.review_item.reviewer_id == world.max.person_id
    # LinkedIn lost its only admin: flagged.
    flags = flags_of(db, off)
    assert [f.account.id for f in flags] == [world.linkedin.id]



def test_running_the_start_twice_changes_nothing(db, world):
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    before = _snapshot(db, off.id)
    assert start_offboarding(db, off) is False
    assert generate_items(db, off) == 0
    assert start_due_offboardings(db, utcnow() + timedelta(days=2))["started"] == 0
    assert _snapshot(db, off.id) == before



def test_a_crash_half_way_leaves_nothing_and_the_next_run_finishes(app, db, world):
    when = utcnow() + timedelta(days=1)
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=when, settings=SETTINGS)
    db.commit()
    before = _snapshot(db, off.id)
    revoked_when_crashed = []

    def crash():
        # The grants are revoked (all at once) when the power goes; the items are not made yet.
        revoked_when_crashed.append(db.scalar(select(func.count()).select_from(Grant).where(
            Grant.person_id == world.person.id, Grant.status == "revoked")))
        raise RuntimeError("power cut")

    with failpoints.armed("offboarding.after_revoke", crash), pytest.raises(RuntimeError):
        start_due_offboardings(db, when + timedelta(minutes=1))
    assert revoked_when_crashed == [3]
    db.rollback()
    assert _snapshot(db, off.id) == before
    db.refresh(off)
    assert off.status == "scheduled"
    result = start_due_offboardings(db, when + timedelta(minutes=1))
    db.commit()
    assert result["started"] == 1
    items = items_of(db, off)
    assert len([i for i in items if i.kind == "platform_removal"]) == 3
    assert len({i.key for i in items}) == len(items)



def test_a_person_with_nothing_completes_at_once(db, world):
    off = schedule_offboarding(db, actor=world.hr, person=world.stranger, effective_at=None, settings=SETTINGS)
    assert off.status == "completed" and world.stranger.status == "departed"



def test_the_database_refuses_a_duplicate_item_or_a_second_open_offboarding(db, world):
    from sqlalchemy.exc import IntegrityError

    off = start_now(db, world)
    item = items_of(db, off)[0]
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(OffboardingItem(offboarding_id=off.id, key=item.key, kind=item.kind, owner=item.owner, title="again"))
        db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(Offboarding(person_id=world.person.id, kind="scheduled", status="scheduled", effective_at=utcnow(),
                           deadline_hours=24))
        db.flush()
