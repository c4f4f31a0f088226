"""The admin's Jobs page: when jobs last ran, what each step did, and emails that failed for good."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from govern.db import get_session
from govern.errors import InvalidError, NotFoundError
from govern.forms import FlaskForm
from govern.jobs import services
from govern.jobs.steps import STEPS
from govern.notifications import services as notifications
from govern.shipping.sinks import destination, lags
from govern.web import page_arg, permission

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

PAGE_SIZE = 20
OUTBOX_PAGE_SIZE = 20


@bp.route("/")
@permission("jobs.read")
def index() -> str:
    """Runs newest first, the registered steps, and the outbox's waiting and failed emails (each paginated)."""
    db = get_session()
    runs = services.list_runs(db, page=page_arg(), per_page=PAGE_SIZE)
    last = services.last_finished_run(db)
    failed = notifications.list_outbox(db, status="failed", page=page_arg("failed_page"), per_page=OUTBOX_PAGE_SIZE)
    waiting = notifications.list_outbox(db, status="pending", page=page_arg("waiting_page"), per_page=OUTBOX_PAGE_SIZE)
    return render_template(
        "jobs/index.html", runs=runs, steps=STEPS,
        last=last, stale=services.staleness(db),
        outbox=notifications.outbox_summary(db), failed=failed, waiting=waiting,
        smtp_missing=services.smtp_missing(last, bool(current_app.config.get("SMTP_HOST"))),
        max_attempts=notifications.MAX_ATTEMPTS,
        sink_lags=lags(db), destination=destination,
        form=FlaskForm(),
    )


@bp.route("/outbox/<int:message_id>/retry", methods=["POST"])
@permission("jobs.manage")
def retry_email(message_id: int) -> Response:
    """Queue a permanently failed email again."""
    db = get_session()
    if FlaskForm().validate_on_submit():
        try:
            notifications.retry_email(db, actor=current_user, message_id=message_id)
        except NotFoundError:
            db.rollback()
            flash("No such email.", "error")
        except InvalidError as exc:
            db.rollback()
            flash(exc.message, "error")
        else:
            db.commit()
            flash("The email is queued again; the next jobs run sends it.", "success")
    return redirect(url_for("jobs.index"))
