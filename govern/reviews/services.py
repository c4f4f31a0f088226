"""Access review rules: opening a campaign, who reviews what, deciding items, closing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, Row, Select, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from govern import audit
from govern.accounts.models import PLATFORMS, Account, Role
from govern.auth.models import User
from govern.auth.roles import is_admin
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, get_or_raise
from govern.grants import services as grants
from govern.grants.models import Grant
from govern.paging import Page, count_of, read_page
from govern.reviews.models import SCOPE_KINDS, ReviewCampaign, ReviewItem

MAX_NAME = 200
MAX_DEPARTMENT = 120
#: Room for the campaign's name in front of it when the reason becomes the grant's revoke reason.
MAX_REASON = 1500
DECIDABLE = ("keep", "revoke")
#: Filter value for items still waiting for a decision (their decision column is NULL).
OPEN = "open"
#: Filter value for items nobody could be assigned to.
NOBODY = "none"


# --- who may do what -------------------------------------------------------------------------------


def may_run_campaigns(user: User) -> bool:
    """Admins open and close campaigns; auditors only read them."""
    return is_admin(user)


def may_decide_item(user: User, item: ReviewItem) -> bool:
    """The assigned reviewer decides; an admin may decide any item (including unassigned ones)."""
    return is_admin(user) or (item.reviewer_id is not None and item.reviewer_id == user.person_id)


def choose_reviewer(*, grantee_id: int, owner_id: int | None, owner_status: str | None,
                    manager_id: int | None, manager_status: str | None) -> int | None:
    """The account's business owner; the grantee's manager when the owner would review their own
    grant, or the account has no owner (or a departed one); nobody when neither can."""
    for candidate, status in ((owner_id, owner_status), (manager_id, manager_status)):
        if candidate is not None and candidate != grantee_id and status != "departed":
            return candidate
    return None


# --- opening -----------------------------------------------------------------------------------------


def _scope(scope_kind: str, scope_value: str | None) -> tuple[str | None, dict[str, str]]:
    """The normalised scope value, or the reasons it is wrong."""
    value = (scope_value or "").strip()
    if scope_kind not in SCOPE_KINDS:
        return None, {"scope_kind": "Choose all accounts, a platform or a department."}
    if scope_kind == "all":
        return None, {}
    if scope_kind == "platform":
        value = value.lower()
        return (value, {}) if value in PLATFORMS else (None, {"platform": "Choose a platform."})
    if not value:
        return None, {"department": "Name the department."}
    if len(value) > MAX_DEPARTMENT:
        return None, {"department": f"Keep the department under {MAX_DEPARTMENT} characters."}
    return value, {}


def scope_clause(scope_kind: str, scope_value: str | None) -> ColumnElement[bool]:
    """SQL condition on Grant/Account/grantee Person for a campaign's scope.

    A department scope covers the grants held by people of that department (case-insensitive).
    """
    if scope_kind == "platform":
        return Account.platform == scope_value
    if scope_kind == "department":
        return func.lower(Person.department) == (scope_value or "").lower()
    return Grant.id.is_not(None)


def open_campaign(session: Session, *, actor: User, name: str, scope_kind: str, scope_value: str | None,
                  due_at: datetime | None) -> ReviewCampaign:
    """Open a campaign: every active grant in scope becomes an item for its reviewer."""
    if not may_run_campaigns(actor):
        raise ForbiddenError("Only admins open access reviews.")
    name = (name or "").strip()
    reasons: dict[str, str] = {}
    if not name:
        reasons["name"] = "Name the campaign, for example \"Q3 access review\"."
    elif len(name) > MAX_NAME:
        reasons["name"] = f"Keep the name under {MAX_NAME} characters."
    value, scope_reasons = _scope(scope_kind, scope_value)
    reasons |= scope_reasons
    if due_at is None:
        reasons["due_at"] = "Choose a due date."
    elif due_at <= utcnow():
        reasons["due_at"] = "The due date must be in the future."
    if reasons:
        raise InvalidError(next(iter(reasons.values())), reasons)
    assert due_at is not None
    owner, manager = aliased(Person), aliased(Person)
    rows = session.execute(
        select(Grant.id, Grant.person_id, Account.business_owner_id, owner.status, Person.manager_id, manager.status)
        .join(Account, Account.id == Grant.account_id)
        .join(Person, Person.id == Grant.person_id)
        .outerjoin(owner, owner.id == Account.business_owner_id)
        .outerjoin(manager, manager.id == Person.manager_id)
        .where(Grant.status == "active", scope_clause(scope_kind, value))
        .order_by(Grant.id)
    ).all()
    if not rows:
        field = {"platform": "platform", "department": "department"}.get(scope_kind, "scope_kind")
        raise InvalidError("No active grant is in this scope, so there is nothing to review.", {field: "No active grant is in this scope."})
    campaign = ReviewCampaign(name=name, scope_kind=scope_kind, scope_value=value, due_at=due_at, created_by_id=actor.id)
    session.add(campaign)
    session.flush()
    items = [
        {"campaign_id": campaign.id, "grant_id": grant_id,
         "reviewer_id": choose_reviewer(grantee_id=person_id, owner_id=owner_id, owner_status=owner_status,
                                        manager_id=manager_id, manager_status=manager_status)}
        for grant_id, person_id, owner_id, owner_status, manager_id, manager_status in rows
    ]
    session.execute(insert(ReviewItem), items)
    unassigned = sum(1 for item in items if item["reviewer_id"] is None)
    audit.record(session, "review.campaign_opened", actor=actor, target_type="review_campaign", target_id=campaign.id,
                 details={"name": name, "scope_kind": scope_kind, "scope": value, "due_at": due_at.isoformat(),
                          "item_count": len(items), "unassigned": unassigned,
                          "reviewers": len({item["reviewer_id"] for item in items} - {None})})
    session.flush()
    return campaign


# --- deciding ----------------------------------------------------------------------------------------


def get_item(session: Session, item_id: int) -> ReviewItem:
    """Return the review item or raise NotFoundError."""
    return get_or_raise(session, ReviewItem, item_id, "No such review item.")


def decide_item(session: Session, *, actor: User, item: ReviewItem, decision: str, reason: str) -> ReviewItem:
    """Keep the grant, or revoke it through the normal revocation (reason required).

    The reviewer's authority comes from the assignment, so the revocation skips the grant
    manager check; every other revocation rule (the last admin) still applies.
    """
    if not may_decide_item(actor, item):
        raise NotFoundError("No such review item.")
    campaign = session.get(ReviewCampaign, item.campaign_id)
    assert campaign is not None
    if campaign.closed_at is not None:
        raise ConflictError("This campaign is closed; its items can no longer be decided.")
    if item.decision is not None:
        raise ConflictError("This item was decided already.")
    decision = (decision or "").strip()
    reason = (reason or "").strip()
    if decision not in DECIDABLE:
        raise InvalidError("Choose keep or revoke.", {"decision": "Choose keep or revoke."})
    if decision == "revoke" and not reason:
        raise InvalidError("Say why this access should be revoked.", {"reason": "Say why this access should be revoked."})
    if len(reason) > MAX_REASON:
        raise InvalidError(f"Keep the reason under {MAX_REASON} characters.", {"reason": "Too long."})
    grant = item.grant
    grant_status = grant.status
    if decision == "keep" and grant_status != "active":
        raise ConflictError(f"This grant is {grant_status} already; there is no access left to keep. Choose revoke to close the item.")
    # Claim the item first: of two people deciding at once, exactly one wins, and a campaign
    # closing at the same moment cannot turn a decided item into "not reviewed".
    claimed = rowcount(session.execute(
        update(ReviewItem).where(ReviewItem.id == item.id, ReviewItem.decision.is_(None))
        .values(decision=decision, reason=reason or None, decided_at=utcnow(), decided_by_id=actor.id)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise ConflictError("Someone decided this item a moment ago.")
    if decision == "revoke" and grant_status == "active":
        grants.revoke_grant(session, actor=actor, grant=grant, reason=f"Access review \u201c{campaign.name}\u201d: {reason}",
                            cause="access_review", check_permission=False)
    session.refresh(item)
    audit.record(session, "review.item_decided", actor=actor, target_type="review_item", target_id=item.id,
                 details={"campaign_id": campaign.id, "grant_id": grant.id, "decision": decision, "reason": reason or None,
                          "reviewer_id": item.reviewer_id, "on_behalf": item.reviewer_id != actor.person_id,
                          "grant_status_before": grant_status})
    return item


# --- closing -----------------------------------------------------------------------------------------


def close_campaign(session: Session, *, actor: User, campaign: ReviewCampaign) -> int:
    """Close a campaign; items still open become "not reviewed". Returns how many did."""
    if not may_run_campaigns(actor):
        raise ForbiddenError("Only admins close access reviews.")
    now = utcnow()
    claimed = rowcount(session.execute(
        update(ReviewCampaign).where(ReviewCampaign.id == campaign.id, ReviewCampaign.closed_at.is_(None))
        .values(closed_at=now, closed_by_id=actor.id).execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise ConflictError("This campaign is closed already.")
    marked = rowcount(session.execute(
        update(ReviewItem).where(ReviewItem.campaign_id == campaign.id, ReviewItem.decision.is_(None))
        .values(decision="not_reviewed", decided_at=now, decided_by_id=actor.id).execution_options(synchronize_session=False)
    ))
    session.refresh(campaign)
    counts = progress_of(session, [campaign.id])[campaign.id]
    audit.record(session, "review.campaign_closed", actor=actor, target_type="review_campaign", target_id=campaign.id,
                 details={"name": campaign.name, "item_count": counts.total, "kept": counts.keep, "revoked": counts.revoke,
                          "not_reviewed": counts.not_reviewed, "marked_not_reviewed": marked})
    return marked


# --- reading -----------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Counts of a campaign's items by decision."""

    total: int = 0
    open: int = 0
    keep: int = 0
    revoke: int = 0
    not_reviewed: int = 0

    @property
    def decided(self) -> int:
        """Items a reviewer kept or revoked."""
        return self.keep + self.revoke

    @property
    def percent(self) -> int:
        """Share of items a reviewer decided, rounded down (100 only when all are)."""
        return self.decided * 100 // self.total if self.total else 100


