"""Sync: read who holds which platform role on each connected account, to the last page, and keep it.

A run records its per-account progress; a run that dies half-way is continued by the next run. A
snapshot row is written only when an account's member set changed (an unchanged sync writes only its
run record). New unmanaged access by a departed or unknown person notifies IT and the account's owner
at once and writes ``connectors.drift_found`` (the webhook event ``drift.found``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govern import audit, failpoints
from govern.accounts.models import Account
from govern.audit.services import Actor
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.connectors.clients.base import ConnectorError, HttpBase, Member
from govern.connectors.clients.linkedin import LinkedInClient
from govern.connectors.clients.meta import MetaClient
from govern.connectors.clients.tiktok import TikTokClient
from govern.connectors.connections import Settings, client_for, connected_accounts
from govern.connectors.drift import DriftItem, Observed, company_drift, drift_of
from govern.connectors.models import ConnectedAccount, Connection, MemberSnapshot, SyncRun
from govern.db import utcnow
from govern.notifications import services as notifications

#: Progress (and the snapshots read) is committed every this many accounts and at the end of each
#: connection: a crash redoes at most this many; writing the progress after every account made a run
#: of n accounts encode n progress records of up to n entries.
CHECKPOINT_EVERY = 25
#: How long a run being carried on is held by its process without a checkpoint (a process that died
#: leaves it free after this long).
LEASE_SECONDS = 300
#: The critical drift items a run keeps for the IT dashboard (the drift report has them all).
CRITICAL_KEPT = 20


def _noop() -> None:
    return None


def fetch_members(client: HttpBase, connection: Connection, covered: ConnectedAccount,
                  cache: dict[str, Any]) -> list[Member]:
    """Ask the platform who holds a role on one covered account."""
    if isinstance(client, MetaClient):
        if "business_users" not in cache:
            cache["business_users"] = client.business_users(connection.external_id)
        return client.page_members(covered.platform_id, connection.external_id, cache["business_users"])
    if isinstance(client, LinkedInClient):
        return client.members(covered.platform_id)
    assert isinstance(client, TikTokClient)
    return client.members(covered.platform_id)


def digest_of(members: list[dict[str, Any]]) -> str:
    """The canonical digest of a member list."""
    return hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def latest_snapshot(session: Session, account_id: int) -> MemberSnapshot | None:
    """The account's newest snapshot."""
    return session.scalar(select(MemberSnapshot).where(MemberSnapshot.account_id == account_id)
                          .order_by(MemberSnapshot.id.desc()).limit(1))


def snapshot_at(session: Session, account_id: int, when: datetime) -> MemberSnapshot | None:
    """Who held which role on the account at ``when``: the last snapshot taken at or before it."""
    return session.scalar(select(MemberSnapshot).where(MemberSnapshot.account_id == account_id,
                                                       MemberSnapshot.taken_at <= when)
                          .order_by(MemberSnapshot.taken_at.desc(), MemberSnapshot.id.desc()).limit(1))


def snapshot_history(session: Session, account_id: int, limit: int = 20) -> list[tuple[int, datetime, datetime, int]]:
    """The account's newest member-set changes: (snapshot id, taken_at, last_seen_at, member count), newest first.

    Reads the ids and times only; the counts come from the JSON of at most ``limit`` rows."""
    rows = session.execute(select(MemberSnapshot.id, MemberSnapshot.taken_at, MemberSnapshot.last_seen_at,
                                  MemberSnapshot.members_json).where(MemberSnapshot.account_id == account_id)
                           .order_by(MemberSnapshot.taken_at.desc(), MemberSnapshot.id.desc()).limit(limit))
    return [(sid, taken, seen, len(json.loads(members or "[]"))) for sid, taken, seen, members in rows]


def latest_seen(session: Session, account_ids: list[int]) -> dict[int, tuple[datetime, int]]:
    """Account id -> (last seen by a sync, member count) of its newest snapshot, for a page of accounts."""
    if not account_ids:
        return {}
    newest = select(func.max(MemberSnapshot.id)).where(MemberSnapshot.account_id.in_(account_ids)) \
        .group_by(MemberSnapshot.account_id)
    return {aid: (seen, len(json.loads(members or "[]"))) for aid, seen, members in session.execute(
        select(MemberSnapshot.account_id, MemberSnapshot.last_seen_at, MemberSnapshot.members_json)
        .where(MemberSnapshot.id.in_(newest)))}


def latest_digests(session: Session, account_ids: list[int]) -> dict[int, tuple[int, str]]:
    """Account id -> (id, digest) of its newest snapshot, in one query per 500 accounts."""
    found: dict[int, tuple[int, str]] = {}
    for start in range(0, len(account_ids), 500):
        chunk = account_ids[start:start + 500]
        newest = select(func.max(MemberSnapshot.id)).where(MemberSnapshot.account_id.in_(chunk)) \
            .group_by(MemberSnapshot.account_id)
        for sid, aid, digest in session.execute(select(MemberSnapshot.id, MemberSnapshot.account_id,
                                                       MemberSnapshot.digest).where(MemberSnapshot.id.in_(newest))):
            found[aid] = (sid, digest)
    return found


