"""Access reviews: campaigns and their progress, opening and closing them, items, and reviewers' decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response
from flask_login import current_user
from pydantic import Field, StringConstraints
from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from govern.accounts.models import PLATFORMS, Account
from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created
from govern.api.schemas import Moment, Out, Paging, Strict
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session
from govern.directory.models import Person
from govern.errors import NotFoundError
from govern.grants.models import Grant
from govern.reviews import services as reviews
from govern.reviews.models import SCOPE_KINDS, ReviewCampaign, ReviewItem

TAG = ["reviews"]
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]
ScopeKind = Literal[SCOPE_KINDS]  # type: ignore[valid-type]
#: The item list's decision filter: "open" is an item nobody decided yet.
DecisionFilter = Literal["open", "keep", "revoke", "not_reviewed"]
#: Listing your own items is what deciding starts from, so it takes the scope a reviewer can hold:
#: reviews:read needs reviews.read (admins and auditors), which a plain reviewer does not have.
MINE_SCOPE = "reviews:read"


class ProgressOut(Out):
    total: int
    open: int
    keep: int
    revoke: int
    not_reviewed: int
    percent: int = Field(description="Share of items a reviewer kept or revoked, rounded down.")


class ReviewerLoadOut(Out):
    reviewer_id: int | None = Field(description="null: the items nobody could be assigned to.")
    name: str | None
    total: int
    open: int


class CampaignOut(Out):
    id: int
    name: str
    scope_kind: str
    scope_value: str | None = Field(description="The platform or department of a scoped campaign.")
    due_at: datetime
    created_at: datetime
    created_by_id: int | None
    closed_at: datetime | None
    closed_by_id: int | None
    progress: ProgressOut


class CampaignDetail(CampaignOut):
    reviewers: list[ReviewerLoadOut]


class CampaignList(Out):
    items: list[CampaignOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class CampaignsQuery(Paging):
    status: Literal["open", "closed"] | None = Field(None, description="Only open or only closed campaigns.")


class CampaignCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=reviews.MAX_NAME)]
    scope_kind: ScopeKind = Field(description="all accounts, one platform, or one department's grants.")
    platform: Platform | None = Field(None, description="The platform of a platform scope.")
    department: Annotated[str, StringConstraints(max_length=reviews.MAX_DEPARTMENT)] | None = Field(
        None, description="The department of a department scope (its people's grants).")
    due_at: Moment = Field(description="When reviewers should be done; in the future, with a time zone.")


class ItemOut(Out):
    id: int
    campaign_id: int
    grant_id: int
    person_id: int
    person_name: str
    account_id: int
    account_name: str
    platform: str
    handle: str
    role_code: str
    reviewer_id: int | None
    reviewer_name: str | None
    decision: str | None = Field(description="keep, revoke or not_reviewed; null while open.")
    reason: str | None
    decided_at: datetime | None
    decided_by_id: int | None


class ItemList(Out):
    items: list[ItemOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class ItemsQuery(Paging):
    decision: DecisionFilter | None = None
    reviewer: Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,8}|none)$")] | None = Field(
        None, description="A reviewer's person id, or none for the unassigned items.")
    platform: Platform | None = None
    q: str | None = Field(None, max_length=100, description="Part of the holder's name or email, or the account.")


class MyItemOut(Out):
    id: int
    campaign_id: int
    campaign_name: str
    due_at: datetime
    grant_id: int
    person_id: int
    person_name: str
    account_id: int
    account_name: str
    platform: str
    handle: str
    role_code: str
    role_name: str


class MyItems(Out):
    items: list[MyItemOut]
    total: int = Field(description="How many open items there are; more than items when limit cut the list.")


class MineQuery(Strict):
    limit: int = Field(200, ge=1, le=200, description="At most this many items, soonest due first.")


class Decision(Strict):
    decision: Literal["keep", "revoke"]
    reason: Annotated[str, StringConstraints(max_length=reviews.MAX_REASON)] = Field(
        "", description="Why; required to revoke.")


def _campaign_out(campaign: ReviewCampaign, progress: reviews.Progress) -> CampaignOut:
    return CampaignOut(id=campaign.id, name=campaign.name, scope_kind=campaign.scope_kind,
                       scope_value=campaign.scope_value, due_at=campaign.due_at, created_at=campaign.created_at,
                       created_by_id=campaign.created_by_id, closed_at=campaign.closed_at,
                       closed_by_id=campaign.closed_by_id, progress=_progress_out(progress))


def _progress_out(progress: reviews.Progress) -> ProgressOut:
    return ProgressOut(total=progress.total, open=progress.open, keep=progress.keep, revoke=progress.revoke,
                       not_reviewed=progress.not_reviewed, percent=progress.percent)


def _detail(campaign: ReviewCampaign) -> CampaignDetail:
    session = get_session()
    base = _campaign_out(campaign, reviews.progress_of(session, [campaign.id])[campaign.id])
    loads = [ReviewerLoadOut(reviewer_id=r.reviewer_id, name=r.name, total=r.total, open=r.open)
             for r in reviews.reviewers_of(session, campaign.id)]
    return CampaignDetail(**base.model_dump(), reviewers=loads)


def _items_statement(flt: reviews.ItemFilter) -> Select[*tuple[Any, ...]]:
    """A campaign's items with their holder, account and reviewer, as the page filters them (item id first)."""
    reviewer, grantee = aliased(Person), aliased(Person)
    query = (
        select(ReviewItem.id, ReviewItem.campaign_id, ReviewItem.grant_id, Grant.person_id,
               grantee.full_name.label("person_name"), Grant.account_id, Account.display_name.label("account_name"),
               Account.platform, Account.handle, Grant.role_code, ReviewItem.reviewer_id,
               reviewer.full_name.label("reviewer_name"), ReviewItem.decision, ReviewItem.reason,
               ReviewItem.decided_at, ReviewItem.decided_by_id)
        .select_from(ReviewItem)
        .join(Grant, Grant.id == ReviewItem.grant_id)
        .join(Account, Account.id == Grant.account_id)
        .join(grantee, grantee.id == Grant.person_id)
        .outerjoin(reviewer, reviewer.id == ReviewItem.reviewer_id)
    )
    return reviews.filter_items(query, flt, grantee)