def progress_of(session: Session, campaign_ids: list[int]) -> dict[int, Progress]:
    """Progress of several campaigns in one query."""
    result = {cid: Progress() for cid in campaign_ids}
    if not campaign_ids:
        return result
    rows = session.execute(
        select(ReviewItem.campaign_id, ReviewItem.decision, func.count())
        .where(ReviewItem.campaign_id.in_(campaign_ids)).group_by(ReviewItem.campaign_id, ReviewItem.decision)
    )
    for campaign_id, decision, count in rows:
        progress = result[campaign_id]
        progress.total += count
        setattr(progress, decision or OPEN, getattr(progress, decision or OPEN) + count)
    return result


def list_campaigns(session: Session, *, page: int, per_page: int = 50) -> Page[ReviewCampaign]:
    """A page of campaigns, counted: open ones first (soonest due), then closed ones (latest first)."""
    query = select(ReviewCampaign).order_by(
        ReviewCampaign.closed_at.is_not(None), ReviewCampaign.closed_at.desc(), ReviewCampaign.due_at, ReviewCampaign.id.desc()
    )
    return read_page(session, query, page, per_page, count=select(func.count()).select_from(ReviewCampaign), scalars=True)


def get_campaign(session: Session, campaign_id: int) -> ReviewCampaign:
    """Return the campaign or raise NotFoundError."""
    return get_or_raise(session, ReviewCampaign, campaign_id, "No such review campaign.")


