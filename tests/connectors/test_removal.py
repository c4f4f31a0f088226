"""Removal on the platform: a leaver on a connected Meta Page and LinkedIn organisation is removed through the
connectors, a sync confirms, and the evidence report shows the platforms' answers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.connectors import connections, removal, sync
from govern.connectors.connections import Settings
from govern.grants.models import PlatformRemoval
from govern.offboarding.evidence import evidence
from govern.offboarding.models import OffboardingItem
from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.settings import Settings as OffboardingSettings
from tests.connectors.fakeplatforms import Platforms


def start_leaving(db: Any, world: Any) -> Any:
    run = schedule_offboarding(db, actor=world.admin, person=world.lea, effective_at=None, settings=OffboardingSettings())
    db.commit()
    return run


def removal_items(db: Any, run: Any) -> dict[int, OffboardingItem]:
    return {i.account_id: i for i in db.scalars(select(OffboardingItem).where(
        OffboardingItem.offboarding_id == run.id, OffboardingItem.kind == "platform_removal"))}


def test_offboarding_removes_the_leaver_on_meta_and_linkedin(db: Any, world: Any, settings: Settings,
                                                             platforms: Platforms) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    run = start_leaving(db, world)
    items = removal_items(db, run)
    assert set(items) == {world.page.id, world.org.id}
    for account in (world.page, world.org):
        row = db.get(PlatformRemoval, items[account.id].platform_removal_id)
        outcome = removal.remove_on_platform(db, actor=world.it, settings=settings, removal=row)
        assert outcome.ok, outcome.message
        db.commit()
    # Gone on the platforms themselves...
    assert "100" not in platforms.pages["p1"]
    assert not [e for e in platforms.orgs["9"] if e["roleAssignee"] == "urn:li:person:lea"]
    # ... the follow-up sync saw it, and the items are done with the platforms' answers as evidence.
    for account in (world.page, world.org):
        item = db.get(OffboardingItem, items[account.id].id)
        assert item.status == "done" and item.done_by_id == world.it.id
        assert "a sync at" in item.evidence_note.lower() and "no longer listed" in item.evidence_note
    notes = {i["item_id"]: i["evidence_note"] for i in evidence(db, db.get(type(run), run.id)).as_json()["items"]}
    assert '{"success":true}' in notes[items[world.page.id].id]
    assert '"status":204' in notes[items[world.org.id].id]
    latest = sync.latest_snapshot(db, world.page.id)
    assert latest is not None and "100" not in {m["id"] for m in latest.members}
    # No token ever reaches the audit trail.
    for details in db.scalars(select(AuditEvent.details_json)):
        assert "token-" not in (details or "")


def test_a_refused_removal_leaves_the_item_open_with_the_platform_error(db: Any, world: Any, settings: Settings,
                                                                        platforms: Platforms) -> None:
    run = start_leaving(db, world)
    item = removal_items(db, run)[world.page.id]
    platforms.refuse_removal["p1"] = (400, {"error": {"message": "(#200) The user cannot be removed", "code": 200}})
    outcome = removal.remove_on_platform(db, actor=world.it, settings=settings,
                                         removal=db.get(PlatformRemoval, item.platform_removal_id))
    db.commit()
    assert not outcome.ok and "lacks a permission" in outcome.message and "cannot be removed" in outcome.message
    assert db.get(OffboardingItem, item.id).status == "open"
    failed = db.scalar(select(AuditEvent).where(AuditEvent.action == "connectors.removal_failed"))
    assert failed is not None and failed.outcome == "failure"


def test_automatic_removal_only_where_an_admin_allowed_it(db: Any, world: Any, settings: Settings,
                                                          platforms: Platforms) -> None:
    run = start_leaving(db, world)
    assert removal.remove_automatically(db, settings=settings) == {"removed": 0, "failed": 0}
    connections.set_auto_remove(db, actor=world.admin, connection=world.li, allowed=True)
    assert removal.remove_automatically(db, settings=settings) == {"removed": 1, "failed": 0}
    db.commit()
    items = removal_items(db, run)
    assert items[world.org.id].status == "done" and "govern (automatic removal)" in items[world.org.id].evidence_note
    assert items[world.page.id].status == "open"


def test_the_accounts_owner_removes_and_the_it_item_still_closes(db: Any, world: Any, settings: Settings,
                                                                 platforms: Platforms) -> None:
    run = start_leaving(db, world)
    item = removal_items(db, run)[world.page.id]
    outcome = removal.remove_on_platform(db, actor=world.olga, settings=settings,
                                         removal=db.get(PlatformRemoval, item.platform_removal_id))
    db.commit()
    assert outcome.ok, outcome.message
    done = db.get(OffboardingItem, item.id)
    assert done.status == "done" and done.done_by_id == world.olga.id and "no longer listed" in done.evidence_note
