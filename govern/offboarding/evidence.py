"""The evidence of a finished offboarding: what was revoked, rotated and exposed, for auditors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.auth.models import User
from govern.db import utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.offboarding.checklist import version_numbers
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.reading import items_of, linked_tasks
from govern.offboarding.start import grant_row
from govern.vault.models import Exposure, Secret, SecretVersion

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
    for ref_type in ("rotation_task", "scim_token", "api_token"):
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
    after = [grant_row(g) for g in session.scalars(
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
    versions = version_numbers(session, [t.staged_version_id for t in tasks.values() if t.status == "done"])
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
