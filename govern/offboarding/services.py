"""Offboarding rules: scheduling, the start on the effective time, the checklist, completion, evidence.

The start runs in the caller's transaction and every step of it is idempotent: it revokes only
grants that are still active, cancels only requests still pending, and inserts a checklist item
only when no item with the same key exists (a unique constraint backs that up). So a second run
changes nothing, and a run that crashed half-way (its transaction rolled back) is simply redone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from govern import audit, failpoints
from govern.accounts.models import Account, Role
from govern.accounts.services import platform_role_label
from govern.audit.models import AuditEvent
from govern.auth import services as auth_services
from govern.auth.models import User
from govern.auth.users import active_users_with_roles, count_active_admins
from govern.config import base_url
from govern.db import bulk_insert, rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants import services as grants
from govern.grants.models import Grant, PlatformRemoval
from govern.notifications import services as notifications
from govern.offboarding.models import (
    ITEM_OWNERS,
    MANUAL_ORDER,
    REMOVAL_ORDER,
    ROTATION_ORDER,
    ROTATION_REVEALED_ORDER,
    SUCCESSOR_ORDER,
    TOKEN_ORDER,
    Offboarding,
    OffboardingItem,
    OffboardingSuccessor,
)
from govern.reviews.models import ReviewCampaign, ReviewItem
from govern.rotation.exposure import ExposedSecret, exposed_secrets, exposure_mode
from govern.rotation.models import RotationTask
from govern.rotation.reminders import notify_it
from govern.rotation.tasks import TaskRequest, open_tasks
from govern.scim.models import ScimToken
from govern.vault.models import Exposure, Secret, SecretVersion

MAX_NOTE = 2000
MAX_TITLE = 300
MAX_DEADLINE_HOURS = 24 * 30
#: The revoke reason every offboarding revocation carries.
REVOKE_REASON = "offboarding"
OWNER_LABELS = {"it": "IT", "manager": "the manager", "hr": "HR"}
#: The account fields a leaver can hold, and how the checklist names them.
DUTIES = (
    ("business_owner_id", "business owner"),
    ("crisis_contact_id", "crisis contact"),
    ("recovery_email_person_id", "recovery email"),
    ("recovery_phone_person_id", "recovery phone"),
)
#: What each platform requires, in order, when ownership moves (shown on successor items).
SUCCESSOR_STEPS: dict[str, str] = {
    "linkedin": "LinkedIn refuses to remove a Page's last Super admin: give the successor the Super admin role "
                "on the Page first, then remove the leaver.",
    "youtube": "YouTube channels live in a Google Brand Account: make the successor an owner now and transfer "
               "primary ownership; Google makes a new primary owner wait 7 days before they can remove other "
               "owners, so start on day one.",
    "facebook": "In Meta Business Settings give the successor full control of the business portfolio first, then "
                "sweep the partners and system users the leaver set up, then remove the leaver.",
    "instagram": "In Meta Business Settings give the successor full control of the business portfolio first, then "
                 "sweep the partners and system users the leaver set up, then remove the leaver.",
    "threads": "In Meta Business Settings give the successor full control of the business portfolio first, then "
               "sweep the partners and system users the leaver set up, then remove the leaver.",
}
GENERIC_SUCCESSOR_STEP = "Give the successor the platform's owner or admin role first, then remove the leaver."

@dataclass(frozen=True)
class Settings:
    """Deadlines and the hour of the last day at which an end date takes effect (UTC)."""

    deadline_hours: int = 24
    immediate_deadline_hours: int = 1
    last_day_hour: int = 17
    #: An overdue item escalates again after this many hours.
    escalation_hours: int = 24


def settings_from(config: Any) -> Settings:
    """Settings from the app configuration."""
    return Settings(config["OFFBOARDING_DEADLINE_HOURS"], config["OFFBOARDING_IMMEDIATE_DEADLINE_HOURS"],
                    config["OFFBOARDING_LAST_DAY_HOUR"], int(config.get("OFFBOARDING_ESCALATION_HOURS") or 24))


def end_of_last_day(day: date, settings: Settings) -> datetime:
    """When an end date takes effect: the configured hour of that day, in UTC."""
    return datetime.combine(day, time(hour=settings.last_day_hour), tzinfo=UTC)


# --- who may do what ---------------------------------------------------------------------------------


def _roles(user: Any) -> frozenset[str]:
    return frozenset(getattr(user, "roles", ()) or ())


def _is_user(actor: Any) -> bool:
    """A person signed in to govern (the import, SCIM and the jobs runner are trusted callers)."""
    return isinstance(actor, User)


def may_manage(user: Any) -> bool:
    """HR and admins start, edit and cancel offboardings and add items."""
    return bool({"admin", "hr"} & _roles(user))


def sees_all(user: Any) -> bool:
    """Roles that see every offboarding (auditors read-only, IT works the removal items)."""
    return bool({"admin", "hr", "auditor", "it"} & _roles(user))


def may_view(session: Session, user: Any, offboarding: Offboarding) -> bool:
    """Everyone who sees all, the leaver's manager, and whoever owns one of its items."""
    if sees_all(user):
        return True
    person_id = getattr(user, "person_id", None)
    if person_id is None:
        return False
    if offboarding.person.manager_id == person_id:
        return True
    return session.scalar(select(OffboardingItem.id).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.owner_person_id == person_id).limit(1)) is not None


def may_choose_successor(user: Any, offboarding: Offboarding) -> bool:
    """HR, admins and the leaver's manager pick successors."""
    return may_manage(user) or (offboarding.person.manager_id is not None
                                and offboarding.person.manager_id == getattr(user, "person_id", None))


def may_work_item(user: Any, item: OffboardingItem) -> bool:
    """Admins any item; IT the IT items; HR the HR items; the named manager their items."""
    roles = _roles(user)
    if "admin" in roles:
        return True
    if item.owner == "it":
        return "it" in roles
    if item.owner == "hr":
        return "hr" in roles
    return item.owner_person_id is not None and item.owner_person_id == getattr(user, "person_id", None)


# --- scheduling ---------------------------------------------------------------------------------------


