"""Pages of the reviews area: campaigns, their progress and report, and reviewers' decisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from govern.accounts.models import PLATFORM_LABELS, PLATFORMS, Account
from govern.auth.models import User
from govern.connectors import attestations
from govern.connectors.models import ATTESTED_PLATFORMS
from govern.csvexport import csv_chunks
from govern.db import database, get_session, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants.models import Grant
from govern.reviews import services
from govern.reviews.forms import CampaignForm, CloseForm, DecideForm
from govern.reviews.models import DECISIONS, ReviewCampaign, ReviewItem
from govern.web import end_of_local_day, ensure_visible, form_errors, page_arg, permission, safe_next

bp = Blueprint("reviews", __name__, url_prefix="/reviews")

PAGE_SIZE = 50


def _campaign_or_404(campaign_id: int) -> ReviewCampaign:
    campaign = get_session().get(ReviewCampaign, campaign_id)
    ensure_visible(campaign is not None)
    assert campaign is not None
    return campaign


def _users_by_id(db: Any, ids: set[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    return {u.id: u for u in db.scalars(select(User).where(User.id.in_(wanted)))} if wanted else {}


@bp.route("/")
@permission("reviews.read")
def index() -> str:
    db = get_session()
    campaigns = services.list_campaigns(db, page=page_arg(), per_page=PAGE_SIZE)
    return render_template("reviews/index.html", campaigns=campaigns, now=utcnow(),
                           progress=services.progress_of(db, [c.id for c in campaigns.items]),
                           users=_users_by_id(db, {c.created_by_id for c in campaigns.items}))


@bp.route("/new", methods=["GET", "POST"])
@permission("reviews.manage")
def new() -> Any:
    db = get_session()
    form = CampaignForm()
    if form.validate_on_submit():
        kind = form.scope_kind.data or ""
        value = form.platform.data if kind == "platform" else form.department.data if kind == "department" else None
        due = form.due_on.data
        try:
            campaign = services.open_campaign(db, actor=current_user, name=form.name.data or "", scope_kind=kind, scope_value=value,
                                              due_at=end_of_local_day(due))
        except (InvalidError, ConflictError, ForbiddenError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.name, fields={"due_at": "due_on"})
            return _new_page(form), 200
        db.commit()
        progress = services.progress_of(db, [campaign.id])[campaign.id]
        flash(f"Campaign opened with {progress.total} item(s); reviewers see them on their home page.", "success")
        return redirect(url_for("reviews.detail", campaign_id=campaign.id))
    return _new_page(form)


def _new_page(form: CampaignForm) -> str:
    departments = get_session().scalars(
        select(Person.department).where(Person.department.is_not(None)).distinct().order_by(Person.department).limit(500)
    )
    return render_template("reviews/new.html", form=form, departments=list(departments))


def _item_filter() -> services.ItemFilter:
    args = request.args
    decision = args.get("decision") or None
    platform = args.get("platform") or None
    return services.ItemFilter(
        decision=decision if decision in (services.OPEN, *DECISIONS) else None,
        reviewer=(args.get("reviewer") or "")[:12] or None,
        platform=platform if platform in PLATFORMS else None,
        q=(args.get("q") or "").strip()[:100] or None,
    )


@bp.route("/<int:campaign_id>")
@permission("reviews.read")
def detail(campaign_id: int) -> str:
    db = get_session()
    campaign = _campaign_or_404(campaign_id)
    flt = _item_filter()
    item_page = services.list_items(db, campaign.id, flt, page=page_arg(), per_page=PAGE_SIZE)
    params = {k: v for k, v in (("decision", flt.decision), ("reviewer", flt.reviewer), ("platform", flt.platform), ("q", flt.q)) if v}
    return render_template(
        "reviews/detail.html", campaign=campaign, item_page=item_page, params=params, now=utcnow(),
        progress=services.progress_of(db, [campaign.id])[campaign.id],
        reviewers=services.reviewers_of(db, campaign.id),
        users=_users_by_id(db, {campaign.created_by_id, campaign.closed_by_id} | {i.decided_by_id for i, _ in item_page.items}),
        decidable={i.id for i, _ in item_page.items if i.decision is None and services.may_decide_item(current_user, i)},
        platforms=PLATFORM_LABELS,
        attested=_attestations_of(db, campaign.id),
    )


def _attestations_of(db: Any, campaign_id: int) -> list[tuple[Account, Any]]:
    """The YouTube and X accounts the campaign reviews, each with its owner's latest member attestation."""
    accounts = list(db.scalars(
        select(Account).join(Grant, Grant.account_id == Account.id).join(ReviewItem, ReviewItem.grant_id == Grant.id)
        .where(ReviewItem.campaign_id == campaign_id, Account.platform.in_(ATTESTED_PLATFORMS))
        .distinct().order_by(Account.display_name)))
    latest = attestations.latest_attestations(db, [a.id for a in accounts])
    return [(a, latest.get(a.id)) for a in accounts]


