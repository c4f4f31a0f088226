"""The checklist: items worked by their owners, removals, successors, free-text items."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants.models import PlatformRemoval
from govern.offboarding import reading as offboarding_reading
from govern.offboarding.checklist import add_manual_item, choose_successor, complete_item, skip_item, sync_removals
from govern.offboarding.models import OffboardingItem
from govern.offboarding.reading import items_of
from govern.offboarding.scheduling import schedule_offboarding
from tests.offboarding.helpers import SETTINGS, count_rows, start_now


def test_items_are_worked_by_their_owners_and_completion_makes_the_person_departed(db, world):
    off = start_now(db, world)
    items = items_of(db, off)
    removal = next(i for i in items if i.kind == "platform_removal")
    successor = next(i for i in items if i.kind == "successor" and i.account_id == world.insta.id)
    # IT works removals; a manager who is not the item's owner may not; a removal needs a note.
    with pytest.raises(ForbiddenError):
        complete_item(db, actor=world.olga, item=removal, note="done")
    with pytest.raises(InvalidError):
        complete_item(db, actor=world.it, item=removal, note=" ")
    complete_item(db, actor=world.it, item=removal, note="Removed in Business Settings at 10:02")
    db.refresh(removal)
    assert removal.status == "done" and removal.done_by_id == world.it.id
    assert db.get(PlatformRemoval, removal.platform_removal_id).confirmed_by_id == world.it.id
    with pytest.raises(ConflictError):
        complete_item(db, actor=world.it, item=removal, note="again")
    # Successor items: the leaver's manager picks a successor; the account gets them.
    with pytest.raises(InvalidError, match="successor first"):
        complete_item(db, actor=world.max, item=successor, note="")
    with pytest.raises(InvalidError):
        choose_successor(db, actor=world.max, offboarding=off, account_id=world.insta.id, successor_id=world.person.id)
    with pytest.raises(ForbiddenError):
        choose_successor(db, actor=world.olga, offboarding=off, account_id=world.insta.id, successor_id=world.sam.id)
    choose_successor(db, actor=world.max, offboarding=off, account_id=world.insta.id, successor_id=world.sam.id)
    complete_item(db, actor=world.max, item=successor, note="Sam has the phone now")
    db.refresh(world.insta)
    assert world.insta.recovery_phone_person_id == world.sam.id
    assert world.insta.business_owner_id == world.olga.person_id  # not Lea's duty, untouched
    # Skipping is for admins only, with a reason.
    other = next(i for i in items_of(db, off) if i.status == "open")
    with pytest.raises(ForbiddenError):
        skip_item(db, actor=world.hr, item=other, reason="n/a")
    with pytest.raises(InvalidError):
        skip_item(db, actor=world.admin, item=other, reason="")
    for item in items_of(db, off):
        if item.status == "open":
            skip_item(db, actor=world.admin, item=item, reason="handled outside govern for the test")
    db.refresh(off)
    assert off.status == "completed" and off.completed_at is not None
    assert world.person.status == "departed"



def test_a_removal_confirmed_on_the_grants_page_closes_its_item(db, world):
    from govern.grants import services as grants

    off = start_now(db, world)
    item = next(i for i in items_of(db, off) if i.kind == "platform_removal")
    grants.confirm_removal(db, actor=world.it, removal=db.get(PlatformRemoval, item.platform_removal_id), note="gone")
    assert sync_removals(db, off) == 1
    db.refresh(item)
    assert item.status == "done" and item.evidence_note == "gone" and item.done_by_id == world.it.id



def test_successors_can_be_chosen_before_the_day_and_are_previewed(db, world):
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=2), settings=SETTINGS)
    choose_successor(db, actor=world.max, offboarding=off, account_id=world.linkedin.id, successor_id=world.sam.id)
    preview = offboarding_reading.preview(db, off)
    assert len(preview.grants) == 4 and len(preview.removal_labels) == 3
    assert {a.account.id: a.successor.id if a.successor else None for a in preview.accounts} == {
        world.linkedin.id: world.sam.id, world.insta.id: None}
    assert [f.account.id for f in preview.flags] == [world.linkedin.id]
    assert count_rows(db, OffboardingItem) == 0  # nothing is generated before the day



def test_hr_adds_free_text_items_with_an_owner(db, world):
    off = start_now(db, world)
    item = add_manual_item(db, actor=world.hr, offboarding=off, title="Collect the company phone", owner="manager")
    assert item.owner_person_id == world.max.person_id and item.due_at == off.due_at
    second = add_manual_item(db, actor=world.hr, offboarding=off, title="Return the badge", owner="hr")
    assert second.key != item.key
    with pytest.raises(InvalidError):
        add_manual_item(db, actor=world.hr, offboarding=off, title="", owner="it")
    with pytest.raises(InvalidError):
        add_manual_item(db, actor=world.hr, offboarding=off, title="x", owner="ceo")
    with pytest.raises(ForbiddenError):
        add_manual_item(db, actor=world.it, offboarding=off, title="x", owner="it")
    complete_item(db, actor=world.max, item=item, note="phone returned")
    with pytest.raises(ForbiddenError):
        complete_item(db, actor=world.it, item=second, note="x")
