"""What the pages read: progress, lists, account flags, the preview before a start."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from govern.accounts.models import Account, Role
from govern.accounts.services import platform_role_label
from govern.audit.services import Actor
from govern.auth.models import User
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.offboarding.duties import GENERIC_SUCCESSOR_STEP, SUCCESSOR_STEPS, accounts_with_duties, duties_of
from govern.offboarding.models import Offboarding, OffboardingItem, OffboardingSuccessor
from govern.offboarding.permissions import login_of, sees_all
from govern.offboarding.settings import OWNER_LABELS
from govern.paging import Page, count_of, read_page
from govern.rotation.exposure import ExposedSecret, exposed_secrets
from govern.rotation.models import RotationTask
from govern.scim.models import ScimToken


def open_offboarding_of(session: Session, person_id: int) -> Offboarding | None:
    """The person's scheduled or in-progress offboarding, if any."""
    return session.scalar(select(Offboarding).where(
        Offboarding.person_id == person_id, Offboarding.status.in_(("scheduled", "in_progress"))))


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


def list_offboardings(session: Session, user: Actor | None, *, status: str = "open", page: int = 1,
                      per_page: int = 50) -> Page[Offboarding]:
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
    order = (Offboarding.status.desc(), func.coalesce(Offboarding.due_at, Offboarding.effective_at), Offboarding.id) \
        if status == "open" else (func.coalesce(Offboarding.completed_at, Offboarding.cancelled_at).desc(), Offboarding.id.desc())
    return read_page(session, query.order_by(*order), page, per_page, count=count_of(query.with_only_columns(Offboarding.id)),
                     scalars=True, unique=True)


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
    accounts = [PreviewAccount(a, duties_of(a, person.id), successors.get(a.id),
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
    login = login_of(session, person.id)
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