@bp.route("/<int:campaign_id>/close", methods=["POST"])
@permission("reviews.manage")
def close(campaign_id: int) -> WerkzeugResponse:
    db = get_session()
    campaign = _campaign_or_404(campaign_id)
    if not CloseForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("reviews.detail", campaign_id=campaign_id))
    try:
        marked = services.close_campaign(db, actor=current_user, campaign=campaign)
    except (ConflictError, ForbiddenError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("reviews.detail", campaign_id=campaign_id))
    db.commit()
    flash(f"Campaign closed; {marked} open item(s) marked not reviewed.", "success")
    return redirect(url_for("reviews.detail", campaign_id=campaign_id))


@bp.route("/<int:campaign_id>/report.csv")
@permission("reviews.read")
def report_csv(campaign_id: int) -> Response:
    campaign_id = _campaign_or_404(campaign_id).id
    # A session of its own, closed when the download ends: the request's session is gone by then.
    session = database(current_app).sessionmaker()

    def chunks() -> Iterator[str]:
        try:
            yield from csv_chunks(services.REPORT_COLUMNS, services.iter_report(session, campaign_id))
        finally:
            session.close()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(chunks(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="govern-review-{campaign_id}-{stamp}.csv"'})


@bp.route("/mine")
@permission("reviews.decide")
def mine() -> str:
    db = get_session()
    items, total = services.open_items_for(db, current_user.person_id)
    return render_template("reviews/mine.html", items=items, total=total, now=utcnow(), platforms=PLATFORM_LABELS)


@bp.route("/items/<int:item_id>/decide", methods=["POST"])
@permission("reviews.decide")
def decide(item_id: int) -> WerkzeugResponse:
    db = get_session()
    item = db.get(ReviewItem, item_id)
    ensure_visible(item is not None and services.may_decide_item(current_user, item))
    assert item is not None
    form = DecideForm()
    back = safe_next(form.next.data, url_for("reviews.mine"))
    if not form.validate_on_submit():
        flash("Keep the reason under 1,500 characters, and send the form again.", "error")
        return redirect(back)
    try:
        services.decide_item(db, actor=current_user, item=item, decision=form.decision.data or "", reason=form.reason.data or "")
    except NotFoundError:
        db.rollback()
        ensure_visible(False)
        raise  # unreachable: ensure_visible aborted
    except (InvalidError, ConflictError, ForbiddenError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(back)
    grant = item.grant
    db.commit()
    if item.decision == "revoke":
        flash(f"Revoked: {grant.person.full_name} no longer holds {grant.role.name} on {grant.account.display_name}. "
              "Remove them on the platform too and confirm it on the account page.", "warning")
    else:
        flash(f"Kept: {grant.person.full_name} keeps {grant.role.name} on {grant.account.display_name}.", "success")
    return redirect(back)
