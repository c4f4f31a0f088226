"""Home page by role, and a health check for load balancers."""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from flask_login import current_user
from sqlalchemy import text

from govern.accounts.models import PLATFORM_LABELS
from govern.auth.login import count_unused_recovery_codes
from govern.backup import schedule as backups
from govern.db import get_session, utcnow
from govern.home import services
from govern.jobs import services as jobs
from govern.offboarding.permissions import may_manage
from govern.offboarding.reading import blockers_of, list_offboardings, progress_of
from govern.policies import services as policies
from govern.reviews import services as reviews
from govern.web import PUBLIC, STAFF, may, permission

bp = Blueprint("home", __name__)

#: Review items listed on the home page; the rest are one click away on /reviews/mine.
HOME_REVIEW_ITEMS = 10
#: Open offboardings listed on HR's home page.
HOME_OFFBOARDINGS = 20


@bp.route("/")
@permission(STAFF)
def index() -> str:
    db = get_session()
    now = utcnow()
    review_items, review_total = reviews.open_items_for(db, current_user.person_id, limit=HOME_REVIEW_ITEMS)
    listing = list_offboardings(db, current_user, per_page=HOME_OFFBOARDINGS) if may_manage(current_user) else None
    offboardings, offboarding_total = (listing.items, listing.total or 0) if listing is not None else ([], 0)
    sees_jobs = may(current_user, "jobs.read")
    return render_template(
        "home/index.html",
        user=current_user,
        codes_left=count_unused_recovery_codes(db, current_user),
        policies_to_accept=policies.policies_to_accept(db, current_user.person_id),
        review_items=review_items,
        review_total=review_total,
        platforms=PLATFORM_LABELS,
        now=now,
        waiting=services.waiting_for(db, current_user, now),
        jobs_notice=jobs.staleness(db) if sees_jobs else None,
        backup_notice=backups.staleness(db, now=now) if sees_jobs else None,
        last_backup=backups.last_good(db) if sees_jobs else None,
        offboardings=offboardings,
        offboarding_total=offboarding_total,
        offboarding_progress=progress_of(db, [o.id for o in offboardings]),
        offboarding_blockers=blockers_of,
    )


@bp.route("/healthz")
@permission(PUBLIC)
def healthz() -> Response:
    get_session().execute(text("SELECT 1"))
    return Response("ok\n", mimetype="text/plain")