def _item(item_id: int) -> ItemOut:
    row = get_session().execute(_items_statement(reviews.ItemFilter()).where(ReviewItem.id == item_id)).one()
    return ItemOut.model_validate(row)


_CAMPAIGN = {"GetCampaign": Link("getReviewCampaign", {"campaign_id": "$response.body#/id"}),
             "CampaignItems": Link("listReviewItems", {"campaign_id": "$response.body#/id"})}


@bp.get("/reviews")
@endpoint(operation_id="listReviewCampaigns", permission_name="reviews.read", scope="reviews:read", tags=TAG,
          query=CampaignsQuery, responses={200: CampaignList})
def list_campaigns() -> Response:
    """Access review campaigns with their progress, in id order."""
    args = query_of(CampaignsQuery)
    session = get_session()
    statement = select(ReviewCampaign)
    if args.status == "open":
        statement = statement.where(ReviewCampaign.closed_at.is_(None))
    elif args.status == "closed":
        statement = statement.where(ReviewCampaign.closed_at.is_not(None))
    page = cursors.read_slice(session, statement, ReviewCampaign.id, cursor=args.cursor, limit=args.limit)
    progress = reviews.progress_of(session, [c.id for c in page.rows])
    return answer_page(CampaignList, [_campaign_out(c, progress[c.id]) for c in page.rows], page.next_cursor)


@bp.post("/reviews")
@endpoint(operation_id="openReviewCampaign", permission_name="reviews.manage", scope="reviews:write", tags=TAG,
          body=CampaignCreate, responses={201: CampaignDetail, 409: None}, creates=True, links=_CAMPAIGN)
