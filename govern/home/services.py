"""What is waiting for the signed-in user, by role, for the home page: counts and short lists.

Each part is one or two statements whatever the data (the home page's statement count is tested),
and each reuses the query its own page uses, so the home page and that page never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.connectors import sync as connector_sync
from govern.directory.models import Person
from govern.grants import services as grants
from govern.grants.models import Grant, PlatformRemoval
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.rotation.models import RotationTask

#: Rows of each short list; the count says how many more there are, one click away.
SHORT_LIST = 5


@dataclass
class SuccessorPick:
    """An open "appoint a successor" item a manager owns."""

    item_id: int
    offboarding_id: int
    leaver: str
    account: str
    due_at: datetime | None


@dataclass
class Waiting:
    """What the home page lists as waiting for its user; empty parts are not shown."""

    successor_picks: list[SuccessorPick] = field(default_factory=list)
    successor_total: int = 0
    approvals: list[Grant] = field(default_factory=list)
    approval_total: int = 0
    my_requests: list[Grant] = field(default_factory=list)
    my_request_total: int = 0
    rotation_overdue: int = 0
    rotation_due: int = 0
    rotation_tasks: list[RotationTask] = field(default_factory=list)
    removals: list[tuple[int, str, int]] = field(default_factory=list)
    removal_total: int = 0
    offboardings: dict[str, int] = field(default_factory=dict)
    admin_items: int = 0
    #: Platform drift (connectors): every item, and those by a departed or unknown person.
    drift_total: int = 0
    drift_critical: int = 0


def successor_picks(session: Session, person_id: int, *, limit: int = SHORT_LIST) -> tuple[list[SuccessorPick], int]:
    """Open successor items of running offboardings that ``person_id`` (their manager) owns, soonest due first."""
    where = (OffboardingItem.owner_person_id == person_id, OffboardingItem.kind == "successor",
             OffboardingItem.status == "open", Offboarding.status == "in_progress")
    rows = session.execute(
        select(OffboardingItem.id, Offboarding.id, Person.full_name, Account.display_name, OffboardingItem.due_at,
               func.count().over())
        .join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
        .join(Person, Person.id == Offboarding.person_id)
        .join(Account, Account.id == OffboardingItem.account_id)
        .where(*where).order_by(OffboardingItem.due_at, OffboardingItem.id).limit(limit)
    ).all()
    return [SuccessorPick(*row[:5]) for row in rows], (rows[0][5] if rows else 0)


def my_requests(session: Session, person_id: int, *, limit: int = SHORT_LIST) -> tuple[list[Grant], int]:
    """The user's own requests still waiting for a decision, oldest first."""
    where = (Grant.person_id == person_id, Grant.status == "requested")
    rows = list(session.execute(select(Grant, func.count().over()).where(*where)
                                .order_by(Grant.requested_at, Grant.id).limit(limit)).unique())
    return [row[0] for row in rows], (rows[0][1] if rows else 0)


def rotation_summary(session: Session, now: datetime, *, limit: int = SHORT_LIST) -> tuple[int, int, list[RotationTask]]:
    """Live rotation tasks overdue and due (not yet overdue), and the first few of the queue."""
    overdue, live = session.execute(
        select(func.count(case((RotationTask.due_at < now, 1))), func.count())
        .where(RotationTask.status.in_(("open", "staged")))
    ).one()
    tasks = [] if not live else list(session.scalars(
        select(RotationTask).where(RotationTask.status.in_(("open", "staged")))
        .order_by(RotationTask.is_urgent.desc(), RotationTask.due_at, RotationTask.id).limit(limit)).unique())
    return overdue or 0, (live or 0) - (overdue or 0), tasks


def removals_to_confirm(session: Session, *, limit: int = SHORT_LIST) -> tuple[list[tuple[int, str, int]], int]:
    """Accounts with removals from the platform's own role list not confirmed yet: (id, name, count), and the total."""
    rows = session.execute(
        select(Account.id, Account.display_name, func.count(), func.sum(func.count()).over())
        .join(PlatformRemoval, PlatformRemoval.account_id == Account.id)
        .where(PlatformRemoval.confirmed_at.is_(None))
        .group_by(Account.id, Account.display_name)
        .order_by(func.count().desc(), Account.display_name, Account.id).limit(limit)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows], (int(rows[0][3]) if rows else 0)


def offboarding_counts(session: Session, now: datetime) -> dict[str, int]:
    """Open offboardings: scheduled, in progress, and in progress past their deadline."""
    scheduled, running, overdue = session.execute(select(
        func.count(case((Offboarding.status == "scheduled", 1))),
        func.count(case((Offboarding.status == "in_progress", 1))),
        func.count(case(((Offboarding.status == "in_progress") & (Offboarding.due_at < now), 1))),
    ).where(Offboarding.status.in_(("scheduled", "in_progress")))).one()
    return {"scheduled": scheduled or 0, "in_progress": running or 0, "overdue": overdue or 0}


def admin_items(session: Session) -> int:
    """Open checklist items only an admin can close (revoking a leaver's SCIM token)."""
    return session.scalar(
        select(func.count()).select_from(OffboardingItem)
        .join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
        .where(OffboardingItem.kind == "token_revoke", OffboardingItem.status == "open",
               Offboarding.status == "in_progress")) or 0


def waiting_for(session: Session, user: Any, now: datetime) -> Waiting:
    """Everything the home page lists as waiting for ``user``, by the roles they hold."""
    roles = frozenset(user.roles)
    waiting = Waiting()
    waiting.my_requests, waiting.my_request_total = my_requests(session, user.person_id)
    if "manager" in roles or "admin" in roles:
        waiting.successor_picks, waiting.successor_total = successor_picks(session, user.person_id)
        waiting.approvals, waiting.approval_total = grants.decision_queue(session, user, limit=SHORT_LIST)
    if "it" in roles:
        waiting.rotation_overdue, waiting.rotation_due, waiting.rotation_tasks = rotation_summary(session, now)
    if "it" in roles or "admin" in roles:
        waiting.removals, waiting.removal_total = removals_to_confirm(session)
        summary = connector_sync.drift_summary(session)  # as of the last sync: the whole drift is too slow per view
        waiting.drift_total = summary.get("total", 0)
        waiting.drift_critical = summary.get("critical", 0)
    if "hr" in roles or "admin" in roles:
        waiting.offboardings = offboarding_counts(session, now)
    if "admin" in roles:
        waiting.admin_items = admin_items(session)
    return waiting