def store_snapshot(session: Session, *, account: Account, platform: str, members: list[Member],
                   now: datetime, known: tuple[int, str] | None = None) -> MemberSnapshot | None:
    """Keep what the sync saw; a new row only when the set changed (returns it), else None.

    ``known`` is the (id, digest) of the account's newest snapshot when the caller read it already."""
    rows = sorted((m.as_dict() for m in members), key=lambda m: m["id"])
    digest = digest_of(rows)
    if known is not None and known[1] == digest:
        session.execute(update(MemberSnapshot).where(MemberSnapshot.id == known[0]).values(last_seen_at=now))
        return None
    previous = latest_snapshot(session, account.id)
    if previous is not None and previous.digest == digest:
        previous.last_seen_at = now
        return None
    snapshot = MemberSnapshot(account_id=account.id, taken_at=now, last_seen_at=now, digest=digest,
                              members_json=json.dumps(rows, separators=(",", ":")))
    session.add(snapshot)
    session.flush()
    before = {m["id"] for m in previous.members} if previous is not None else set()
    after = {m["id"] for m in rows}
    audit.record(session, "connectors.members_changed", target_type="account", target_id=account.id,
                 details={"snapshot_id": snapshot.id, "members": len(rows), "added": len(after - before),
                          "removed": len(before - after)})
    new_ids = after - before
    alarming = [item for item in drift_of(session, [Observed(account, platform, rows, now, "sync")])
                if item.kind == "unmanaged" and item.severity == "critical" and item.member_id in new_ids]
    if alarming:
        alert_drift(session, account, alarming)
    return snapshot


def alert_drift(session: Session, account: Account, items: list[DriftItem]) -> None:
    """Tell IT and the account's owner at once; the audit event feeds the webhook event drift.found."""
    users: list[Any] = list(active_users_with_roles(session, ["it"]))
    if account.business_owner_id is not None:
        owner = session.scalar(select(User).where(User.person_id == account.business_owner_id))
        if owner is not None and owner.id not in {u.id for u in users}:
            users.append(owner)
    names = ", ".join(i.person_name for i in items)
    notifications.notify(session, kind="connectors.drift", users=users, link=f"/connectors/accounts/{account.id}",
                         title=f"Unmanaged access on {account.display_name}: {names}",
                         body="\n".join(i.sentence for i in items))
    audit.record(session, "connectors.drift_found", target_type="account", target_id=account.id,
                 details={"count": len(items), "kinds": sorted({i.kind for i in items}),
                          "person_ids": [i.person_id for i in items if i.person_id is not None]})


def _never() -> bool:
    return False


class SyncBusy(Exception):
    """Another process is carrying the run on right now (its lease has not run out)."""


def _resumable(session: Session) -> SyncRun | None:
    # FOR UPDATE: two processes resuming at once read the lease one after the other (SQLite's writers are
    # serialised by BEGIN IMMEDIATE already). The audit head first, as every audited writer takes it: one lock
    # order, so a claim cannot deadlock with a request that audits and then reads the run.
    audit.lock_chain_head(session)
    return session.scalar(select(SyncRun).where(SyncRun.status == "running").order_by(SyncRun.id.desc()).limit(1)
                          .with_for_update())


def _lease(progress: dict[str, Any], holder: str) -> None:
    progress["lease"] = {"holder": holder, "until": (utcnow() + timedelta(seconds=LEASE_SECONDS)).isoformat()}


def _leased_by_another(progress: dict[str, Any], holder: str) -> bool:
    lease = progress.get("lease") or {}
    if not lease or lease.get("holder") == holder:
        return False
    return datetime.fromisoformat(str(lease["until"])) > utcnow()