def _note(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_NOTE:
        raise InvalidError(f"Keep the note under {MAX_NOTE} characters.", {"note": "Too long."})
    return text or None


def _deadline(hours: int | None, default: int) -> int:
    if hours is None:
        return default
    if not 1 <= hours <= MAX_DEADLINE_HOURS:
        raise InvalidError(f"The deadline is between 1 and {MAX_DEADLINE_HOURS} hours.",
                           {"deadline_hours": f"Between 1 and {MAX_DEADLINE_HOURS} hours."})
    return hours


def open_offboarding_of(session: Session, person_id: int) -> Offboarding | None:
    """The person's scheduled or in-progress offboarding, if any."""
    return session.scalar(select(Offboarding).where(
        Offboarding.person_id == person_id, Offboarding.status.in_(("scheduled", "in_progress"))))


def _login_of(session: Session, person_id: int) -> User | None:
    return session.scalar(select(User).where(User.person_id == person_id))


def _check_not_last_admin(session: Session, person: Person) -> None:
    login = _login_of(session, person.id)
    if login is None or not login.is_active or "admin" not in login.roles:
        return
    if count_active_admins(session, excluding=login) == 0:
        raise ConflictError(f"{person.full_name} is govern's last active admin; make someone else an admin first.")


def schedule_offboarding(
    session: Session, *, actor: Any, person: Person, effective_at: datetime | None, settings: Settings,
    deadline_hours: int | None = None, note: str | None = None, origin: str = "manual", now: datetime | None = None,
) -> Offboarding:
    """Start offboarding ``person``: now (``effective_at`` None: immediate) or at ``effective_at``.

    An immediate offboarding starts in the same transaction.
    """
    now = now or utcnow()
    if _is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can start an offboarding.")
    if person.status == "departed":
        raise ConflictError(f"{person.full_name} has departed already.")
    if actor is not None and getattr(actor, "person_id", None) == person.id:
        raise ConflictError("You cannot offboard yourself; ask a colleague in HR.")
    if open_offboarding_of(session, person.id) is not None:
        raise ConflictError(f"{person.full_name} already has an open offboarding.")
    immediate = effective_at is None
    if not immediate and origin == "manual" and effective_at is not None and effective_at <= now:
        raise InvalidError("Choose a time in the future, or offboard immediately.", {"effective_at": "Choose a time in the future."})
    hours = _deadline(deadline_hours, settings.immediate_deadline_hours if immediate else settings.deadline_hours)
    _check_not_last_admin(session, person)
    offboarding = Offboarding(
        person_id=person.id, kind="immediate" if immediate else "scheduled", status="scheduled", origin=origin,
        effective_at=now if immediate else effective_at, deadline_hours=hours, note=_note(note),
        created_by_id=getattr(actor, "id", None),
    )
    session.add(offboarding)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError(f"{person.full_name} already has an open offboarding.") from None
    audit.record(session, "offboarding.scheduled", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": person.id, "kind": offboarding.kind, "origin": origin,
                          "effective_at": offboarding.effective_at.isoformat(), "deadline_hours": hours})
    if immediate:
        start_offboarding(session, offboarding, actor=actor, now=now)
    return offboarding


def _pending(offboarding: Offboarding) -> None:
    if offboarding.status != "scheduled":
        raise ConflictError(f"This offboarding is {offboarding.status.replace('_', ' ')}; it can no longer be changed.")


def update_offboarding(session: Session, *, actor: Any, offboarding: Offboarding, effective_at: datetime | None,
                       deadline_hours: int | None, note: str | None, now: datetime | None = None) -> dict[str, Any]:
    """Move a scheduled offboarding, change its deadline or note (until it starts). Returns the changes."""
    if not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can change an offboarding.")
    _pending(offboarding)
    now = now or utcnow()
    if effective_at is None:
        raise InvalidError("Choose when the offboarding takes effect.", {"effective_at": "Choose a date and time."})
    if effective_at <= now:
        raise InvalidError("Choose a time in the future, or offboard immediately.", {"effective_at": "Choose a time in the future."})
    values = {"effective_at": effective_at, "deadline_hours": _deadline(deadline_hours, offboarding.deadline_hours),
              "note": _note(note)}
    changes: dict[str, Any] = {}
    for name, new in values.items():
        old = getattr(offboarding, name)
        if old != new:
            changes[name] = {"old": old.isoformat() if isinstance(old, datetime) else old,
                             "new": new.isoformat() if isinstance(new, datetime) else new}
            setattr(offboarding, name, new)
    if changes:
        session.flush()
        audit.record(session, "offboarding.updated", actor=actor, target_type="offboarding", target_id=offboarding.id,
                     details={"changes": changes})
    return changes