def open_campaign() -> Response:
    """Open a campaign: every active grant in scope becomes an item for its reviewer."""
    data = body_of(CampaignCreate)
    value = {"platform": data.platform, "department": data.department}.get(data.scope_kind)

    def change() -> tuple[CampaignDetail, str]:
        campaign = reviews.open_campaign(get_session(), actor=current_user, name=data.name, scope_kind=data.scope_kind,
                                         scope_value=value, due_at=data.due_at)
        return _detail(campaign), f"/api/v1/reviews/{campaign.id}"

    return created(change)


@bp.get("/reviews/<int:campaign_id>")
@endpoint(operation_id="getReviewCampaign", permission_name="reviews.read", scope="reviews:read", tags=TAG,
          responses={200: CampaignDetail, 404: None})
def get_campaign(campaign_id: int) -> Response:
    """One campaign: its progress and each reviewer's share."""
    return answer(_detail(reviews.get_campaign(get_session(), campaign_id)))


@bp.get("/reviews/<int:campaign_id>/items")
@endpoint(operation_id="listReviewItems", permission_name="reviews.read", scope="reviews:read", tags=TAG,
          query=ItemsQuery, responses={200: ItemList, 404: None})
def list_items(campaign_id: int) -> Response:
    """A campaign's items with holder, account and reviewer, filtered as on the page, in id order."""
    args = query_of(ItemsQuery)
    session = get_session()
    campaign = reviews.get_campaign(session, campaign_id)
    flt = reviews.ItemFilter(decision=args.decision, reviewer=args.reviewer, platform=args.platform,
                             q=(args.q or "").strip() or None)
    statement = _items_statement(flt).where(ReviewItem.campaign_id == campaign.id)
    page = cursors.read_slice(session, statement, ReviewItem.id, cursor=args.cursor, limit=args.limit, scalars=False)
    return answer_page(ItemList, [ItemOut.model_validate(row) for row in page.rows], page.next_cursor)


@bp.post("/reviews/<int:campaign_id>/close")
@endpoint(operation_id="closeReviewCampaign", permission_name="reviews.manage", scope="reviews:write", tags=TAG,
          responses={200: CampaignDetail, 404: None, 409: None})
def close_campaign(campaign_id: int) -> Response:
    """Close a campaign; items still open become not_reviewed."""
    session = get_session()
    campaign = reviews.get_campaign(session, campaign_id)
    reviews.close_campaign(session, actor=current_user, campaign=campaign)
    return changed(lambda: _detail(campaign))


@bp.get("/review-items/mine")
@endpoint(operation_id="listMyReviewItems", permission_name="reviews.decide", scope=MINE_SCOPE, tags=TAG,
          query=MineQuery, responses={200: MyItems})
def my_items() -> Response:
    """The items waiting for the token's user in open campaigns, soonest due first."""
    rows, total = reviews.open_items_for(get_session(), current_user.person_id, limit=query_of(MineQuery).limit)
    items = [MyItemOut(id=item.id, campaign_id=campaign.id, campaign_name=campaign.name, due_at=campaign.due_at,
                       grant_id=item.grant_id, person_id=item.grant.person_id, person_name=item.grant.person.full_name,
                       account_id=item.grant.account_id, account_name=item.grant.account.display_name,
                       platform=item.grant.account.platform, handle=item.grant.account.handle,
                       role_code=item.grant.role_code, role_name=item.grant.role.name)
             for item, campaign in rows]
    return answer(MyItems(items=items, total=total))


@bp.post("/review-items/<int:item_id>/decide")
@endpoint(operation_id="decideReviewItem", permission_name="reviews.decide", scope="reviews:write", tags=TAG,
          body=Decision, responses={200: ItemOut, 404: None, 409: None})
def decide(item_id: int) -> Response:
    """Keep the grant, or revoke it (with a reason): the assigned reviewer, or an admin."""
    session = get_session()
    item = session.get(ReviewItem, item_id)
    if item is None or not reviews.may_decide_item(current_user, item):
        raise NotFoundError("No such review item.")
    data = body_of(Decision)
    reviews.decide_item(session, actor=current_user, item=item, decision=data.decision, reason=data.reason)
    return changed(lambda: _item(item_id))
