"""Rotation tasks: opening one (or merging a new trigger into the live one), many at once,
assigning, cancelling, and IT asking for a rotation now."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from govern import audit
from govern.audit.services import Actor, lock_chain_head
from govern.auth.models import User
from govern.db import utcnow
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.incidents.models import Incident
from govern.rotation.custody import CUSTODIAN_ROLE, MAX_TEXT, require_custodian, required_text
from govern.rotation.models import REASON_PRIORITY, TASK_REASONS, RotationTask
from govern.vault.models import Secret
from govern.vault.versions import discard_pending


def _merge_json_list(raw: str, items: Iterable[Any], key: Callable[[Any], Any] = lambda x: x) -> tuple[str, bool]:
    values: list[Any] = json.loads(raw or "[]")
    seen = {json.dumps(key(v), sort_keys=True) for v in values}
    changed = False
    for item in items:
        k = json.dumps(key(item), sort_keys=True)
        if k not in seen:
            values.append(item)
            seen.add(k)
            changed = True
    return json.dumps(values), changed


def _live_task(session: Session, secret_id: int, *, lock: bool = False) -> RotationTask | None:
    query = select(RotationTask).where(RotationTask.secret_id == secret_id, RotationTask.status.in_(("open", "staged")))
    if lock:
        lock_chain_head(session)  # the audit head before the tasks: one lock order for every writer
        query = query.with_for_update(of=RotationTask)
    return session.scalar(query)


def _merge(task: RotationTask, *, reason: str, people: Sequence[dict[str, Any]], notes: list[str], due: datetime,
           urgent: bool, incident: Incident | None) -> list[str]:
    """Merge one more trigger into a live task: the most pressing reason, the earliest due time,
    every person and note. Returns the names of what changed."""
    changed_fields: list[str] = []
    task.reasons_json, changed = _merge_json_list(task.reasons_json, [reason])
    if changed:
        changed_fields.append("reasons")
    if REASON_PRIORITY[reason] > REASON_PRIORITY[task.reason]:
        task.reason = reason
        changed_fields.append("reason")
    task.people_json, changed = _merge_json_list(task.people_json, people, key=lambda p: (p["person_id"], p["why"]))
    if changed:
        changed_fields.append("people")
    task.notes_json, changed = _merge_json_list(task.notes_json, notes)
    if changed:
        changed_fields.append("notes")
    if due < task.due_at:
        task.due_at = due
        changed_fields.append("due_at")
    if urgent and not task.is_urgent:
        task.is_urgent = True
        changed_fields.append("urgent")
    if incident is not None and task.incident_id is None:
        task.incident_id = incident.id
        changed_fields.append("incident")
    return changed_fields


@dataclass
class Opened:
    """What opening a task did."""

    task: RotationTask
    created: bool
    changed: bool


def open_task(session: Session, *, actor: Actor | None, secret: Secret, reason: str, due_at: datetime | None = None,
              people: Sequence[dict[str, Any]] = (), note: str = "", urgent: bool = False,
              incident: Incident | None = None) -> Opened:
    """Open a rotation task for ``secret``, or merge this trigger into its live task (one per secret).

    Merging keeps the most pressing reason, the earliest due time, every person and note, and
    is audited only when it changed something, so repeated triggers are idempotent.
    """
    if reason not in TASK_REASONS:
        raise InvalidError(f"Unknown reason {reason!r}.", {"reason": "Unknown reason."})
    now = utcnow()
    due = due_at or now
    notes = [note[:MAX_TEXT]] if note else []
    task = _live_task(session, secret.id, lock=True)
    if task is None:
        task = RotationTask(secret_id=secret.id, account_id=secret.account_id, reason=reason, reasons_json=json.dumps([reason]),
                            people_json=json.dumps(list(people)), notes_json=json.dumps(notes), is_urgent=urgent, due_at=due,
                            status="open", incident_id=incident.id if incident else None, created_at=now,
                            created_by_id=actor.id if actor is not None else None)
        try:
            with session.begin_nested():
                session.add(task)
                session.flush()
        except IntegrityError:
            if task in session:
                session.expunge(task)
            # Another transaction opened the live task a moment ago: merge into it instead.
            task = _live_task(session, secret.id, lock=True)
            if task is None:
                raise ConflictError("Someone else changed this secret's rotation at the same time; try again.") from None
        else:
            audit.record(session, "rotation.task_opened", actor=actor, target_type="rotation_task", target_id=task.id,
                         details={"account_id": secret.account_id, "secret_id": secret.id, "reason": reason,
                                  "due_at": due, "urgent": urgent, "people": [p["person_id"] for p in people],
                                  "incident_id": task.incident_id})
            session.flush()
            return Opened(task, True, False)
    changed_fields = _merge(task, reason=reason, people=people, notes=notes, due=due, urgent=urgent, incident=incident)
    if changed_fields:
        audit.record(session, "rotation.task_merged", actor=actor, target_type="rotation_task", target_id=task.id,
                     details={"account_id": secret.account_id, "secret_id": secret.id, "reason": reason,
                              "changed": changed_fields, "people": [p["person_id"] for p in people]})
    session.flush()
    return Opened(task, False, bool(changed_fields))


@dataclass(frozen=True)
class TaskRequest:
    """One trigger for ``open_tasks``: what ``open_task`` takes for one secret."""

    secret: Secret
    reason: str
    due_at: datetime
    people: Sequence[dict[str, Any]] = ()
    note: str = ""
    urgent: bool = False


def open_tasks(session: Session, *, actor: Actor | None, requests: Sequence[TaskRequest]) -> dict[int, Opened]:
    """``open_task`` for many secrets at once (one request per secret), by secret id.

    The same tasks, merges and audit events, in a fixed number of statements: one query (locking)
    for the live tasks, one multi-row insert of the new ones, one for their audit events. If another
    transaction opens a task for one of these secrets meanwhile, the unique index refuses the insert
    and each request goes through ``open_task`` instead, which merges into that task.
    """
    if len({r.secret.id for r in requests}) != len(requests):
        raise ValueError("one request per secret")
    for r in requests:
        if r.reason not in TASK_REASONS:
            raise InvalidError(f"Unknown reason {r.reason!r}.", {"reason": "Unknown reason."})
    if not requests:
        return {}
    lock_chain_head(session)  # the audit head before the tasks: one lock order for every writer
    live = {t.secret_id: t for t in session.scalars(
        select(RotationTask).where(RotationTask.secret_id.in_([r.secret.id for r in requests]),
                                   RotationTask.status.in_(("open", "staged")))
        .options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee)).with_for_update(of=RotationTask))}
    now = utcnow()
    new = [r for r in requests if r.secret.id not in live]
    try:
        with session.begin_nested():
            if new:
                session.execute(insert(RotationTask), [{
                    "secret_id": r.secret.id, "account_id": r.secret.account_id, "reason": r.reason,
                    "reasons_json": json.dumps([r.reason]), "people_json": json.dumps(list(r.people)),
                    "notes_json": json.dumps([r.note[:MAX_TEXT]] if r.note else []), "is_urgent": r.urgent,
                    "due_at": r.due_at, "status": "open", "created_at": now,
                    "created_by_id": actor.id if actor is not None else None} for r in new])
    except IntegrityError:
        return {r.secret.id: open_task(session, actor=actor, secret=r.secret, reason=r.reason, due_at=r.due_at,
                                       people=r.people, note=r.note, urgent=r.urgent) for r in requests}
    created: list[tuple[TaskRequest, RotationTask]] = []
    if new:  # the rows just written, by the unique live task of each secret
        fresh = {t.secret_id: t for t in session.scalars(select(RotationTask).where(
            RotationTask.secret_id.in_([r.secret.id for r in new]), RotationTask.status.in_(("open", "staged")))
            .options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee)))}
        created = [(r, fresh[r.secret.id]) for r in new]
    result: dict[int, Opened] = {}
    entries: list[audit.Entry] = []
    for r, new_task in created:
        result[r.secret.id] = Opened(new_task, True, False)
        entries.append(audit.Entry("rotation.task_opened", actor=actor, target_type="rotation_task", target_id=new_task.id,
                                   details={"account_id": r.secret.account_id, "secret_id": r.secret.id, "reason": r.reason,
                                            "due_at": r.due_at, "urgent": r.urgent,
                                            "people": [p["person_id"] for p in r.people], "incident_id": None}))
    for r in requests:
        task = live.get(r.secret.id)
        if task is None:
            continue
        changed = _merge(task, reason=r.reason, people=r.people, notes=[r.note[:MAX_TEXT]] if r.note else [],
                         due=r.due_at, urgent=r.urgent, incident=None)
        result[r.secret.id] = Opened(task, False, bool(changed))
        if changed:
            entries.append(audit.Entry("rotation.task_merged", actor=actor, target_type="rotation_task", target_id=task.id,
                                       details={"account_id": r.secret.account_id, "secret_id": r.secret.id,
                                                "reason": r.reason, "changed": changed,
                                                "people": [p["person_id"] for p in r.people]}))
    audit.record_many(session, entries)
    session.flush()
    return result


def get_task(session: Session, task_id: int) -> RotationTask:
    """The task or NotFoundError."""
    task = session.get(RotationTask, task_id)
    if task is None:
        raise NotFoundError("No such rotation task.")
    return task


def lock_live_task(session: Session, task: RotationTask, statuses: tuple[str, ...]) -> None:
    """Reload ``task`` under a row lock; ConflictError unless its status is one of ``statuses``."""
    lock_chain_head(session)  # the audit head before the task: one lock order for every writer
    session.refresh(task, with_for_update={"of": RotationTask})
    if task.status not in statuses:
        raise ConflictError(f"This task is {task.status} already (someone else may have just changed it); reload the page.")

def cancel_task(session: Session, *, actor: User, task: RotationTask, reason: str) -> RotationTask:
    """Drop a task; a staged value is destroyed at once (it never became current)."""
    require_custodian(actor)
    why = required_text(reason, "reason", "Say why this rotation is cancelled.")
    lock_live_task(session, task, ("open", "staged"))
    was = task.status
    if was == "staged":
        discard_pending(session, actor=actor, secret=task.secret)
    task.status, task.cancelled_at, task.cancelled_by_id, task.cancel_reason = "cancelled", utcnow(), actor.id, why
    audit.record(session, "rotation.task_cancelled", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": task.account_id, "secret_id": task.secret_id, "was": was, "reason": why})
    session.flush()
    return task


def assign_task(session: Session, *, actor: User, task: RotationTask, assignee: User | None) -> RotationTask:
    """Give a live task to one IT person, or back to the IT team (None)."""
    require_custodian(actor)
    if assignee is not None and (CUSTODIAN_ROLE not in set(assignee.roles) or not assignee.is_active):
        raise InvalidError("Only active IT users can take rotation tasks.", {"assignee": "Choose an IT user."})
    lock_live_task(session, task, ("open", "staged"))
    task.assignee_id = assignee.id if assignee else None
    audit.record(session, "rotation.task_assigned", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": task.account_id, "assignee_id": task.assignee_id})
    session.flush()
    return task


def request_rotation(session: Session, *, actor: User, secret: Secret, note: str) -> Opened:
    """IT asks for a rotation now (manual reason)."""
    require_custodian(actor)
    why = required_text(note, "note", "Say why this secret should rotate.")
    return open_task(session, actor=actor, secret=secret, reason="manual", note=why)

