"""Removal: govern removes a leaver (or a revoked grant's holder) on the platform itself.

The call, the platform's answer and a sync that confirms the person is gone are the evidence; the
platform removal is then confirmed and an offboarding item tracking it is completed through the
checklist's services. A failure leaves everything open, with the platform's error in plain words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.models import User
from govern.connectors.clients.base import ConnectorError, Member
from govern.connectors.clients.linkedin import LinkedInClient
from govern.connectors.clients.meta import MetaClient
from govern.connectors.clients.tiktok import TikTokClient
from govern.connectors.connections import Settings, client_for, may_manage
from govern.connectors.matching import match_members
from govern.connectors.models import ConnectedAccount
from govern.connectors.sync import fetch_members, latest_snapshot, store_snapshot
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError
from govern.grants import services as grants
from govern.grants.models import Grant, PlatformRemoval
from govern.offboarding import checklist
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.permissions import may_work_item


@dataclass
class Outcome:
    """What happened: done (with the evidence) or not (with the platform's error in plain words)."""

    ok: bool
    message: str
    evidence: str = ""


def covered_account(session: Session, account_id: int) -> ConnectedAccount | None:
    """The connection row of an account, if a connection covers it."""
    return session.scalar(select(ConnectedAccount).where(ConnectedAccount.account_id == account_id))


def _members_of(session: Session, covered: ConnectedAccount, person_id: int) -> list[Member]:
    snapshot = latest_snapshot(session, covered.account_id)
    rows = snapshot.members if snapshot is not None else []
    matched = match_members(session, covered.connection.platform, rows)
    return [Member(id=str(m["id"]), name=str(m.get("name") or m["id"]), roles=tuple(m.get("roles") or ()),
                   email=m.get("email")) for m in rows if (p := matched.get(str(m["id"]))) is not None and p.id == person_id]


def _call(client: Any, covered: ConnectedAccount, member: Member) -> tuple[str, Any]:
    connection = covered.connection
    if isinstance(client, MetaClient):
        answer = client.remove_member(covered.platform_id, connection.external_id, member)
        return f"DELETE /{covered.platform_id}/assigned_users user={member.id}", answer.body
    if isinstance(client, LinkedInClient):
        answer = client.remove_member(covered.platform_id, member)
        return f"DELETE organizationAcls of {member.id} ({', '.join(member.roles)})", answer.body or {"status": answer.status}
    assert isinstance(client, TikTokClient)
    answer = client.remove_member(covered.platform_id, member)
    return f"POST /bc/member/delete/ user {member.id}", answer.body


def remove_on_platform(session: Session, *, actor: User | None, settings: Settings,
                       removal: PlatformRemoval) -> Outcome:
    """Remove the removal's person from its account on the platform, confirm by a sync, close what tracks it.

    ``actor`` None: automatic removal, allowed only on a connection where an admin turned it on.
    """
    if removal.confirmed_at is not None:
        raise ConflictError("This removal was confirmed already.")
    covered = covered_account(session, removal.account_id)
    if covered is None:
        raise ConflictError("No connection covers this account: remove the person by hand.")
    connection = covered.connection
    if actor is None and not connection.auto_remove:
        raise ForbiddenError("Automatic removal is not allowed on this connection.")
    if actor is not None and not (may_manage(actor) or covered.account.business_owner_id == actor.person_id):
        raise ForbiddenError("Only IT, an admin or the account's owner can remove someone on the platform.")
    person_name = removal.grant.person.full_name
    calls: list[str] = []
    try:
        with client_for(session, settings, connection, actor) as client:
            _read(session, client, covered)  # what the platform says now, not what the last sync saw
            for member in _members_of(session, covered, removal.person_id):
                call, answer = _call(client, covered, member)
                calls.append(f"{call} -> {json.dumps(answer, separators=(',', ':'))[:300]}")
            _read(session, client, covered)  # the confirming sync
        if _members_of(session, covered, removal.person_id):
            raise ConnectorError(f"{connection.label} answered, but {person_name} is still listed on the platform.")
    except ConnectorError as exc:
        audit.record(session, "connectors.removal_failed", actor=actor, target_type="account",
                     target_id=removal.account_id, outcome="failure",
                     details={"person_id": removal.person_id, "platform_removal_id": removal.id,
                              "error": exc.message, "error_code": exc.code})
        session.flush()
        return Outcome(False, f"{connection.label} did not remove {person_name}: {exc.message}")
    who = actor.email if actor is not None else "govern (automatic removal)"
    evidence = (f"Removed on {connection.label} by {who}: " + ("; ".join(calls) if calls else
                f"{person_name} was not listed") + f". A sync at {utcnow().isoformat(timespec='seconds')} "
                f"confirms {person_name} is no longer listed on {covered.account.display_name}.")
    audit.record(session, "connectors.removed", actor=actor, target_type="account", target_id=removal.account_id,
                 details={"person_id": removal.person_id, "platform_removal_id": removal.id, "calls": len(calls)})
    _close(session, actor, removal, evidence)
    return Outcome(True, f"{person_name} was removed on {connection.label}; a sync confirmed it.", evidence)


def remove_unmanaged(session: Session, *, actor: User, settings: Settings, account_id: int,
                     member_id: str) -> Outcome:
    """Remove on the platform a member govern gives no access to (unmanaged access: someone a colleague added
    on the platform, a departed person's leftover role, someone govern does not know), then confirm by a sync.

    Refused for a member who holds an active grant: that is managed access, which ends by revoking the grant
    (whose platform removal follows)."""
    if not may_manage(actor):
        raise ForbiddenError("Only IT or an admin can remove unmanaged access on the platform.")
    covered = covered_account(session, account_id)
    if covered is None:
        raise ConflictError("No connection covers this account.")
    connection = covered.connection
    name = member_id
    calls: list[str] = []
    person_id: int | None = None
    try:
        with client_for(session, settings, connection, actor) as client:
            _read(session, client, covered)  # what the platform says now
            snapshot = latest_snapshot(session, covered.account_id)
            row = next((m for m in (snapshot.members if snapshot else []) if str(m["id"]) == member_id), None)
            if row is None:
                return Outcome(True, f"{member_id} is no longer listed on {connection.label}: nothing to remove.")
            person = match_members(session, connection.platform, [row]).get(member_id)
            name = person.full_name if person is not None else str(row.get("name") or member_id)
            person_id = person.id if person is not None else None
            if person is not None and session.scalar(select(Grant.id).where(
                    Grant.account_id == covered.account_id, Grant.person_id == person.id, Grant.status == "active")):
                raise ConflictError(f"{name} holds a grant on this account: revoke the grant, and remove them "
                                    "through its platform removal.")
            member = Member(id=member_id, name=name, roles=tuple(row.get("roles") or ()), email=row.get("email"))
            call, answer = _call(client, covered, member)
            calls.append(f"{call} -> {json.dumps(answer, separators=(',', ':'))[:300]}")
            _read(session, client, covered)  # the confirming sync
        snapshot = latest_snapshot(session, covered.account_id)
        if any(str(m["id"]) == member_id for m in (snapshot.members if snapshot else [])):
            raise ConnectorError(f"{connection.label} answered, but {name} is still listed on the platform.")
    except ConnectorError as exc:
        audit.record(session, "connectors.removal_failed", actor=actor, target_type="account", target_id=account_id,
                     outcome="failure", details={"member_id": member_id, "person_id": person_id,
                                                 "error": exc.message, "error_code": exc.code})
        session.flush()
        return Outcome(False, f"{connection.label} did not remove {name}: {exc.message}")
    evidence = (f"Removed on {connection.label} by {actor.email}: " + "; ".join(calls) +
                f". A sync at {utcnow().isoformat(timespec='seconds')} confirms {name} is no longer listed on "
                f"{covered.account.display_name}.")
    audit.record(session, "connectors.unmanaged_removed", actor=actor, target_type="account", target_id=account_id,
                 details={"member_id": member_id, "member_name": name, "person_id": person_id, "evidence": evidence})
    return Outcome(True, f"{name} was removed on {connection.label}; a sync confirmed it.", evidence)


def _read(session: Session, client: Any, covered: ConnectedAccount) -> None:
    members = fetch_members(client, covered.connection, covered, {})
    store_snapshot(session, account=covered.account, platform=covered.connection.platform, members=members,
                   now=utcnow())


def _close(session: Session, actor: User | None, removal: PlatformRemoval, evidence: str) -> None:
    item = session.scalar(select(OffboardingItem).join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
                          .where(OffboardingItem.platform_removal_id == removal.id, OffboardingItem.status == "open",
                                 Offboarding.status == "in_progress"))
    if item is not None and actor is not None and may_work_item(actor, item):
        checklist.complete_item(session, actor=actor, item=item, note=evidence)
        return
    if actor is not None:
        grants.confirm_removal(session, actor=actor, removal=removal, note=evidence)
    else:
        grants.confirm_removal_by_connector(session, removal=removal, note=evidence)
    if item is not None:
        offboarding = session.get(Offboarding, item.offboarding_id)
        assert offboarding is not None
        checklist.sync_removals(session, offboarding)


def open_removals(session: Session, *, automatic_only: bool = False) -> list[PlatformRemoval]:
    """Unconfirmed platform removals on connected accounts (with automatic removal allowed, when asked)."""
    query = (select(PlatformRemoval).join(ConnectedAccount, ConnectedAccount.account_id == PlatformRemoval.account_id)
             .where(PlatformRemoval.confirmed_at.is_(None)).order_by(PlatformRemoval.id))
    rows = list(session.scalars(query).unique())
    if automatic_only:
        rows = [r for r in rows if (c := covered_account(session, r.account_id)) is not None and c.connection.auto_remove]
    return rows


def remove_automatically(session: Session, *, settings: Settings) -> dict[str, int]:
    """The jobs step's part: carry out open removals on connections where an admin allowed it."""
    counts = {"removed": 0, "failed": 0}
    for removal in open_removals(session, automatic_only=True):
        outcome = remove_on_platform(session, actor=None, settings=settings, removal=removal)
        counts["removed" if outcome.ok else "failed"] += 1
    return counts
