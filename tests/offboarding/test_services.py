"""Offboarding rules: scheduling, the idempotent start, the checklist, completion, rehire, evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern import failpoints
from govern.audit.models import AuditEvent
from govern.auth.models import WebSession
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants.models import Grant, PlatformRemoval
from govern.offboarding import services
from govern.offboarding.models import Offboarding, OffboardingItem
from tests.factories import make_person
from tests.offboarding.conftest import SETTINGS


def _count(db, model, *where):
    return db.scalar(select(func.count()).select_from(model).where(*where))


def _snapshot(db, offboarding_id):
    """Everything the start touches, to compare two runs."""
    db.expire_all()
    return (
        sorted((g.id, g.status) for g in db.scalars(select(Grant))),
        _count(db, PlatformRemoval),
        sorted((i.key, i.status) for i in db.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == offboarding_id))),
        _count(db, AuditEvent),
    )


def _session_for(db, user):
    db.add(WebSession(id=f"{user.id:064d}", public_id=f"{user.id:032d}", user_id=user.id, authenticated_at=utcnow()))
    db.flush()


def test_an_immediate_offboarding_blocks_revokes_and_builds_the_checklist(db, world):
    _session_for(db, world.lea)
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    assert off.kind == "immediate" and off.status == "in_progress" and off.deadline_hours == 1
    assert off.due_at == off.started_at + timedelta(hours=1)
    assert world.person.status == "leaving"
    assert world.lea.is_active is False
    assert _count(db, WebSession, WebSession.user_id == world.lea.id) == 0
    lea_grants = db.scalars(select(Grant).where(Grant.person_id == world.person.id)).all()
    assert {g.status for g in lea_grants} == {"revoked", "rejected"}
    assert all(g.revoke_reason == "offboarding" for g in lea_grants if g.status == "revoked")
    items = services.items_of(db, off)
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
    flags = services.flags_of(db, off)
    assert [f.account.id for f in flags] == [world.linkedin.id]


def test_running_the_start_twice_changes_nothing(db, world):
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    before = _snapshot(db, off.id)
    assert services.start_offboarding(db, off) is False
    assert services.generate_items(db, off) == 0
    assert services.start_due_offboardings(db, utcnow() + timedelta(days=2))["started"] == 0
    assert _snapshot(db, off.id) == before


def test_a_crash_half_way_leaves_nothing_and_the_next_run_finishes(app, db, world):
    when = utcnow() + timedelta(days=1)
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=when, settings=SETTINGS)
    db.commit()
    before = _snapshot(db, off.id)
    revoked_when_crashed = []

    def crash():
        # The grants are revoked (all at once) when the power goes; the items are not made yet.
        revoked_when_crashed.append(db.scalar(select(func.count()).select_from(Grant).where(
            Grant.person_id == world.person.id, Grant.status == "revoked")))
        raise RuntimeError("power cut")

    with failpoints.armed("offboarding.after_revoke", crash), pytest.raises(RuntimeError):
        services.start_due_offboardings(db, when + timedelta(minutes=1))
    assert revoked_when_crashed == [3]
    db.rollback()
    assert _snapshot(db, off.id) == before
    db.refresh(off)
    assert off.status == "scheduled"
    result = services.start_due_offboardings(db, when + timedelta(minutes=1))
    db.commit()
    assert result["started"] == 1
    items = services.items_of(db, off)
    assert len([i for i in items if i.kind == "platform_removal"]) == 3
    assert len({i.key for i in items}) == len(items)


def test_scheduled_offboardings_wait_for_their_time_and_can_be_edited_or_cancelled(db, world):
    when = utcnow() + timedelta(days=3)
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=when, settings=SETTINGS,
                                        note="last day Friday")
    assert off.status == "scheduled" and off.deadline_hours == 24 and world.person.status == "active"
    assert services.start_due_offboardings(db, when - timedelta(minutes=1))["started"] == 0
    later = when + timedelta(days=1)
    changes = services.update_offboarding(db, actor=world.hr, offboarding=off, effective_at=later, deadline_hours=48, note="moved")
    assert set(changes) == {"effective_at", "deadline_hours", "note"}
    with pytest.raises(InvalidError):
        services.update_offboarding(db, actor=world.hr, offboarding=off, effective_at=utcnow() - timedelta(hours=1),
                                    deadline_hours=24, note="")
    with pytest.raises(ForbiddenError):
        services.cancel_offboarding(db, actor=world.it, offboarding=off, reason="x")
    with pytest.raises(InvalidError):
        services.cancel_offboarding(db, actor=world.hr, offboarding=off, reason=" ")
    services.cancel_offboarding(db, actor=world.hr, offboarding=off, reason="stays after all")
    assert off.status == "cancelled"
    assert services.start_due_offboardings(db, later + timedelta(hours=1))["started"] == 0
    assert world.lea.is_active


def test_a_started_offboarding_can_no_longer_be_changed(db, world):
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    with pytest.raises(ConflictError, match="in progress"):
        services.cancel_offboarding(db, actor=world.hr, offboarding=off, reason="oops")
    with pytest.raises(ConflictError):
        services.update_offboarding(db, actor=world.hr, offboarding=off, effective_at=utcnow() + timedelta(days=1),
                                    deadline_hours=24, note="")


@pytest.mark.parametrize("who", ["it", "max", "auditor", "lea"])
def test_only_hr_and_admins_start_offboardings(db, world, who):
    with pytest.raises((ForbiddenError, ConflictError)):
        services.schedule_offboarding(db, actor=getattr(world, who), person=world.person, effective_at=None, settings=SETTINGS)
    assert _count(db, Offboarding) == 0


def test_one_open_offboarding_per_person_and_none_for_the_departed(db, world):
    services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1), settings=SETTINGS)
    with pytest.raises(ConflictError, match="already has an open offboarding"):
        services.schedule_offboarding(db, actor=world.admin, person=world.person, effective_at=None, settings=SETTINGS)
    gone = make_person(db, full_name="Gone Already", status="departed")
    with pytest.raises(ConflictError, match="departed"):
        services.schedule_offboarding(db, actor=world.hr, person=gone, effective_at=None, settings=SETTINGS)


def test_the_last_active_admin_cannot_be_offboarded(db, world):
    with pytest.raises(ConflictError, match="last active admin"):
        services.schedule_offboarding(db, actor=world.hr, person=world.admin.person, effective_at=None, settings=SETTINGS)


def test_bad_input_is_refused_with_reasons(db, world):
    with pytest.raises(InvalidError) as exc:
        services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() - timedelta(hours=1), settings=SETTINGS)
    assert "effective_at" in exc.value.reasons
    with pytest.raises(InvalidError) as exc:
        services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS, deadline_hours=0)
    assert "deadline_hours" in exc.value.reasons
    assert _count(db, Offboarding) == 0


def _started(db, world):
    return services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)


def test_items_are_worked_by_their_owners_and_completion_makes_the_person_departed(db, world):
    off = _started(db, world)
    items = services.items_of(db, off)
    removal = next(i for i in items if i.kind == "platform_removal")
    successor = next(i for i in items if i.kind == "successor" and i.account_id == world.insta.id)
    # IT works removals; a manager who is not the item's owner may not; a removal needs a note.
    with pytest.raises(ForbiddenError):
        services.complete_item(db, actor=world.olga, item=removal, note="done")
    with pytest.raises(InvalidError):
        services.complete_item(db, actor=world.it, item=removal, note=" ")
    services.complete_item(db, actor=world.it, item=removal, note="Removed in Business Settings at 10:02")
    db.refresh(removal)
    assert removal.status == "done" and removal.done_by_id == world.it.id
    assert db.get(PlatformRemoval, removal.platform_removal_id).confirmed_by_id == world.it.id
    with pytest.raises(ConflictError):
        services.complete_item(db, actor=world.it, item=removal, note="again")
    # Successor items: the leaver's manager picks a successor; the account gets them.
    with pytest.raises(InvalidError, match="successor first"):
        services.complete_item(db, actor=world.max, item=successor, note="")
    with pytest.raises(InvalidError):
        services.choose_successor(db, actor=world.max, offboarding=off, account_id=world.insta.id, successor_id=world.person.id)
    with pytest.raises(ForbiddenError):
        services.choose_successor(db, actor=world.olga, offboarding=off, account_id=world.insta.id, successor_id=world.sam.id)
    services.choose_successor(db, actor=world.max, offboarding=off, account_id=world.insta.id, successor_id=world.sam.id)
    services.complete_item(db, actor=world.max, item=successor, note="Sam has the phone now")
    db.refresh(world.insta)
    assert world.insta.recovery_phone_person_id == world.sam.id
    assert world.insta.business_owner_id == world.olga.person_id  # not Lea's duty, untouched
    # Skipping is for admins only, with a reason.
    other = next(i for i in services.items_of(db, off) if i.status == "open")
    with pytest.raises(ForbiddenError):
        services.skip_item(db, actor=world.hr, item=other, reason="n/a")
    with pytest.raises(InvalidError):
        services.skip_item(db, actor=world.admin, item=other, reason="")
    for item in services.items_of(db, off):
        if item.status == "open":
            services.skip_item(db, actor=world.admin, item=item, reason="handled outside govern for the test")
    db.refresh(off)
    assert off.status == "completed" and off.completed_at is not None
    assert world.person.status == "departed"


def test_a_removal_confirmed_on_the_grants_page_closes_its_item(db, world):
    from govern.grants import services as grants

    off = _started(db, world)
    item = next(i for i in services.items_of(db, off) if i.kind == "platform_removal")
    grants.confirm_removal(db, actor=world.it, removal=db.get(PlatformRemoval, item.platform_removal_id), note="gone")
    assert services.sync_removals(db, off) == 1
    db.refresh(item)
    assert item.status == "done" and item.evidence_note == "gone" and item.done_by_id == world.it.id


def test_successors_can_be_chosen_before_the_day_and_are_previewed(db, world):
    off = services.schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=2), settings=SETTINGS)
    services.choose_successor(db, actor=world.max, offboarding=off, account_id=world.linkedin.id, successor_id=world.sam.id)
    preview = services.preview(db, off)
    assert len(preview.grants) == 4 and len(preview.removal_labels) == 3
    assert {a.account.id: a.successor.id if a.successor else None for a in preview.accounts} == {
        world.linkedin.id: world.sam.id, world.insta.id: None}
    assert [f.account.id for f in preview.flags] == [world.linkedin.id]
    assert _count(db, OffboardingItem) == 0  # nothing is generated before the day


def test_hr_adds_free_text_items_with_an_owner(db, world):
    off = _started(db, world)
    item = services.add_manual_item(db, actor=world.hr, offboarding=off, title="Collect the company phone", owner="manager")
    assert item.owner_person_id == world.max.person_id and item.due_at == off.due_at
    second = services.add_manual_item(db, actor=world.hr, offboarding=off, title="Return the badge", owner="hr")
    assert second.key != item.key
    with pytest.raises(InvalidError):
        services.add_manual_item(db, actor=world.hr, offboarding=off, title="", owner="it")
    with pytest.raises(InvalidError):
        services.add_manual_item(db, actor=world.hr, offboarding=off, title="x", owner="ceo")
    with pytest.raises(ForbiddenError):
        services.add_manual_item(db, actor=world.it, offboarding=off, title="x", owner="it")
    services.complete_item(db, actor=world.max, item=item, note="phone returned")
    with pytest.raises(ForbiddenError):
        services.complete_item(db, actor=world.it, item=second, note="x")


def test_a_person_with_nothing_completes_at_once(db, world):
    off = services.schedule_offboarding(db, actor=world.hr, person=world.stranger, effective_at=None, settings=SETTINGS)
    assert off.status == "completed" and world.stranger.status == "departed"


def test_rehire_restores_no_grant(db, world):
    off = _started(db, world)
    with pytest.raises(ConflictError, match="in progress"):
        services.rehire_person(db, actor=world.hr, person=world.person)
    for item in services.items_of(db, off):
        services.skip_item(db, actor=world.admin, item=item, reason="test")
    assert world.person.status == "departed"
    services.rehire_person(db, actor=world.hr, person=world.person)
    assert world.person.status == "active" and world.person.end_date is None
    assert _count(db, Grant, Grant.person_id == world.person.id, Grant.status == "active") == 0
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "person.rehired")).one()
    assert '"grants_restored":0' in event.details_json


def test_evidence_lists_items_people_notes_audit_ids_and_grants_before_after(db, world):
    off = _started(db, world)
    items = services.items_of(db, off)
    removal = next(i for i in items if i.kind == "platform_removal")
    services.complete_item(db, actor=world.it, item=removal, note="removed")
    report = services.evidence(db, off)
    row = next(e for e in report.items if e.item.id == removal.id)
    assert row.done_by == world.it.email
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.id.in_(row.audit_ids))))
    assert {"grant.revoked", "offboarding.item_created", "grant.platform_removal_confirmed", "offboarding.item_done"} <= actions
    assert report.offboarding_audit_ids
    assert {g["status"] for g in report.grants_before} == {"active", "requested"}
    assert {g["status"] for g in report.grants_after} == {"revoked", "rejected"}
    data = report.as_json()
    assert data["offboarding"]["person"]["email"] == world.person.email and len(data["items"]) == len(items)


def test_list_and_progress(db, world):
    off = _started(db, world)
    rows, total = services.list_offboardings(db, world.hr)
    assert total == 1 and rows[0].id == off.id
    progress = services.progress_of(db, [off.id])[off.id]
    assert progress.total == 5 and progress.open == 5 and progress.percent == 0
    assert services.blockers_of(progress) == "3 for IT, 2 for the manager"
    # A manager sees the offboardings of their reports; a stranger manager does not.
    assert services.list_offboardings(db, world.max)[1] == 1
    assert services.list_offboardings(db, world.olga)[1] == 0
    assert services.may_view(db, world.max, off) and not services.may_view(db, world.olga, off)


def test_the_database_refuses_a_duplicate_item_or_a_second_open_offboarding(db, world):
    from sqlalchemy.exc import IntegrityError

    off = _started(db, world)
    item = services.items_of(db, off)[0]
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(OffboardingItem(offboarding_id=off.id, key=item.key, kind=item.kind, owner=item.owner, title="again"))
        db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(Offboarding(person_id=world.person.id, kind="scheduled", status="scheduled", effective_at=utcnow(),
                           deadline_hours=24))
        db.flush()