def run_sync(session: Session, *, actor: Actor | None, settings: Settings, trigger: str, account_id: int | None = None,
             checkpoint: Callable[[], None] = _noop, now: datetime | None = None,
             should_stop: Callable[[], bool] = _never) -> SyncRun:
    """Sync every connected account (or one); continue a run that died. ``checkpoint`` (the caller's commit)
    runs after every few accounts, so the progress survives a crash. When ``should_stop()`` turns true the run
    stops at the next account, keeps its progress and stays "running": the next run carries it on.

    A run being carried on holds a lease (renewed at each checkpoint); another process that finds it held
    gets SyncBusy instead of reading the same accounts a second time. A lease left by a process that died
    runs out after LEASE_SECONDS."""
    holder = secrets.token_hex(8)
    run = _resumable(session) if account_id is None else None
    if run is not None and _leased_by_another(run.progress, holder):
        session.rollback()
        raise SyncBusy(f"Sync run #{run.id} is being carried on by another process; try again in a few minutes.")
    if run is None:
        ids = [c.account_id for c in connected_accounts(session, account_id)]
        run = SyncRun(trigger=trigger, started_by_id=getattr(actor, "id", None), started_at=now or utcnow(),
                      progress_json=json.dumps({"accounts": ids, "done": {}, "failed": {}}))
        session.add(run)
    progress = run.progress
    _lease(progress, holder)
    run.progress_json = json.dumps(progress)
    session.flush()
    checkpoint()
    finished = set(progress["done"]) | set(progress["failed"])
    todo = [i for i in progress["accounts"] if str(i) not in finished]
    covered = {c.account_id: c for c in connected_accounts(session)} if todo else {}
    by_connection: dict[int, list[ConnectedAccount]] = {}
    for aid in todo:
        if aid in covered:
            by_connection.setdefault(covered[aid].connection_id, []).append(covered[aid])
        else:
            progress["failed"][str(aid)] = "The account is no longer connected."
    stopped = False
    for rows in by_connection.values():
        connection = rows[0].connection
        try:
            client = client_for(session, settings, connection, actor)
        except ConnectorError as exc:
            for row in rows:
                progress["failed"][str(row.account_id)] = exc.message
            continue
        cache: dict[str, Any] = {}
        given_up: str | None = None
        known = latest_digests(session, [row.account_id for row in rows])
        with client:
            for number, row in enumerate(rows, start=1):
                if should_stop():
                    stopped = True
                    break
                if given_up is not None:  # the platform is down, throttling us or refusing the token: ask no more
                    progress["failed"][str(row.account_id)] = given_up
                    continue
                failpoints.hit("connectors.sync_account", account_id=row.account_id)
                sent = client.requests
                try:
                    members = fetch_members(client, connection, row, cache)
                    store_snapshot(session, account=row.account, platform=connection.platform, members=members,
                                   now=now or utcnow(), known=known.get(row.account_id))
                    progress["done"][str(row.account_id)] = len(members)
                except ConnectorError as exc:
                    progress["failed"][str(row.account_id)] = exc.message
                    if exc.rate_limited or exc.expired_token:
                        given_up = exc.message
                run.requests += client.requests - sent
                if number % CHECKPOINT_EVERY == 0:
                    _lease(progress, holder)
                    run.progress_json = json.dumps(progress)
                    session.flush()
                    checkpoint()
        if stopped:
            break
        connection.last_synced_at = now or utcnow()  # every account of it read
        _lease(progress, holder)
        run.progress_json = json.dumps(progress)
        session.flush()
        checkpoint()
    if stopped:
        progress.pop("lease", None)  # the next run may carry it on at once
        run.progress_json = json.dumps(progress)
        session.flush()
        checkpoint()
        return run
    progress.pop("lease", None)
    items = company_drift(session)
    # The home page reads this count from the run instead of computing the whole drift on each view.
    critical = [i for i in items if i.severity == "critical"]
    progress["drift"] = {"total": len(items), "critical": len(critical),
                         "critical_items": [{"account_id": i.account_id, "account_name": i.account_name,
                                             "sentence": i.sentence} for i in critical[:CRITICAL_KEPT]]}
    run.progress_json = json.dumps(progress)
    run.status = "done" if not progress["failed"] else ("partial" if progress["done"] else "failed")
    run.finished_at = utcnow()
    session.flush()
    checkpoint()
    return run


def sync_one(session: Session, *, settings: Settings, covered: ConnectedAccount, actor: Actor | None = None,
             now: datetime | None = None) -> list[Member]:
    """Read one account now and keep what was seen (the confirmation after a removal); no run row."""
    with client_for(session, settings, covered.connection, actor) as client:
        members = fetch_members(client, covered.connection, covered, {})
    store_snapshot(session, account=covered.account, platform=covered.connection.platform, members=members,
                   now=now or utcnow())
    return members


def drift_summary(session: Session) -> dict[str, Any]:
    """The drift the last finished sync run left ({"total", "critical", "critical_items"}); empty before any."""
    run = session.scalar(select(SyncRun).where(SyncRun.status != "running").order_by(SyncRun.id.desc()).limit(1))
    summary: dict[str, Any] = run.progress.get("drift", {}) if run is not None else {}
    return summary


@dataclass(frozen=True)
class DriftPoint:
    """The drift the last finished sync of one day left."""

    day: date
    total: int
    critical: int


def drift_history(session: Session, *, days: int = 14, now: datetime | None = None) -> list[DriftPoint]:
    """The drift count of the last finished sync of each of the last ``days`` days that had one, oldest first.

    The runs' times are read first (no progress JSON), then the progress of at most ``days`` runs."""
    since = (now or utcnow()) - timedelta(days=days)
    last_of_day: dict[date, int] = {}
    for run_id, started in session.execute(select(SyncRun.id, SyncRun.started_at).where(
            SyncRun.status != "running", SyncRun.started_at >= since).order_by(SyncRun.id)):
        last_of_day[started.date()] = run_id
    if not last_of_day:
        return []
    progress: dict[int, str] = {run_id: text for run_id, text in session.execute(
        select(SyncRun.id, SyncRun.progress_json).where(SyncRun.id.in_(last_of_day.values())))}
    points = []
    for day, run_id in sorted(last_of_day.items()):
        counted = json.loads(progress.get(run_id) or "{}").get("drift") or {}
        points.append(DriftPoint(day, int(counted.get("total") or 0), int(counted.get("critical") or 0)))
    return points


def latest_runs(session: Session, limit: int = 10) -> list[SyncRun]:
    """The newest sync runs."""
    return list(session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)))