def cancel_offboarding(session: Session, *, actor: Any, offboarding: Offboarding, reason: str) -> None:
    """Call off a scheduled offboarding (it has not started), with a reason."""
    if _is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can cancel an offboarding.")
    _pending(offboarding)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidError("Say why the offboarding is cancelled.", {"reason": "Say why."})
    if len(reason) > MAX_NOTE:
        raise InvalidError(f"Keep the reason under {MAX_NOTE} characters.", {"reason": "Too long."})
    offboarding.status = "cancelled"
    offboarding.cancelled_at = utcnow()
    offboarding.cancelled_by_id = getattr(actor, "id", None)
    offboarding.cancel_reason = reason
    session.flush()
    audit.record(session, "offboarding.cancelled", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": offboarding.person_id, "reason": reason})


# --- the start ------------------------------------------------------------------------------------------


def _grant_row(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.id, "account_id": grant.account_id, "account": grant.account.display_name,
            "platform": grant.account.platform, "handle": grant.account.handle, "role": grant.role_code,
            "status": grant.status, "starts_at": grant.starts_at.isoformat(),
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None}


def start_offboarding(session: Session, offboarding: Offboarding, *, actor: Any = None,
                      now: datetime | None = None) -> bool:
    """Apply an offboarding on its effective time; True when this call started it.

    One transaction (the caller's), idempotent: see the module's docstring.
    """
    now = now or utcnow()
    if offboarding.status != "scheduled":
        return False
    person = offboarding.person
    _check_not_last_admin(session, person)
    live = list(session.scalars(
        select(Grant).where(Grant.person_id == person.id, Grant.status.in_(("active", "requested"))).order_by(Grant.id)
    ).unique())
    if offboarding.grants_before_json is None:
        offboarding.grants_before_json = json.dumps([_grant_row(g) for g in live])
    # 1. The person is leaving; the login is blocked and every session ends.
    if person.status == "active":
        person.status = "leaving"
        audit.record(session, "person.updated", actor=actor, target_type="person", target_id=person.id,
                     details={"fields": ["status"], "changes": {"status": {"old": "active", "new": "leaving"}},
                              "offboarding_id": offboarding.id})
    login = _login_of(session, person.id)
    if login is not None:
        if login.is_active:
            auth_services.deactivate_user(session, actor=actor if _is_user(actor) else None, user=login)
        else:
            auth_services.end_user_sessions(session, user=login, actor=actor if _is_user(actor) else None,
                                            reason="offboarding")
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
    _maybe_complete(session, offboarding, actor)
    return True


def _reassign_review_items(session: Session, offboarding: Offboarding, actor: Any) -> int:
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


def _duties_of(account: Account, person_id: int) -> list[str]:
    return [label for column, label in DUTIES if getattr(account, column) == person_id]


def accounts_with_duties(session: Session, person_id: int) -> list[Account]:
    """Accounts the person owns, is crisis contact of, or holds the recovery email or phone of."""
    return list(session.scalars(select(Account).where(or_(
        Account.business_owner_id == person_id, Account.crisis_contact_id == person_id,
        Account.recovery_email_person_id == person_id, Account.recovery_phone_person_id == person_id,
    )).order_by(Account.display_name, Account.id)))


def _manager_owner(session: Session, person: Person) -> tuple[str, int | None]:
    manager = session.get(Person, person.manager_id) if person.manager_id else None
    if manager is not None and manager.status == "active":
        return "manager", manager.id
    return "hr", None


def generate_items(session: Session, offboarding: Offboarding, *, actor: Any = None) -> int:
    """Insert the checklist items that are missing (never a duplicate); returns how many were added."""
    person = offboarding.person
    existing = set(session.scalars(select(OffboardingItem.key).where(OffboardingItem.offboarding_id == offboarding.id)))
    owner, owner_person_id = _manager_owner(session, person)
    duty_accounts = accounts_with_duties(session, person.id)
    successor_accounts = {a.id for a in duty_accounts}
    wanted: list[OffboardingItem] = []
    for account in duty_accounts:
        duties = ", ".join(_duties_of(account, person.id))
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
        item.created_by_id = actor.id if _is_user(actor) else None
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


def _rotation_items(session: Session, offboarding: Offboarding, actor: Any, existing: set[str]) -> list[OffboardingItem]:
    """One item per secret the leaver saw or could have seen (rotation's rule and mode), tracking its task.

    Every such secret gets a task due now, reason offboarding (or joins its live task), all in one
    go, and IT gets one notice for the whole offboarding rather than one per account.
    """
    person = offboarding.person
    exposed = [e for e in exposed_secrets(session, person=person) if f"rotation:{e.secret.id}" not in existing]
    if not exposed:
        return []
    now = utcnow()
    opened = open_tasks(session, actor=actor if _is_user(actor) else None, requests=[
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
    """One "revoke" item per live SCIM token the leaver created (the only kind of API token govern has)."""
    login = _login_of(session, offboarding.person_id)
    if login is None:
        return []
    tokens = session.scalars(select(ScimToken).where(ScimToken.created_by_id == login.id, ScimToken.revoked_at.is_(None))
                             .order_by(ScimToken.id))
    return [OffboardingItem(
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


# --- escalation -------------------------------------------------------------------------------------------


def escalate_overdue(session: Session, *, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Items past due escalate to their owner(s) and HR: an email through the outbox and an in-app
    notification, once per item per escalation period (the outbox's dedupe keys make re-runs no-ops).
    """
    now = now or utcnow()
    period = timedelta(hours=settings.escalation_hours)
    rows = session.execute(
        select(OffboardingItem, Offboarding).join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
        .where(Offboarding.status == "in_progress", OffboardingItem.status == "open",
               OffboardingItem.due_at.is_not(None), OffboardingItem.due_at < now)
        .order_by(OffboardingItem.offboarding_id, OffboardingItem.sort_order, OffboardingItem.id)
    ).unique().all()
    counts = {"overdue_items": len(rows), "emails": 0, "notifications": 0}
    if not rows:
        return counts
    by_role = {role: active_users_with_roles(session, [role]) for role in ("it", "hr", "admin")}
    manager_ids = {item.owner_person_id for item, _ in rows if item.owner == "manager" and item.owner_person_id}
    managers: dict[int, User] = {u.person_id: u for u in session.scalars(
        select(User).where(User.person_id.in_(manager_ids), User.is_active.is_(True)))} if manager_ids else {}
    escalated: dict[int, list[int]] = {}
    for item, offboarding in rows:
        assert item.due_at is not None
        step = int((now - item.due_at) / period)
        if item.owner == "manager":
            owners = [managers[item.owner_person_id]] if item.owner_person_id in managers else []
        elif item.kind == "token_revoke":
            owners = by_role["admin"]  # only admins revoke SCIM tokens
        else:
            owners = by_role[item.owner]
        recipients = {u.id: u for u in [*owners, *by_role["hr"]]}
        if not recipients:
            recipients = {u.id: u for u in by_role["admin"]}
        late = now - item.due_at
        hours = int(late.total_seconds() // 3600)
        title = f"Overdue offboarding item: {offboarding.person.full_name}"
        link = f"/offboarding/{offboarding.id}#item-{item.id}"
        body = (f"{item.title}\n\nOwner: {OWNER_LABELS[item.owner]}. Due {item.due_at:%Y-%m-%d %H:%M} UTC, "
                f"{hours} hour(s) ago. Offboarding #{offboarding.id} of {offboarding.person.full_name} cannot complete "
                "until it is done.")
        for user in recipients.values():
            lines = [f"Hello {user.person.full_name},", "", body, "", f"Open it in govern: {base_url()}{link}",
                     "", "-- ", "govern: official social media accounts under control"]
            queued = notifications.queue_email(
                session, to=user.email, subject=f"[govern] {title}", body_text="\n".join(lines),
                kind="offboarding.escalation", dedupe_key=f"offboarding.escalate:{item.id}:{step}:{user.id}")
            if queued is None:
                continue  # this period's escalation went out already
            counts["emails"] += 1
            escalated.setdefault(offboarding.id, [])
            if item.id not in escalated[offboarding.id]:
                escalated[offboarding.id].append(item.id)
            notifications.notify(session, user=user, kind="offboarding.escalation", title=title, link=link, body=item.title)
            counts["notifications"] += 1
    for offboarding_id, item_ids in escalated.items():
        audit.record(session, "offboarding.escalated", target_type="offboarding", target_id=offboarding_id,
                     details={"items": item_ids, "period_hours": settings.escalation_hours})
    session.flush()
    return counts


# --- the checklist ----------------------------------------------------------------------------------------


def sync_removals(session: Session, offboarding: Offboarding) -> int:
    """Close removal items whose platform removal was confirmed elsewhere (e.g. on the grants page)."""
    rows = session.execute(
        select(OffboardingItem, PlatformRemoval).join(PlatformRemoval, PlatformRemoval.id == OffboardingItem.platform_removal_id)
        .where(OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.status == "open",
               PlatformRemoval.confirmed_at.is_not(None))
    ).unique().all()
    for item, removal in rows:
        item.status = "done"
        item.done_at = removal.confirmed_at
        item.done_by_id = removal.confirmed_by_id
        item.evidence_note = removal.note
        audit.record(session, "offboarding.item_done", target_type="offboarding_item", target_id=item.id,
                     details={"offboarding_id": offboarding.id, "via": "platform_removal_confirmed",
                              "platform_removal_id": removal.id})
    if rows:
        session.flush()
        _maybe_complete(session, offboarding, None)
    return len(rows)


def _version_numbers(session: Session, version_ids: Iterable[int | None]) -> dict[int, int]:
    ids = sorted({v for v in version_ids if v})
    return dict(session.execute(select(SecretVersion.id, SecretVersion.version).where(SecretVersion.id.in_(ids))).all()) \
        if ids else {}


def _close_linked(session: Session, offboarding: Offboarding, item: OffboardingItem, *, done_at: datetime | None,
                  done_by_id: int | None, note: str, actor: Any, details: dict[str, Any]) -> bool:
    claimed = rowcount(session.execute(
        update(OffboardingItem).where(OffboardingItem.id == item.id, OffboardingItem.status == "open")
        .values(status="done", done_at=done_at or utcnow(), done_by_id=done_by_id, evidence_note=note)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        return False
    session.refresh(item)
    audit.record(session, "offboarding.item_done", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": item.kind} | details)
    return True


def sync_linked_items(session: Session, offboarding: Offboarding, *, actor: Any = None) -> int:
    """Close rotation items whose task was confirmed and token items whose token was revoked.

    A rotation item whose task was cancelled follows the secret's new live task, if IT opened one.
    A fixed number of queries, whatever the number of items.
    """
    if offboarding.status != "in_progress":
        return 0
    items = list(session.scalars(select(OffboardingItem).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.status == "open",
        OffboardingItem.kind.in_(("rotation", "token_revoke")))))
    if not items:
        return 0
    task_ids = [i.ref_id for i in items if i.ref_type == "rotation_task" and i.ref_id]
    tasks = {t.id: t for t in session.scalars(select(RotationTask).where(RotationTask.id.in_(task_ids))).unique()} \
        if task_ids else {}
    token_ids = [i.ref_id for i in items if i.ref_type == "scim_token" and i.ref_id]
    tokens = {t.id: t for t in session.scalars(select(ScimToken).where(ScimToken.id.in_(token_ids)))} if token_ids else {}
    cancelled = [t.secret_id for t in tasks.values() if t.status == "cancelled"]
    successors = {t.secret_id: t for t in session.scalars(select(RotationTask).where(
        RotationTask.secret_id.in_(cancelled), RotationTask.status.in_(("open", "staged", "done")))
        .order_by(RotationTask.id)).unique()} if cancelled else {}
    versions = _version_numbers(session, [t.staged_version_id for t in tasks.values()]
                                + [t.staged_version_id for t in successors.values()])
    closed = 0
    for item in items:
        if item.ref_type == "rotation_task":
            task = tasks.get(item.ref_id or 0)
            if task is not None and task.status == "cancelled":
                newer = successors.get(task.secret_id)
                if newer is not None and newer.id > task.id:
                    audit.record(session, "offboarding.item_relinked", actor=actor, target_type="offboarding_item",
                                 target_id=item.id, details={"offboarding_id": offboarding.id, "from_task_id": task.id,
                                                             "to_task_id": newer.id})
                    item.ref_id = newer.id
                    task = newer
            if task is not None and task.status == "done":
                version = versions.get(task.staged_version_id or 0)
                closed += _close_linked(
                    session, offboarding, item, done_at=task.completed_at, done_by_id=task.completed_by_id, actor=actor,
                    note=f"Rotation task #{task.id} confirmed: version {version} is current.",
                    details={"via": "rotation_task_done", "rotation_task_id": task.id, "version": version})
        elif item.ref_type == "scim_token":
            token = tokens.get(item.ref_id or 0)
            if token is not None and token.revoked_at is not None:
                closed += _close_linked(
                    session, offboarding, item, done_at=token.revoked_at, done_by_id=token.revoked_by_id, actor=actor,
                    note=f"SCIM token {token.prefix}… revoked.", details={"via": "scim_token_revoked", "scim_token_id": token.id})
    session.flush()
    if closed:
        _maybe_complete(session, offboarding, actor)
    return closed


def close_linked_items(session: Session, *, ref_type: str, ref_id: int, actor: Any = None) -> int:
    """Hook of the rotation and SCIM services: a task was confirmed or a token revoked; close its items."""
    offboardings = list(session.scalars(
        select(Offboarding).join(OffboardingItem, OffboardingItem.offboarding_id == Offboarding.id)
        .where(OffboardingItem.ref_type == ref_type, OffboardingItem.ref_id == ref_id, OffboardingItem.status == "open",
               Offboarding.status == "in_progress").distinct()
    ).unique())
    return sum(sync_linked_items(session, offboarding, actor=actor) for offboarding in offboardings)


def sync_offboarding(session: Session, offboarding: Offboarding) -> int:
    """Close every item whose work was done elsewhere: removals, rotation tasks, tokens."""
    return sync_removals(session, offboarding) + sync_linked_items(session, offboarding)


def get_offboarding(session: Session, offboarding_id: int) -> Offboarding:
    """Return the offboarding or raise NotFoundError."""
    offboarding = session.get(Offboarding, offboarding_id)
    if offboarding is None:
        raise NotFoundError("No such offboarding.")
    return offboarding


def get_item(session: Session, item_id: int) -> OffboardingItem:
    """Return the checklist item or raise NotFoundError."""
    item = session.get(OffboardingItem, item_id)
    if item is None:
        raise NotFoundError("No such checklist item.")
    return item


def _item_open(offboarding: Offboarding, item: OffboardingItem) -> None:
    if offboarding.status in ("completed", "cancelled"):
        raise ConflictError(f"This offboarding is {offboarding.status}.")
    if item.status != "open":
        raise ConflictError(f"This item is {item.status} already.")


def complete_item(session: Session, *, actor: Any, item: OffboardingItem, note: str) -> OffboardingItem:
    """Mark an item done with an evidence note; removal and successor items do their part first."""
    offboarding = get_offboarding(session, item.offboarding_id)
    if not may_work_item(actor, item):
        raise ForbiddenError(f"This item is for {OWNER_LABELS[item.owner]}.")
    if offboarding.status != "in_progress":
        raise ConflictError("The checklist can be worked once the offboarding has started.")
    _item_open(offboarding, item)
    note_text = _note(note)
    if item.kind == "platform_removal":
        if not note_text:
            raise InvalidError("Say what you did on the platform (the evidence).", {"note": "Say what you did."})
        removal = session.get(PlatformRemoval, item.platform_removal_id)
        if removal is not None and removal.confirmed_at is None:
            grants.confirm_removal(session, actor=actor, removal=removal, note=note_text)
    elif item.kind == "successor":
        _apply_successor(session, actor=actor, offboarding=offboarding, item=item)
    elif item.kind in ("rotation", "token_revoke"):
        raise ConflictError("This item closes by itself when the task it tracks is done.")
    # Claim the item: of two people closing it at once, exactly one wins.
    claimed = rowcount(session.execute(
        update(OffboardingItem).where(OffboardingItem.id == item.id, OffboardingItem.status == "open")
        .values(status="done", done_at=utcnow(), done_by_id=getattr(actor, "id", None), evidence_note=note_text)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise ConflictError("Someone closed this item a moment ago.")
    session.refresh(item)
    audit.record(session, "offboarding.item_done", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": item.kind, "note": note_text})
    _maybe_complete(session, offboarding, actor)
    return item


def skip_item(session: Session, *, actor: Any, item: OffboardingItem, reason: str) -> OffboardingItem:
    """An admin skips an item that does not apply, with a reason."""
    if "admin" not in _roles(actor):
        raise ForbiddenError("Only an admin can skip a checklist item.")
    offboarding = get_offboarding(session, item.offboarding_id)
    _item_open(offboarding, item)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidError("Say why this item is skipped.", {"reason": "Say why."})
    if len(reason) > MAX_NOTE:
        raise InvalidError(f"Keep the reason under {MAX_NOTE} characters.", {"reason": "Too long."})
    claimed = rowcount(session.execute(
        update(OffboardingItem).where(OffboardingItem.id == item.id, OffboardingItem.status == "open")
        .values(status="skipped", done_at=utcnow(), done_by_id=actor.id, evidence_note=reason)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise ConflictError("Someone closed this item a moment ago.")
    session.refresh(item)
    audit.record(session, "offboarding.item_skipped", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": item.kind, "reason": reason})
    _maybe_complete(session, offboarding, actor)
    return item


def add_manual_item(session: Session, *, actor: Any, offboarding: Offboarding, title: str, owner: str,
                    due_at: datetime | None = None) -> OffboardingItem:
    """HR adds a free-text step with an owner (before or during the offboarding)."""
    if not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can add checklist items.")
    if offboarding.status in ("completed", "cancelled"):
        raise ConflictError(f"This offboarding is {offboarding.status}.")
    title = (title or "").strip()
    reasons: dict[str, str] = {}
    if not title:
        reasons["title"] = "Say what has to be done."
    elif len(title) > MAX_TITLE or any(ord(ch) < 32 for ch in title):
        reasons["title"] = f"One line, at most {MAX_TITLE} characters."
    if owner not in ITEM_OWNERS:
        reasons["owner"] = "Choose IT, the manager or HR."
    if reasons:
        raise InvalidError(next(iter(reasons.values())), reasons)
    owner_person_id = None
    if owner == "manager":
        kind_owner, owner_person_id = _manager_owner(session, offboarding.person)
        if kind_owner != "manager":
            raise InvalidError(f"{offboarding.person.full_name} has no active manager; choose HR or IT.",
                               {"owner": "No active manager."})
    count = session.scalar(select(func.count()).select_from(OffboardingItem).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.kind == "manual")) or 0
    item = OffboardingItem(offboarding_id=offboarding.id, key=f"manual:{count + 1}", kind="manual", owner=owner,
                           owner_person_id=owner_person_id, title=title, sort_order=MANUAL_ORDER,
                           due_at=due_at or offboarding.due_at, created_by_id=getattr(actor, "id", None))
    session.add(item)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError("Someone added an item at the same moment; reload and try again.") from None
    audit.record(session, "offboarding.item_created", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": "manual", "owner": owner, "title": title})
    return item


def choose_successor(session: Session, *, actor: Any, offboarding: Offboarding, account_id: int,
                     successor_id: int) -> OffboardingSuccessor:
    """The manager (or HR) names who takes over an account; allowed before the day."""
    if not may_choose_successor(actor, offboarding):
        raise ForbiddenError("Only the leaver's manager, HR or an admin can choose successors.")
    if offboarding.status in ("completed", "cancelled"):
        raise ConflictError(f"This offboarding is {offboarding.status}.")
    account = session.get(Account, account_id)
    if account is None or not _duties_of(account, offboarding.person_id):
        raise NotFoundError("The leaver holds no duty on that account.")
    successor = session.get(Person, successor_id)
    if successor is None or successor.status != "active" or successor.id == offboarding.person_id:
        raise InvalidError("Choose an active colleague other than the leaver.", {"successor": "Choose an active colleague."})
    item = session.scalar(select(OffboardingItem).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.key == f"successor:{account_id}"))
    if item is not None and item.status != "open":
        raise ConflictError("The successor of this account is settled already.")
    row = session.scalar(select(OffboardingSuccessor).where(
        OffboardingSuccessor.offboarding_id == offboarding.id, OffboardingSuccessor.account_id == account_id))
    previous = row.successor_id if row else None
    if row is None:
        row = OffboardingSuccessor(offboarding_id=offboarding.id, account_id=account_id, successor_id=successor.id,
                                   chosen_by_id=getattr(actor, "id", None))
        session.add(row)
    else:
        row.successor_id = successor.id
        row.chosen_at = utcnow()
        row.chosen_by_id = getattr(actor, "id", None)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError("Someone chose a successor at the same moment; reload and try again.") from None
    session.refresh(row)
    audit.record(session, "offboarding.successor_chosen", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"account_id": account_id, "successor_id": successor.id, "previous_successor_id": previous,
                          "item_id": item.id if item else None})
    return row


def _apply_successor(session: Session, *, actor: Any, offboarding: Offboarding, item: OffboardingItem) -> None:
    """The account gets the successor wherever it still names the leaver."""
    row = session.scalar(select(OffboardingSuccessor).where(
        OffboardingSuccessor.offboarding_id == offboarding.id, OffboardingSuccessor.account_id == item.account_id))
    if row is None:
        raise InvalidError("Choose the successor first.", {"successor": "Choose the successor first."})
    account = session.get(Account, item.account_id)
    assert account is not None
    moved: dict[str, Any] = {}
    for column, label in DUTIES:
        if getattr(account, column) == offboarding.person_id:
            setattr(account, column, row.successor_id)
            moved[label] = {"old": offboarding.person_id, "new": row.successor_id}
    session.flush()
    audit.record(session, "account.successor_appointed", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"account_id": account.id, "offboarding_id": offboarding.id, "successor_id": row.successor_id,
                          "changes": moved})


def _maybe_complete(session: Session, offboarding: Offboarding, actor: Any) -> bool:
    """Complete the offboarding when no item is open: the person has departed."""
    if offboarding.status != "in_progress":
        return False
    open_items = session.scalar(select(func.count()).select_from(OffboardingItem).where(
        OffboardingItem.offboarding_id == offboarding.id, OffboardingItem.status == "open")) or 0
    if open_items:
        return False
    offboarding.status = "completed"
    offboarding.completed_at = utcnow()
    person = offboarding.person
    old_status = person.status
    person.status = "departed"
    if person.end_date is None:
        person.end_date = (offboarding.started_at or offboarding.completed_at).date()
    session.flush()
    audit.record(session, "offboarding.completed", actor=actor, target_type="offboarding", target_id=offboarding.id,
                 details={"person_id": person.id, "status_before": old_status})
    return True


def rehire_person(session: Session, *, actor: Any, person: Person) -> Person:
    """A departed (or leaving, with no open offboarding) person is active again; no grant comes back."""
    if _is_user(actor) and not may_manage(actor):
        raise ForbiddenError("Only HR or an admin can rehire.")
    if person.status == "active":
        return person
    current = open_offboarding_of(session, person.id)
    if current is not None:
        if current.status == "in_progress":
            raise ConflictError(f"{person.full_name}'s offboarding is in progress; it must finish before a rehire.")
        cancel_offboarding(session, actor=actor, offboarding=current, reason="rehired")
    old = person.status
    person.status = "active"
    person.end_date = None
    session.flush()
    audit.record(session, "person.rehired", actor=actor, target_type="person", target_id=person.id,
                 details={"status_before": old, "grants_restored": 0})
    return person


# --- reading ---------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Counts of an offboarding's items."""

    total: int = 0
    open: int = 0
    done: int = 0
    skipped: int = 0
    open_by_owner: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        """Share of items closed, rounded down (100 only when all are)."""
        return (self.done + self.skipped) * 100 // self.total if self.total else 100


def offboardings_of(session: Session, person_id: int) -> list[Offboarding]:
    """Every offboarding of one person, latest first (the person page lists them)."""
    return list(session.scalars(select(Offboarding).where(Offboarding.person_id == person_id)
                                .order_by(Offboarding.created_at.desc(), Offboarding.id.desc())).unique())


def progress_of(session: Session, ids: Iterable[int]) -> dict[int, Progress]:
    """Progress of several offboardings in one query."""
    ids = list(ids)
    result = {i: Progress() for i in ids}
    if not ids:
        return result
    rows = session.execute(
        select(OffboardingItem.offboarding_id, OffboardingItem.status, OffboardingItem.owner, func.count())
        .where(OffboardingItem.offboarding_id.in_(ids))
        .group_by(OffboardingItem.offboarding_id, OffboardingItem.status, OffboardingItem.owner)
    )
    for offboarding_id, status, owner, count in rows:
        progress = result[offboarding_id]
        progress.total += count
        setattr(progress, status, getattr(progress, status) + count)
        if status == "open":
            progress.open_by_owner[owner] = progress.open_by_owner.get(owner, 0) + count
    return result


def list_offboardings(session: Session, user: Any, *, status: str = "open", page: int = 1,
                      per_page: int = 50) -> tuple[list[Offboarding], int]:
    """Offboardings visible to ``user``: open ones soonest first, or closed ones latest first."""
    query = select(Offboarding)
    if status == "open":
        query = query.where(Offboarding.status.in_(("scheduled", "in_progress")))
    else:
        query = query.where(Offboarding.status.in_(("completed", "cancelled")))
    if not sees_all(user):
        person_id = getattr(user, "person_id", -1)
        owned = select(OffboardingItem.offboarding_id).where(OffboardingItem.owner_person_id == person_id)
        query = query.join(Person, Person.id == Offboarding.person_id).where(
            or_(Person.manager_id == person_id, Offboarding.id.in_(owned)))
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(Offboarding.id).subquery())) or 0
    order = (Offboarding.status.desc(), func.coalesce(Offboarding.due_at, Offboarding.effective_at), Offboarding.id) \
        if status == "open" else (func.coalesce(Offboarding.completed_at, Offboarding.cancelled_at).desc(), Offboarding.id.desc())
    rows = session.scalars(query.order_by(*order).limit(per_page).offset((page - 1) * per_page)).unique()
    return list(rows), total


@dataclass
class AccountFlag:
    """An account left with fewer active admins than its minimum."""

    account: Account
    admins: int


def flags_for(session: Session, account_ids: Iterable[int]) -> list[AccountFlag]:
    """Accounts among ``account_ids`` with fewer active admins than their minimum (one query)."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    admins = (
        select(Grant.account_id, func.count().label("n")).join(Role, Role.code == Grant.role_code)
        .where(Grant.status == "active", Role.is_admin_role.is_(True), Grant.account_id.in_(ids))
        .group_by(Grant.account_id).subquery()
    )
    rows = session.execute(
        select(Account, func.coalesce(admins.c.n, 0)).outerjoin(admins, admins.c.account_id == Account.id)
        .where(Account.id.in_(ids), Account.status != "archived", func.coalesce(admins.c.n, 0) < Account.min_admins)
        .order_by(Account.display_name)
    ).all()
    return [AccountFlag(account, count) for account, count in rows]


def flags_of(session: Session, offboarding: Offboarding) -> list[AccountFlag]:
    """Accounts where the leaver held an admin role and which now have fewer admins than their minimum."""
    before = json.loads(offboarding.grants_before_json or "[]")
    if not before:
        return []
    admin_roles = set(session.scalars(select(Role.code).where(Role.is_admin_role.is_(True))))
    return flags_for(session, [row["account_id"] for row in before if row["role"] in admin_roles and row["status"] == "active"])


@dataclass
class PreviewAccount:
    """An account the leaver holds a duty on, and the successor chosen so far."""

    account: Account
    duties: list[str]
    successor: Person | None
    steps: str


@dataclass
class Preview:
    """What the start will do, computed from today's data."""

    grants: list[Grant]
    removal_labels: dict[int, str]
    accounts: list[PreviewAccount]
    flags: list[AccountFlag]
    login: User | None
    #: Secrets that will need rotation (rotation's rule and mode), revealed ones first.
    rotations: list[ExposedSecret] = field(default_factory=list)
    #: Live SCIM tokens the person created, to revoke.
    tokens: list[ScimToken] = field(default_factory=list)


def preview(session: Session, offboarding: Offboarding) -> Preview:
    """The checklist before the day: grants to revoke, platform roles to remove, successors to pick."""
    person = offboarding.person
    live = list(session.scalars(select(Grant).where(Grant.person_id == person.id, Grant.status.in_(("active", "requested")))
                                .order_by(Grant.id)).unique())
    labels = {g.id: platform_role_label(session, g.account, g.role_code) for g in live if g.status == "active"}
    successors = {row.account_id: row.successor for row in session.scalars(
        select(OffboardingSuccessor).where(OffboardingSuccessor.offboarding_id == offboarding.id)).unique()}
    accounts = [PreviewAccount(a, _duties_of(a, person.id), successors.get(a.id),
                               SUCCESSOR_STEPS.get(a.platform, GENERIC_SUCCESSOR_STEP))
                for a in accounts_with_duties(session, person.id)]
    # Flags as they would be after the revocation: admins other than the leaver.
    ids = {g.account_id for g in live}
    admins_after = dict(session.execute(
        select(Grant.account_id, func.count()).join(Role, Role.code == Grant.role_code)
        .where(Grant.status == "active", Role.is_admin_role.is_(True), Grant.account_id.in_(ids), Grant.person_id != person.id)
        .group_by(Grant.account_id)
    ).all()) if ids else {}
    flags = [AccountFlag(g.account, admins_after.get(g.account_id, 0)) for g in {g.account_id: g for g in live}.values()
             if g.account.status != "archived" and admins_after.get(g.account_id, 0) < g.account.min_admins
             and g.role.is_admin_role]
    login = _login_of(session, person.id)
    tokens = list(session.scalars(select(ScimToken).where(ScimToken.created_by_id == login.id, ScimToken.revoked_at.is_(None))
                                  .order_by(ScimToken.id))) if login is not None else []
    return Preview(live, labels, accounts, flags, login, exposed_secrets(session, person=person), tokens)


def linked_tasks(session: Session, items: Iterable[OffboardingItem]) -> dict[int, RotationTask]:
    """The rotation tasks the rotation items track, by id (one query)."""
    ids = [i.ref_id for i in items if i.ref_type == "rotation_task" and i.ref_id]
    return {t.id: t for t in session.scalars(select(RotationTask).where(RotationTask.id.in_(ids))).unique()} if ids else {}


def items_of(session: Session, offboarding: Offboarding) -> list[OffboardingItem]:
    """The checklist in working order: successors first, then removals, then HR's items."""
    return list(session.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == offboarding.id)
                                .order_by(OffboardingItem.sort_order, OffboardingItem.id)))


def successors_of(session: Session, offboarding: Offboarding) -> dict[int, Person]:
    """Chosen successors by account id."""
    return {row.account_id: row.successor for row in session.scalars(
        select(OffboardingSuccessor).where(OffboardingSuccessor.offboarding_id == offboarding.id)).unique()}


def blockers_of(progress: Progress) -> str:
    """A short 'what is blocking it' text from the open items by owner."""
    if not progress.open:
        return ""
    return ", ".join(f"{count} for {OWNER_LABELS[owner]}" for owner, count in sorted(progress.open_by_owner.items()))


# --- evidence ----------------------------------------------------------------------------------------------


EVIDENCE_COLUMNS = ("item_id", "kind", "title", "owner", "status", "due_at", "done_at", "done_by", "evidence_note",
                    "audit_event_ids")


@dataclass
class EvidenceItem:
    """One item with who closed it and the audit events behind it."""

    item: OffboardingItem
    done_by: str | None
    audit_ids: list[int]

    def row(self) -> tuple[Any, ...]:
        """The item as EVIDENCE_COLUMNS values."""
        item = self.item
        return (item.id, item.kind, item.title, item.owner, item.status,
                item.due_at.isoformat() if item.due_at else "", item.done_at.isoformat() if item.done_at else "",
                self.done_by or "", item.evidence_note or "", " ".join(str(i) for i in self.audit_ids))


@dataclass
class Evidence:
    """The evidence report of one offboarding."""

    offboarding: Offboarding
    items: list[EvidenceItem]
    offboarding_audit_ids: list[int]
    grants_before: list[dict[str, Any]]
    grants_after: list[dict[str, Any]]
    generated_at: datetime
    #: Every time the person saw a secret, and whether the version they saw is still current.
    exposures: list[dict[str, Any]] = field(default_factory=list)
    #: The rotation items with the task each tracks, its status and the version it made current.
    rotations: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        off = self.offboarding
        return {
            "offboarding": {
                "id": off.id, "person": {"id": off.person.id, "name": off.person.full_name, "email": off.person.email,
                                         "employee_id": off.person.employee_id, "status": off.person.status},
                "kind": off.kind, "origin": off.origin, "status": off.status,
                "effective_at": off.effective_at.isoformat(), "started_at": _iso(off.started_at),
                "due_at": _iso(off.due_at), "completed_at": _iso(off.completed_at),
                "audit_event_ids": self.offboarding_audit_ids,
            },
            "items": [dict(zip(EVIDENCE_COLUMNS, e.row(), strict=True)) | {"audit_event_ids": e.audit_ids} for e in self.items],
            "grants_before": self.grants_before,
            "grants_after": self.grants_after,
            "exposures": self.exposures,
            "rotations": self.rotations,
            "generated_at": self.generated_at.isoformat(),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def evidence(session: Session, offboarding: Offboarding) -> Evidence:
    """Each item, who closed it, when, the note and its audit events; grants before and after."""
    items = items_of(session, offboarding)
    grant_of_removal = dict(session.execute(
        select(PlatformRemoval.id, PlatformRemoval.grant_id).where(
            PlatformRemoval.id.in_([i.platform_removal_id for i in items if i.platform_removal_id]))
    ).all()) if any(i.platform_removal_id for i in items) else {}
    item_ids = [str(i.id) for i in items]
    grant_ids = [str(g) for g in grant_of_removal.values()]
    conditions = [and_(AuditEvent.target_type == "offboarding", AuditEvent.target_id == str(offboarding.id))]
    if item_ids:
        conditions.append(and_(AuditEvent.target_type == "offboarding_item", AuditEvent.target_id.in_(item_ids)))
    if grant_ids:
        conditions.append(and_(AuditEvent.target_type == "grant", AuditEvent.target_id.in_(grant_ids),
                               AuditEvent.action.in_(("grant.revoked", "grant.platform_removal_confirmed"))))
    item_of_ref = {(i.ref_type, str(i.ref_id)): i.id for i in items if i.ref_type and i.ref_id}
    for ref_type in ("rotation_task", "scim_token"):
        ref_ids = [ref_id for kind, ref_id in item_of_ref if kind == ref_type]
        if ref_ids:
            conditions.append(and_(AuditEvent.target_type == ref_type, AuditEvent.target_id.in_(ref_ids)))
    events = session.execute(select(AuditEvent.id, AuditEvent.target_type, AuditEvent.target_id)
                             .where(or_(*conditions)).order_by(AuditEvent.id)).all()
    by_item: dict[int, list[int]] = {i.id: [] for i in items}
    item_of_grant = {str(grant_of_removal[i.platform_removal_id]): i.id for i in items if i.platform_removal_id}
    own: list[int] = []
    for event_id, target_type, target_id in events:
        if target_type == "offboarding":
            own.append(event_id)
        elif target_id is None:  # the conditions select by target id; no event without one matches
            continue
        elif target_type == "offboarding_item":
            by_item[int(target_id)].append(event_id)
        elif target_type is not None and (target_type, target_id) in item_of_ref:
            by_item[item_of_ref[(target_type, target_id)]].append(event_id)
        elif target_id in item_of_grant:
            by_item[item_of_grant[target_id]].append(event_id)
    user_ids = {i.done_by_id for i in items if i.done_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}
    after = [_grant_row(g) for g in session.scalars(
        select(Grant).where(Grant.person_id == offboarding.person_id).order_by(Grant.id)).unique()]
    before = json.loads(offboarding.grants_before_json) if offboarding.grants_before_json else []
    return Evidence(offboarding, [EvidenceItem(i, names.get(i.done_by_id) if i.done_by_id else None, sorted(by_item[i.id]))
                                  for i in items], own, before, after, utcnow(),
                    _exposure_rows(session, offboarding.person_id), _rotation_rows(session, items))


EXPOSURE_COLUMNS = ("exposure_id", "secret_id", "secret", "kind", "account", "version", "how", "exposed_at",
                    "version_status_now")
ROTATION_COLUMNS = ("item_id", "secret_id", "secret", "account", "revealed", "rotation_task_id", "task_status",
                    "version_confirmed", "confirmed_at", "confirmed_by", "item_status")


def _exposure_rows(session: Session, person_id: int) -> list[dict[str, Any]]:
    """Every exposure of the person (what they saw), with the status of that version now (one query)."""
    rows = session.execute(
        select(Exposure, SecretVersion, Secret, Account).join(SecretVersion, SecretVersion.id == Exposure.secret_version_id)
        .join(Secret, Secret.id == Exposure.secret_id).join(Account, Account.id == Exposure.account_id)
        .where(Exposure.person_id == person_id).order_by(Exposure.exposed_at, Exposure.id)
    ).unique().all()
    return [dict(zip(EXPOSURE_COLUMNS, (e.id, secret.id, secret.label, secret.kind, account.display_name, version.version,
                                        e.kind, e.exposed_at.isoformat(), version.status), strict=True))
            for e, version, secret, account in rows]


def _rotation_rows(session: Session, items: list[OffboardingItem]) -> list[dict[str, Any]]:
    """The rotation items with their tasks and the versions those tasks confirmed (three queries)."""
    rotation_items = [i for i in items if i.kind == "rotation"]
    if not rotation_items:
        return []
    tasks = linked_tasks(session, rotation_items)
    versions = _version_numbers(session, [t.staged_version_id for t in tasks.values() if t.status == "done"])
    user_ids = {t.completed_by_id for t in tasks.values() if t.completed_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}
    rows = []
    for item in rotation_items:
        task = tasks.get(item.ref_id or 0)
        done = task is not None and task.status == "done"
        rows.append(dict(zip(ROTATION_COLUMNS, (
            item.id, task.secret_id if task else None, task.secret.label if task else None,
            task.secret.account.display_name if task else None, item.revealed, task.id if task else None,
            task.status if task else None, versions.get(task.staged_version_id or 0) if done and task else None,
            _iso(task.completed_at) if done and task else None,
            names.get(task.completed_by_id) if done and task and task.completed_by_id else None, item.status,
        ), strict=True)))
    return rows