@dataclass
class ReviewerLoad:
    """One reviewer's share of a campaign."""

    reviewer_id: int | None
    name: str | None
    email: str | None
    total: int
    open: int


def reviewers_of(session: Session, campaign_id: int) -> list[ReviewerLoad]:
    """Items per reviewer (nobody included), most open first."""
    open_count = func.sum(case((ReviewItem.decision.is_(None), 1), else_=0))
    rows = session.execute(
        select(ReviewItem.reviewer_id, Person.full_name, Person.email, func.count(), open_count)
        .outerjoin(Person, Person.id == ReviewItem.reviewer_id)
        .where(ReviewItem.campaign_id == campaign_id)
        .group_by(ReviewItem.reviewer_id, Person.full_name, Person.email)
        .order_by(open_count.desc(), Person.full_name)
    )
    return [ReviewerLoad(rid, name, email, total, int(open_ or 0)) for rid, name, email, total, open_ in rows]


#: Any select over review items (the page reads rows of objects, the API rows of columns).
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass
class ItemFilter:
    """Filters of a campaign's item list."""

    decision: str | None = None
    #: A reviewer's person id, or NOBODY.
    reviewer: str | None = None
    platform: str | None = None
    q: str | None = None


def filter_items(query: S, flt: ItemFilter, grantee: Any) -> S:
    """``query`` (over review items joined to their grant, account and the grantee as ``grantee``) narrowed by ``flt``:
    the item list's filters, for the page and the API alike."""
    if flt.decision == OPEN:
        query = query.where(ReviewItem.decision.is_(None))
    elif flt.decision:
        query = query.where(ReviewItem.decision == flt.decision)
    if flt.reviewer == NOBODY:
        query = query.where(ReviewItem.reviewer_id.is_(None))
    elif flt.reviewer and flt.reviewer.isdecimal() and len(flt.reviewer) < 10:
        query = query.where(ReviewItem.reviewer_id == int(flt.reviewer))
    if flt.platform:
        query = query.where(Account.platform == flt.platform)
    if flt.q:
        text = flt.q.strip().lower()
        term, handle = f"%{text}%", f"%{text.lstrip('@')}%"
        query = query.where(or_(func.lower(grantee.full_name).like(term), grantee.email.like(term),
                                Account.handle.like(handle), func.lower(Account.display_name).like(term)))
    return query


