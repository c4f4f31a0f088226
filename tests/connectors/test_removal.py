"""Removal on the platform: a leaver on a connected Meta Page and LinkedIn organisation is removed through the
connectors, a sync confirms, and the evidence report shows the platforms' answers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.connectors import connections, removal, sync
from govern.connectors.connections import Settings
from govern.errors import ConflictError, ForbiddenError
from govern.grants.models import PlatformRemoval
from govern.offboarding.evidence import evidence
from govern.offboarding.models import OffboardingItem
from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.settings import Settings as OffboardingSettings
from tests.connectors.fakeplatforms import Platforms
from tests.factories import login, post


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


def test_it_removes_unmanaged_access_on_the_platform_from_the_account_page(app: Any, db: Any, world: Any, client: Any,
                                                                           settings: Settings, platforms: Platforms) -> None:
    """Dora left long ago and was never granted the Page in govern; she still holds ANALYZE on it, and LinkedIn
    lists a member govern does not know. IT removes both from the drift table."""
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    login(client, db, world.users["it"])
    page = client.get(f"/connectors/accounts/{world.page.id}").text
    assert "Remove on Meta" in page and 'name="member_id" value="102"' in page
    assert 'name="member_id" value="100"' not in page  # Lea holds a grant: her access is managed
    answer = post(client, f"/connectors/accounts/{world.page.id}/remove-member", {"member_id": "102"},
                  token_page=f"/connectors/accounts/{world.page.id}", follow_redirects=True)
    assert answer.status_code == 200 and "Dora Departed was removed on Meta; a sync confirmed it." in answer.text
    assert "102" not in platforms.pages["p1"]
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "connectors.unmanaged_removed"))
    assert event is not None and '"member_id":"102"' in event.details_json and "DELETE /p1/assigned_users" in event.details_json
    assert "Dora Departed" not in client.get(f"/connectors/accounts/{world.org.id}").text
    answer = post(client, f"/connectors/accounts/{world.org.id}/remove-member", {"member_id": "urn:li:person:zed"},
                  token_page=f"/connectors/accounts/{world.org.id}", follow_redirects=True)
    assert "urn:li:person:zed was removed on LinkedIn" in answer.text
    assert {e["roleAssignee"] for e in platforms.orgs["9"] if e["state"] == "APPROVED"} == {"urn:li:person:lea"}


def test_unmanaged_removal_refusals(app: Any, db: Any, world: Any, client: Any, settings: Settings,
                                    platforms: Platforms) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    # Managed access ends by revoking the grant, not from here.
    with pytest.raises(ConflictError, match="holds a grant"):
        removal.remove_unmanaged(db, actor=world.it, settings=settings, account_id=world.page.id, member_id="100")
    assert "100" in platforms.pages["p1"]
    # The platform refuses: the drift stays, the error is in plain words and audited.
    platforms.refuse_removal["p1"] = (400, {"error": {"message": "(#200) The user cannot be removed", "code": 200}})
    outcome = removal.remove_unmanaged(db, actor=world.it, settings=settings, account_id=world.page.id, member_id="102")
    db.commit()
    assert not outcome.ok and "cannot be removed" in outcome.message and "102" in platforms.pages["p1"]
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "connectors.removal_failed")) is not None
    # Someone no longer listed: nothing to do, said so.
    gone = removal.remove_unmanaged(db, actor=world.it, settings=settings, account_id=world.page.id, member_id="999")
    assert gone.ok and "no longer listed" in gone.message
    # Only IT or an admin; a manager (even the owner) is refused, on the page too.
    with pytest.raises(ForbiddenError):
        removal.remove_unmanaged(db, actor=world.olga, settings=settings, account_id=world.page.id, member_id="102")
    login(client, db, world.users["olga"])
    refused = post(client, f"/connectors/accounts/{world.page.id}/remove-member", {"member_id": "102"},
                   token_page=f"/connectors/accounts/{world.page.id}")
    assert refused.status_code in (403, 404)
    assert "102" in platforms.pages["p1"]
