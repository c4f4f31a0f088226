"""The checklist: items kept in step with platform removals and rotations, completed, skipped, added; successors; completion and rehire."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account
from govern.audit.services import Actor
from govern.auth.models import ApiToken, User
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, get_or_raise
from govern.grants import services as grants
from govern.grants.models import PlatformRemoval
from govern.offboarding.duties import DUTIES, duties_of, manager_owner
from govern.offboarding.models import ITEM_OWNERS, MANUAL_ORDER, Offboarding, OffboardingItem, OffboardingSuccessor
from govern.offboarding.permissions import app_roles, may_choose_successor, may_manage, may_work_item
from govern.offboarding.settings import MAX_NOTE, MAX_TITLE, OWNER_LABELS, clean_note
from govern.rotation.models import RotationTask
from govern.scim.models import ScimToken
from govern.vault.models import SecretVersion


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
        complete_if_done(session, offboarding, None)
    return len(rows)


def version_numbers(session: Session, version_ids: Iterable[int | None]) -> dict[int, int]:
    ids = sorted({v for v in version_ids if v})
    return dict(session.execute(select(SecretVersion.id, SecretVersion.version).where(SecretVersion.id.in_(ids))).all()) \
        if ids else {}


def _close_linked(session: Session, offboarding: Offboarding, item: OffboardingItem, *, done_at: datetime | None,
                  done_by_id: int | None, note: str, actor: Actor | None, details: dict[str, Any]) -> bool:
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


def sync_linked_items(session: Session, offboarding: Offboarding, *, actor: Actor | None = None) -> int:
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
    api_ids = [i.ref_id for i in items if i.ref_type == "api_token" and i.ref_id]
    api_tokens = {t.id: t for t in session.scalars(select(ApiToken).where(ApiToken.id.in_(api_ids)))} if api_ids else {}
    cancelled = [t.secret_id for t in tasks.values() if t.status == "cancelled"]
    successors = {t.secret_id: t for t in session.scalars(select(RotationTask).where(
        RotationTask.secret_id.in_(cancelled), RotationTask.status.in_(("open", "staged", "done")))
        .order_by(RotationTask.id)).unique()} if cancelled else {}
    versions = version_numbers(session, [t.staged_version_id for t in tasks.values()]
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
        elif item.ref_type == "api_token":
            api_token = api_tokens.get(item.ref_id or 0)
            if api_token is not None and api_token.revoked_at is not None:
                closed += _close_linked(
                    session, offboarding, item, done_at=api_token.revoked_at, done_by_id=api_token.revoked_by_id,
                    actor=actor, note=f"API token {api_token.prefix}… revoked.",
                    details={"via": "api_token_revoked", "api_token_id": api_token.id})
            elif api_token is not None and api_token.owner_person_id != offboarding.person_id:
                closed += _close_linked(
                    session, offboarding, item, done_at=utcnow(), done_by_id=getattr(actor, "id", None), actor=actor,
                    note=f"API token {api_token.prefix}… has a new owner.",
                    details={"via": "api_token_owner_changed", "api_token_id": api_token.id})
    session.flush()
    if closed:
        complete_if_done(session, offboarding, actor)
    return closed


def close_linked_items(session: Session, *, ref_type: str, ref_id: int, actor: Actor | None = None) -> int:
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
    return get_or_raise(session, Offboarding, offboarding_id, "No such offboarding.")


def get_item(session: Session, item_id: int) -> OffboardingItem:
    """Return the checklist item or raise NotFoundError."""
    return get_or_raise(session, OffboardingItem, item_id, "No such checklist item.")


def _item_open(offboarding: Offboarding, item: OffboardingItem) -> None:
    if offboarding.status in ("completed", "cancelled"):
        raise ConflictError(f"This offboarding is {offboarding.status}.")
    if item.status != "open":
        raise ConflictError(f"This item is {item.status} already.")


def complete_item(session: Session, *, actor: User, item: OffboardingItem, note: str) -> OffboardingItem:
    """Mark an item done with an evidence note; removal and successor items do their part first."""
    offboarding = get_offboarding(session, item.offboarding_id)
    if not may_work_item(actor, item):
        raise ForbiddenError(f"This item is for {OWNER_LABELS[item.owner]}.")
    if offboarding.status != "in_progress":
        raise ConflictError("The checklist can be worked once the offboarding has started.")
    _item_open(offboarding, item)
    note_text = clean_note(note)
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
    _claim(session, actor, item, "done", note_text)
    audit.record(session, "offboarding.item_done", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": item.kind, "note": note_text})
    complete_if_done(session, offboarding, actor)
    return item


def skip_item(session: Session, *, actor: User, item: OffboardingItem, reason: str) -> OffboardingItem:
    """An admin skips an item that does not apply, with a reason."""
    if "admin" not in app_roles(actor):
        raise ForbiddenError("Only an admin can skip a checklist item.")
    offboarding = get_offboarding(session, item.offboarding_id)
    _item_open(offboarding, item)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidError("Say why this item is skipped.", {"reason": "Say why."})
    if len(reason) > MAX_NOTE:
        raise InvalidError(f"Keep the reason under {MAX_NOTE} characters.", {"reason": "Too long."})
    _claim(session, actor, item, "skipped", reason)
    audit.record(session, "offboarding.item_skipped", actor=actor, target_type="offboarding_item", target_id=item.id,
                 details={"offboarding_id": offboarding.id, "kind": item.kind, "reason": reason})
    complete_if_done(session, offboarding, actor)
    return item


def _claim(session: Session, actor: User, item: OffboardingItem, status: str, note: str | None) -> None:
    """Close the open item as ``status``: of two people closing it at once, exactly one wins."""
    claimed = rowcount(session.execute(
        update(OffboardingItem).where(OffboardingItem.id == item.id, OffboardingItem.status == "open")
        .values(status=status, done_at=utcnow(), done_by_id=actor.id, evidence_note=note)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise ConflictError("Someone closed this item a moment ago.")
    session.refresh(item)


def add_manual_item(session: Session, *, actor: Actor | None, offboarding: Offboarding, title: str, owner: str,
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
        kind_owner, owner_person_id = manager_owner(session, offboarding.person)
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


def choose_successor(session: Session, *, actor: Actor | None, offboarding: Offboarding, account_id: int,
                     successor_id: int) -> OffboardingSuccessor:
    """The manager (or HR) names who takes over an account; allowed before the day."""
    if not may_choose_successor(actor, offboarding):
        raise ForbiddenError("Only the leaver's manager, HR or an admin can choose successors.")
    if offboarding.status in ("completed", "cancelled"):
        raise ConflictError(f"This offboarding is {offboarding.status}.")
    account = session.get(Account, account_id)
    if account is None or not duties_of(account, offboarding.person_id):
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


def _apply_successor(session: Session, *, actor: Actor | None, offboarding: Offboarding, item: OffboardingItem) -> None:
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


def complete_if_done(session: Session, offboarding: Offboarding, actor: Actor | None) -> bool:
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
