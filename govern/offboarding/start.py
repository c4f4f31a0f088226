"""The start on the effective time: access revoked, the checklist generated, the people to act told.

The start runs in the caller's transaction and every step of it is idempotent: it revokes only
grants that are still active, cancels only requests still pending, and inserts a checklist item
only when no item with the same key exists (a unique constraint backs that up). So a second run
changes nothing, and a run that crashed half-way (its transaction rolled back) is simply redone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, lazyload

from govern import audit, failpoints
from govern.accounts.models import Account
from govern.audit.services import Actor
from govern.auth import apitokens
from govern.auth.models import User
from govern.auth.sessions import end_user_sessions
from govern.auth.users import deactivate_user
from govern.config import base_url
from govern.db import bulk_insert, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError
from govern.grants import services as grants
from govern.grants.models import Grant, PlatformRemoval
from govern.notifications import services as notifications
from govern.offboarding.checklist import complete_if_done, sync_offboarding
from govern.offboarding.duties import (
    GENERIC_SUCCESSOR_STEP,
    SUCCESSOR_STEPS,
    accounts_with_duties,
    duties_of,
    manager_owner,
)
from govern.offboarding.models import (
    REMOVAL_ORDER,
    ROTATION_ORDER,
    ROTATION_REVEALED_ORDER,
    SUCCESSOR_ORDER,
    TOKEN_ORDER,
    Offboarding,
    OffboardingItem,
)
from govern.offboarding.permissions import check_not_last_admin, is_user, login_of
from govern.offboarding.settings import MAX_TITLE, REVOKE_REASON
from govern.reviews.models import ReviewCampaign, ReviewItem
from govern.rotation.exposure import ExposedSecret, exposed_secrets, exposure_mode
from govern.rotation.reminders import notify_it
from govern.rotation.tasks import TaskRequest, open_tasks
from govern.scim.models import ScimToken
from govern.vault.models import Secret


def grant_row(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.id, "account_id": grant.account_id, "account": grant.account.display_name,
            "platform": grant.account.platform, "handle": grant.account.handle, "role": grant.role_code,
            "status": grant.status, "starts_at": grant.starts_at.isoformat(),
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None}


def start_offboarding(session: Session, offboarding: Offboarding, *, actor: Actor | None = None,
                      now: datetime | None = None) -> bool:
    """Apply an offboarding on its effective time; True when this call started it.

    One transaction (the caller's), idempotent: see the module's docstring.
    """
    now = now or utcnow()
    if offboarding.status != "scheduled":
        return False
    person = offboarding.person
    check_not_last_admin(session, person)
    live = list(session.scalars(
        select(Grant).where(Grant.person_id == person.id, Grant.status.in_(("active", "requested"))).order_by(Grant.id)
    ).unique())
    if offboarding.grants_before_json is None:
        offboarding.grants_before_json = json.dumps([grant_row(g) for g in live])
    # 1. The person is leaving; the login is blocked and every session ends.
    if person.status == "active":
        person.status = "leaving"
        audit.record(session, "person.updated", actor=actor, target_type="person", target_id=person.id,
                     details={"fields": ["status"], "changes": {"status": {"old": "active", "new": "leaving"}},
                              "offboarding_id": offboarding.id})
    login = login_of(session, person.id)
    if login is not None:
        if login.is_active:
            deactivate_user(session, actor=actor if is_user(actor) else None, user=login)
        else:
            end_user_sessions(session, user=login, actor=actor if is_user(actor) else None,
                                            reason="offboarding")
    # The leaver's personal API tokens end with the login; service tokens they own stop working with it and
    # wait on the checklist for a new owner (see _token_items).
    apitokens.revoke_personal_tokens_of(session, actor=actor, person_id=person.id, reason="offboarding")
    # 2. Pending requests are cancelled; active grants revoked through the grants service, all at once
    # (a fixed number of statements however many grants; the rotation items below open the tasks).
    cancelled: list[audit.Entry] = []
    for grant in live:
        if grant.status == "requested":
            grant.status = "rejected"
            grant.decided_at = now
            grant.decision_note = "Cancelled: the person is being offboarded."
            cancelled.append(audit.Entry("grant.request_cancelled", actor=actor, target_type="grant", target_id=grant.id,
                                         details={"person_id": person.id, "account_id": grant.account_id,
                                                  "role": grant.role_code, "cause": "offboarding",
                                                  "offboarding_id": offboarding.id}))
    session.flush()
    audit.record_many(session, cancelled)
    grants.revoke_grants_of_leaver(session, actor=actor, grants=[g for g in live if g.status == "active"],
                                   reason=REVOKE_REASON, cause="offboarding",
                                   override_reason=f"offboarding #{offboarding.id}: the leaver's access ends")
    failpoints.hit("offboarding.after_revoke")
    # 3. Open review items the leaver was to decide go to their manager (or to the admins).
    _reassign_review_items(session, offboarding, actor)
    failpoints.hit("offboarding.before_items")
    # 4. The checklist.
    offboarding.started_at = offboarding.started_at or now
    offboarding.due_at = offboarding.due_at or offboarding.started_at + timedelta(hours=offboarding.deadline_hours)
    created = generate_items(session, offboarding, actor=actor)
    offboarding.status = "in_progress"
    session.flush()
    audit.record(session, "offboarding.started", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": person.id, "grants_revoked": sum(1 for g in live if g.status == "revoked"),
                          "requests_cancelled": sum(1 for g in live if g.status == "rejected"),
                          "items_created": created, "due_at": offboarding.due_at.isoformat()})
    complete_if_done(session, offboarding, actor)
    return True


def _reassign_review_items(session: Session, offboarding: Offboarding, actor: Actor | None) -> int:
    person = offboarding.person
    manager = session.get(Person, person.manager_id) if person.manager_id else None
    new_reviewer = manager.id if manager is not None and manager.status == "active" else None
    open_campaigns = select(ReviewCampaign.id).where(ReviewCampaign.closed_at.is_(None))
    items = list(session.scalars(select(ReviewItem.id).where(
        ReviewItem.reviewer_id == person.id, ReviewItem.decision.is_(None), ReviewItem.campaign_id.in_(open_campaigns))))
    if not items:
        return 0
    session.execute(update(ReviewItem).where(ReviewItem.id.in_(items)).values(reviewer_id=new_reviewer)
                    .execution_options(synchronize_session=False))
    audit.record(session, "review.items_reassigned", actor=actor, target_type="person", target_id=person.id,
                 details={"items": items, "from_person_id": person.id, "to_person_id": new_reviewer,
                          "cause": "offboarding", "offboarding_id": offboarding.id})
    return len(items)


def generate_items(session: Session, offboarding: Offboarding, *, actor: Actor | None = None) -> int:
    """Insert the checklist items that are missing (never a duplicate); returns how many were added."""
    person = offboarding.person
    existing = set(session.scalars(select(OffboardingItem.key).where(OffboardingItem.offboarding_id == offboarding.id)))
    owner, owner_person_id = manager_owner(session, person)
    duty_accounts = accounts_with_duties(session, person.id)
    successor_accounts = {a.id for a in duty_accounts}
    wanted: list[OffboardingItem] = []
    for account in duty_accounts:
        duties = ", ".join(duties_of(account, person.id))
        wanted.append(OffboardingItem(
            key=f"successor:{account.id}", kind="successor", owner=owner, owner_person_id=owner_person_id,
            title=f"Appoint a successor as {duties} of {account.display_name} ({account.platform_label} @{account.handle}) "
                  "and move the recovery contact",
            instructions=SUCCESSOR_STEPS.get(account.platform, GENERIC_SUCCESSOR_STEP),
            account_id=account.id, sort_order=SUCCESSOR_ORDER,
        ))
    before = [row["grant_id"] for row in json.loads(offboarding.grants_before_json or "[]")]
    removals = session.execute(
        select(PlatformRemoval, Account).join(Grant, Grant.id == PlatformRemoval.grant_id)
        .join(Account, Account.id == PlatformRemoval.account_id)
        .where(PlatformRemoval.grant_id.in_(before), Grant.revoke_reason == REVOKE_REASON)
        .order_by(Account.display_name, PlatformRemoval.id).options(lazyload(PlatformRemoval.grant))
    ).all() if before else []
    for removal, account in removals:
        order = ("Do this after the successor holds the role (see the successor item): the platform may refuse "
                 "to remove the last owner or admin. " if account.id in successor_accounts else "")
        wanted.append(OffboardingItem(
            key=f"removal:{removal.id}", kind="platform_removal", owner="it",
            title=f"Remove {person.full_name} as {removal.platform_role} from {account.display_name} (@{account.handle})",
            instructions=order + "Remove the person from the platform's own role list, then confirm here with a note "
                                 "of what you did.",
            account_id=account.id, platform_removal_id=removal.id, sort_order=REMOVAL_ORDER,
            status="done" if removal.confirmed_at else "open",
            done_at=removal.confirmed_at, done_by_id=removal.confirmed_by_id, evidence_note=removal.note,
        ))
    wanted += _rotation_items(session, offboarding, actor, existing)
    wanted += _token_items(session, offboarding)
    new = [item for item in wanted if item.key not in existing]
    for item in new:
        item.offboarding_id = offboarding.id
        item.due_at = offboarding.due_at
        item.created_by_id = actor.id if is_user(actor) else None
    session.flush()
    bulk_insert(session, new)
    # The ids of the rows just written, by their unique key, for the audit events.
    ids = dict(session.execute(select(OffboardingItem.key, OffboardingItem.id).where(
        OffboardingItem.offboarding_id == offboarding.id)).all()) if new else {}
    for item in new:
        item.id = ids[item.key]
    audit.record_many(session, [audit.Entry(
        "offboarding.item_created", actor=actor, target_type="offboarding_item", target_id=item.id,
        details={"offboarding_id": offboarding.id, "kind": item.kind, "owner": item.owner,
                 "account_id": item.account_id, "platform_removal_id": item.platform_removal_id,
                 "ref_type": item.ref_type, "ref_id": item.ref_id}) for item in new])
    _notify_manager_of_successors(session, offboarding, [i for i in new if i.kind == "successor" and i.owner == "manager"],
                                  {a.id: a.display_name for a in duty_accounts})
    return len(new)


def _notify_manager_of_successors(session: Session, offboarding: Offboarding, items: list[OffboardingItem],
                                  account_names: dict[int, str]) -> None:
    """The leaver's manager owns the successor picks: one in-app notice and one email for the lot."""
    if not items or items[0].owner_person_id is None:
        return
    manager = session.scalar(select(User).where(User.person_id == items[0].owner_person_id, User.is_active.is_(True)))
    if manager is None:
        return  # no login to tell: the items fall to HR's watch and escalate when overdue
    person = offboarding.person
    names = sorted(account_names[i.account_id] for i in items if i.account_id in account_names)
    named = ", ".join(names[:NOTICE_ACCOUNTS]) + (f" and {len(names) - NOTICE_ACCOUNTS} more"
                                                  if len(names) > NOTICE_ACCOUNTS else "")
    title = f"Pick successors: {person.full_name} is leaving ({len(items)} account(s))"
    link = f"/offboarding/{offboarding.id}#item-{items[0].id}"
    body = (f"{person.full_name} is being offboarded and holds duties (business owner, crisis contact, recovery "
            f"email or phone) on {len(items)} account(s): {named}. As their manager, choose a successor for each "
            f"on the offboarding's checklist before {offboarding.due_at:%Y-%m-%d %H:%M} UTC.")
    notifications.notify(session, user=manager, kind="offboarding.successor_needed", title=title, link=link, body=body)
    lines = [f"Hello {manager.person.full_name},", "", body, "", f"Open it in govern: {base_url()}{link}",
             "", "-- ", "govern: official social media accounts under control"]
    keys = ",".join(str(i.id) for i in sorted(items, key=lambda i: i.id))
    notifications.queue_email(session, to=manager.email, subject=f"[govern] {title}", body_text="\n".join(lines),
                              kind="offboarding.successor_needed",
                              dedupe_key=f"offboarding.successors:{offboarding.id}:{hashlib.sha256(keys.encode()).hexdigest()[:16]}")


def _rotation_title(secret: Secret) -> str:
    account = secret.account
    return f"Rotate {secret.label} ({secret.kind_label}) of {account.display_name} (@{account.handle})"[:MAX_TITLE]


def _rotation_items(session: Session, offboarding: Offboarding, actor: Actor | None, existing: set[str]) -> list[OffboardingItem]:
    """One item per secret the leaver saw or could have seen (rotation's rule and mode), tracking its task.

    Every such secret gets a task due now, reason offboarding (or joins its live task), all in one
    go, and IT gets one notice for the whole offboarding rather than one per account.
    """
    person = offboarding.person
    exposed = [e for e in exposed_secrets(session, person=person) if f"rotation:{e.secret.id}" not in existing]
    if not exposed:
        return []
    now = utcnow()
    opened = open_tasks(session, actor=actor if is_user(actor) else None, requests=[
        TaskRequest(secret=e.secret, reason="offboarding", due_at=now, urgent=True,
                             people=[{"person_id": person.id, "name": person.full_name, "why": "; ".join(e.whys)}],
                             note=f"{person.full_name} lost access to {e.secret.account.display_name} (offboarding).")
        for e in exposed])
    _notify_it_of_rotations(session, offboarding, exposed)
    items = []
    for e in exposed:
        task = opened[e.secret.id].task
        why = "; ".join(e.whys)
        items.append(OffboardingItem(
            key=f"rotation:{e.secret.id}", kind="rotation", owner="it", title=_rotation_title(e.secret),
            instructions=f"{person.full_name} {why}. Work rotation task #{task.id} (stage a new value, change it on "
                         "the platform, confirm); this item closes when the task is confirmed.",
            account_id=e.secret.account_id, ref_type="rotation_task", ref_id=task.id,
            sort_order=ROTATION_REVEALED_ORDER if e.revealed else ROTATION_ORDER,
        ))
    return items


#: The notice names at most this many accounts; the offboarding page lists them all.
NOTICE_ACCOUNTS = 10


def _notify_it_of_rotations(session: Session, offboarding: Offboarding, exposed: list[ExposedSecret]) -> None:
    """One in-app notice and one email per IT user for the whole offboarding (counts and account names, no values)."""
    person = offboarding.person
    accounts = sorted({e.secret.account_id: e.secret.account.display_name for e in exposed}.values())
    named = ", ".join(accounts[:NOTICE_ACCOUNTS]) + (f" and {len(accounts) - NOTICE_ACCOUNTS} more"
                                                     if len(accounts) > NOTICE_ACCOUNTS else "")
    revealed = sum(1 for e in exposed if e.revealed)
    notify_it(
        session, title=f"Rotate now: {len(exposed)} secret(s) on {len(accounts)} account(s), {person.full_name} is offboarded",
        body=f"{person.full_name} is being offboarded. {len(exposed)} credential(s) on {len(accounts)} account(s) must "
             f"change: they revealed {revealed} of them and could have seen the others "
             f"({exposure_mode().replace('_', ' ')} rule). Accounts: {named}. "
             "Each has an urgent rotation task and an item on the offboarding's checklist.",
        # Keyed by the secrets it names: a redone start sends nothing twice, and secrets added to a
        # running offboarding later get a notice of their own.
        link=f"/offboarding/{offboarding.id}", dedupe=f"rotation.offboarding:{offboarding.id}:{_digest(exposed)}")


def _digest(exposed: list[ExposedSecret]) -> str:
    return hashlib.sha256(",".join(str(i) for i in sorted(e.secret.id for e in exposed)).encode()).hexdigest()[:16]


def _token_items(session: Session, offboarding: Offboarding) -> list[OffboardingItem]:
    """One item per service token the leaver owns (a new owner) and per live SCIM token they created (revoke)."""
    login = login_of(session, offboarding.person_id)
    if login is None:
        return []
    tokens = session.scalars(select(ScimToken).where(ScimToken.created_by_id == login.id, ScimToken.revoked_at.is_(None))
                             .order_by(ScimToken.id))
    items = [OffboardingItem(
        key=f"token:api:{token.id}", kind="token_revoke", owner="it", ref_type="api_token", ref_id=token.id,
        title=f"Give the service token \"{token.name}\" ({token.prefix}…) a new owner, or revoke it"[:MAX_TITLE],
        instructions=f"{offboarding.person.full_name} answered for this integration's token, which acts as their "
                     "login and so stopped working with it. An admin chooses a new owner (or revokes it) under "
                     "Admin > API tokens; this item closes when they do.",
        sort_order=TOKEN_ORDER,
    ) for token in apitokens.service_tokens_owned_by(session, offboarding.person_id)]
    return items + [OffboardingItem(
        key=f"token:scim:{token.id}", kind="token_revoke", owner="it", ref_type="scim_token", ref_id=token.id,
        title=f"Revoke the SCIM token \"{token.name}\" ({token.prefix}…) {offboarding.person.full_name} created"[:MAX_TITLE],
        instructions="An admin revokes it under Admin > SCIM tokens (create a replacement first if the identity "
                     "provider still needs one); this item closes when the token is revoked.",
        sort_order=TOKEN_ORDER,
    ) for token in tokens]


def start_due_offboardings(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Start every scheduled offboarding whose time has come (the jobs runner calls this).

    Each start is its own savepoint: one that fails (e.g. govern's last admin) is reported and
    the others still start. The caller commits.
    """
    now = now or utcnow()
    result: dict[str, Any] = {"started": 0, "failed": [], "synced": 0}
    due = list(session.scalars(
        select(Offboarding).where(Offboarding.status == "scheduled", Offboarding.effective_at <= now)
        .order_by(Offboarding.effective_at, Offboarding.id).with_for_update(skip_locked=True, of=Offboarding)
    ).unique())
    for offboarding in due:
        try:
            with session.begin_nested():
                if start_offboarding(session, offboarding, now=now):
                    result["started"] += 1
        except ConflictError as exc:
            result["failed"].append((offboarding.id, exc.message))
            audit.record(session, "offboarding.start_failed", target_type="offboarding", target_id=offboarding.id,
                         outcome="failure", details={"reason": exc.message})
    for offboarding in session.scalars(select(Offboarding).where(Offboarding.status == "in_progress")).unique():
        result["synced"] += sync_offboarding(session, offboarding)
    session.flush()
    return result
