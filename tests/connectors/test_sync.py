"""Sync, snapshots, matching and drift against the local fake platforms."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from govern import failpoints
from govern.audit.models import AuditEvent
from govern.connectors import drift, sync
from govern.connectors.connections import Settings
from govern.connectors.models import MemberSnapshot, SyncRun
from govern.db import utcnow
from govern.notifications.models import Notification
from govern.webhooks import delivery
from govern.webhooks.subscriptions import SubscriptionInput, create_subscription, webhook_box
from tests.connectors.fakeplatforms import META_TOKEN, Platforms
from tests.factories import csrf_token, login
from tests.webhooks.receiver import Endpoint, start


def count(db: Any, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_sync_reads_every_account_and_finds_drift(db: Any, world: Any, settings: Settings, platforms: Platforms) -> None:
    run = sync.run_sync(db, actor=world.it, settings=settings, trigger="cli", checkpoint=db.commit)
    assert run.status == "done", run.progress
    assert run.progress["done"] == {str(world.page.id): 3, str(world.org.id): 2, str(world.tiktok.id): 1}
    assert run.requests == 2 + 2 + 2 + 1  # business users (2 pages), assigned users (2), LinkedIn ACLs (2), TikTok (1)
    items = {(i.account_id, i.kind, i.person_name): i for i in drift.company_drift(db)}
    # Dora left the company and is still on the Page: unmanaged, critical.
    assert items[(world.page.id, "unmanaged", "Dora Departed")].severity == "critical"
    # The unknown LinkedIn member is listed as such, never guessed.
    unknown = items[(world.org.id, "unmanaged", "urn:li:person:zed")]
    assert unknown.person_id is None and unknown.severity == "critical"
    # Sam is MANAGE (admin) on the Page but a moderator in govern (matched by email, case aside).
    assert items[(world.page.id, "mismatch", "Sam Staff")].platform_roles == ["CREATE_CONTENT", "MANAGE"]
    # Lea matches by her linked LinkedIn identity: admin both sides, no drift.
    assert not [i for i in items.values() if i.person_name == "Lea Leaver"]
    # Sam is on the TikTok Business Center with no grant.
    assert items[(world.tiktok.id, "unmanaged", "Sam Staff")].severity == "high"
    # IT and the owner were told at once, and the webhook's audit action was written.
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "connectors.drift_found")) == 2
    told = set(db.scalars(select(Notification.user_id).where(Notification.kind == "connectors.drift")))
    assert told == {world.it.id, world.olga.id}


def test_unchanged_sync_writes_only_its_run(db: Any, world: Any, settings: Settings) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    before = {m: count(db, m) for m in (MemberSnapshot, AuditEvent, Notification, SyncRun)}
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    after = {m: count(db, m) for m in (MemberSnapshot, AuditEvent, Notification, SyncRun)}
    assert after[SyncRun] == before[SyncRun] + 1
    assert {m: n for m, n in after.items() if m is not SyncRun} == {m: n for m, n in before.items() if m is not SyncRun}


def test_snapshot_answers_who_held_a_role_on_a_day(db: Any, world: Any, settings: Settings, platforms: Platforms) -> None:
    march = utcnow() - timedelta(days=30)
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit, now=march)
    del platforms.pages["p1"]["102"]
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    then = sync.snapshot_at(db, world.page.id, march + timedelta(days=1))
    now = sync.snapshot_at(db, world.page.id, utcnow())
    assert then is not None and now is not None
    assert {m["id"] for m in then.members} == {"100", "101", "102"}
    assert {m["id"] for m in now.members} == {"100", "101"}
    assert sync.snapshot_at(db, world.page.id, march - timedelta(days=1)) is None


def test_half_failed_sync_reports_per_account(db: Any, world: Any, settings: Settings, platforms: Platforms) -> None:
    platforms.fault("GET", "/rest/organizationAcls", 403, {"status": 403, "message": "Not enough permissions"})
    platforms.fault("GET", "/p1/assigned_users", 400, {"error": {"message": "limit", "code": 17}}, times=10)
    run = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    assert run.status == "partial"
    failed = run.progress["failed"]
    assert "rw_organization_admin" in failed[str(world.org.id)]
    assert "rate limit" in failed[str(world.page.id)] and "Gave up" in failed[str(world.page.id)]
    assert run.progress["done"] == {str(world.tiktok.id): 1}
    assert settings.sleep.waits[:4] == [0.01, 0.02, 0.04, 0.08]  # type: ignore[attr-defined]


def test_expired_token_fails_the_connection_in_plain_words(db: Any, world: Any, settings: Settings,
                                                          platforms: Platforms) -> None:
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "Session has expired", "code": 190}})
    run = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    assert "expired" in run.progress["failed"][str(world.page.id)]


def test_a_run_that_dies_half_way_is_continued(db: Any, world: Any, settings: Settings, platforms: Platforms,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "CHECKPOINT_EVERY", 1)

    def crash(account_id: int) -> None:
        if account_id == world.org.id:
            raise RuntimeError("killed")

    with failpoints.armed("connectors.sync_account", crash), pytest.raises(RuntimeError):
        sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    db.rollback()
    died = db.scalar(select(SyncRun))
    assert died.status == "running" and list(died.progress["done"]) == [str(world.page.id)]
    # The dead process's lease holds the run for a while: another process does not read the same accounts twice.
    with pytest.raises(sync.SyncBusy):
        sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    died = db.scalar(select(SyncRun))
    lease = died.progress["lease"]
    assert lease["until"] > utcnow().isoformat()
    # LEASE_SECONDS later it has run out.
    died.progress_json = json.dumps({**died.progress, "lease": {**lease, "until": (utcnow() - timedelta(seconds=1)).isoformat()}})
    db.commit()
    platforms.requests.clear()
    run = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    assert run.id == died.id and run.status == "done"
    assert set(run.progress["done"]) == {str(world.page.id), str(world.org.id), str(world.tiktok.id)}
    assert not [p for _, p in platforms.requests if "assigned_users" in p]  # the Page was not read again


def test_a_platform_that_gives_up_is_not_asked_again_for_each_account(db: Any, world: Any, settings: Settings,
                                                                       platforms: Platforms) -> None:
    from govern.connectors import connections
    from tests.factories import make_account

    other = make_account(db, display_name="Acme Careers", handle="acme-careers", platform="facebook")
    connections.cover_account(db, actor=world.it, connection=world.meta, account=other, platform_id="p9")
    db.commit()
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "limit", "code": 4}}, times=20)
    run = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    assert "Gave up" in run.progress["failed"][str(world.page.id)]
    assert run.progress["failed"][str(other.id)] == run.progress["failed"][str(world.page.id)]
    assert len([p for _, p in platforms.requests if p == "/b1/business_users"]) == 5  # one account's attempts only
    assert str(world.org.id) in run.progress["done"]


def test_no_token_in_logs_run_records_or_audit(db: Any, world: Any, settings: Settings, platforms: Platforms,
                                               caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from tests.connectors.fakeplatforms import LINKEDIN_TOKEN, META_TOKEN, TIKTOK_TOKEN

    caplog.set_level(logging.DEBUG)
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "limit", "code": 4}}, times=2)
    platforms.fault("GET", "/rest/organizationAcls", 401, {"status": 401, "message": "expired"})
    run = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    stored = run.progress_json + " ".join(db.scalars(select(AuditEvent.details_json)))
    stored += " ".join(db.scalars(select(MemberSnapshot.members_json)))
    for token in (META_TOKEN, LINKEDIN_TOKEN, TIKTOK_TOKEN):
        assert token not in caplog.text and token not in stored


def test_the_jobs_step_syncs_and_removes_where_allowed(app: Any, db: Any, world: Any, platforms: Platforms) -> None:
    from govern.connectors import connections
    from govern.jobs.services import JobContext
    from govern.jobs.steps import sync_connectors
    from govern.offboarding.scheduling import schedule_offboarding
    from govern.offboarding.settings import Settings as OffboardingSettings

    schedule_offboarding(db, actor=world.admin, person=world.lea, effective_at=None, settings=OffboardingSettings())
    connections.set_auto_remove(db, actor=world.admin, connection=world.meta, allowed=True)
    db.commit()
    with app.app_context():
        counts = sync_connectors(db, JobContext(now=utcnow(), config=app.config))
    assert counts["accounts"] == 3 and counts["failed"] == 0 and counts["removed"] == 1 and counts["requests"] > 0
    assert "100" not in platforms.pages["p1"]


def test_a_run_told_to_stop_keeps_its_progress_and_the_next_carries_on(db: Any, world: Any, settings: Settings,
                                                                       platforms: Platforms,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "CHECKPOINT_EVERY", 1)
    asked = iter([False, True])  # read one account, then the budget is spent
    run = sync.run_sync(db, actor=None, settings=settings, trigger="web", checkpoint=db.commit,
                        should_stop=lambda: next(asked, True))
    assert run.status == "running" and run.finished_at is None and len(run.progress["done"]) == 1
    assert "lease" not in run.progress  # stopped on purpose: free for the next run at once
    assert world.meta.last_synced_at is not None  # its one account was read: the connection is synced
    assert world.li.last_synced_at is None  # stopped before any of its accounts
    platforms.requests.clear()
    carried = sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    assert carried.id == run.id and carried.status == "done" and len(carried.progress["done"]) == 3
    assert "lease" not in carried.progress and carried.progress["drift"]["total"] >= 1


def test_the_sync_button_stops_at_its_time_budget(app: Any, db: Any, world: Any, client: Any) -> None:
    app.config["CONNECTORS_WEB_SYNC_SECONDS"] = 1
    login(client, db, world.users["it"])
    token = csrf_token(client, "/connectors/")
    # The view's clock: the deadline is taken at 0 s; the first account is read at 0 s, the next at 5 s.
    clock = iter([0.0, 0.0, 5.0])
    monkey = pytest.MonkeyPatch()
    monkey.setattr("govern.connectors.views.time", SimpleNamespace(monotonic=lambda: next(clock, 9.0)))
    try:
        answer = client.post("/connectors/sync", data={"csrf_token": token}, follow_redirects=True)
    finally:
        monkey.undo()
    assert answer.status_code == 200 and "the next jobs run carries on with the rest" in answer.text
    run = db.scalar(select(SyncRun))
    assert run.status == "running" and 0 < len(run.progress["done"]) < 3


def test_new_departed_access_reaches_a_drift_found_webhook_without_the_token(app: Any, db: Any, world: Any,
                                                                             settings: Settings) -> None:
    box = webhook_box([app.config["SECRET_KEY"]])
    endpoint = start(Endpoint())
    try:
        sub, endpoint.secret = create_subscription(db, actor=None, box=box, allow_plain_loopback=True, data=SubscriptionInput(
            name="SIEM", url=endpoint.url, format="standard", event_types=("drift.found",)))
        db.commit()
        sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
        result = delivery.deliver_subscription(db, sub.id, box=box, base_url="https://govern.example")
        assert result.error is None and result.delivered >= 1
        bodies = endpoint.bodies
        assert {b["type"] for b in bodies} == {"drift.found"}
        assert any(b["data"]["target_id"] == str(world.page.id) for b in bodies)
        assert META_TOKEN not in json.dumps(bodies)
    finally:
        endpoint.stop()