def list_items(session: Session, campaign_id: int, flt: ItemFilter, *, page: int, per_page: int = 50) -> Page[Row[ReviewItem, Person | None]]:
    """One page of a campaign's items with their reviewer, counted."""
    reviewer = aliased(Person)
    grantee = aliased(Person)
    query = (
        select(ReviewItem, reviewer)
        .join(Grant, Grant.id == ReviewItem.grant_id)
        .join(Account, Account.id == Grant.account_id)
        .join(grantee, grantee.id == Grant.person_id)
        .outerjoin(reviewer, reviewer.id == ReviewItem.reviewer_id)
        .where(ReviewItem.campaign_id == campaign_id)
    )
    query = filter_items(query, flt, grantee)
    return read_page(session, query.order_by(ReviewItem.decision.is_not(None), Account.display_name, grantee.full_name, ReviewItem.id),
                     page, per_page, count=count_of(query.with_only_columns(ReviewItem.id)), unique=True)


def open_items_for(session: Session, person_id: int, *, limit: int = 200) -> tuple[list[tuple[ReviewItem, ReviewCampaign]], int]:
    """A reviewer's items still waiting in open campaigns (soonest due first), and how many there are."""
    items, count = _open_items_statements()
    rows = session.execute(items, {"person_id": person_id, "limit": limit}).unique().all()
    # A short list holds all of them: counting is needed only when it is full.
    total = len(rows) if len(rows) < limit else session.scalar(count, {"person_id": person_id}) or 0
    return [(item, campaign) for item, campaign in rows], total


def _open_items_statements() -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """A reviewer's open items, and their count, over the parameters ``person_id`` and ``limit``."""
    query = (
        select(ReviewItem, ReviewCampaign)
        .join(ReviewCampaign, ReviewCampaign.id == ReviewItem.campaign_id)
        .where(ReviewItem.reviewer_id == bindparam("person_id", type_=Integer), ReviewItem.decision.is_(None),
               ReviewCampaign.closed_at.is_(None))
    )
    items = query.order_by(ReviewCampaign.due_at, ReviewItem.id).limit(bindparam("limit", type_=Integer))
    count = select(func.count()).select_from(query.with_only_columns(ReviewItem.id).subquery())
    return items, count


REPORT_COLUMNS = ("item_id", "account", "platform", "handle", "person", "person_email", "role", "reviewer", "reviewer_email",
                  "decision", "reason", "decided_at", "decided_by")


def iter_report(session: Session, campaign_id: int, *, batch: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Every item of a campaign as REPORT_COLUMNS values, in batches (keyset on the item id)."""
    grantee, reviewer = aliased(Person), aliased(Person)
    query = (
        select(ReviewItem.id, Account.display_name, Account.platform, Account.handle, grantee.full_name, grantee.email,
               Role.name, reviewer.full_name, reviewer.email, ReviewItem.decision, ReviewItem.reason, ReviewItem.decided_at,
               User.email)
        .select_from(ReviewItem)
        .join(Grant, Grant.id == ReviewItem.grant_id)
        .join(Account, Account.id == Grant.account_id)
        .join(grantee, grantee.id == Grant.person_id)
        .join(Role, Role.code == Grant.role_code)
        .outerjoin(reviewer, reviewer.id == ReviewItem.reviewer_id)
        .outerjoin(User, User.id == ReviewItem.decided_by_id)
        .where(ReviewItem.campaign_id == campaign_id)
    )
    last = 0
    while True:
        rows = session.execute(query.where(ReviewItem.id > last).order_by(ReviewItem.id).limit(batch)).all()
        for row in rows:
            values = list(row)
            values[9] = values[9] or OPEN
            yield tuple(values)
        if len(rows) < batch:
            return
        last = rows[-1][0]
