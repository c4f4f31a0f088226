"""The Notifications page and the unread count in the navigation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, session, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from govern.db import get_session
from govern.errors import NotFoundError
from govern.forms import FlaskForm
from govern.notifications import services
from govern.web import STAFF, ensure_visible, page_arg, permission

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

PAGE_SIZE = 30


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"unread_notifications": unread_for_current_user}


def unread_for_current_user() -> int:
    """The signed-in user's unread count: read with the session, else one query; cached on g."""
    if "unread_notifications" not in g:
        count = 0
        read_with_session = getattr(session, "unread_notifications", None)
        if read_with_session is not None and getattr(session, "user", None) is current_user._get_current_object():
            count = read_with_session  # as the request began
        elif getattr(current_user, "is_authenticated", False):
            db = get_session()
            try:
                count = services.unread_count(db, current_user.id)
            except SQLAlchemyError:  # an error page for a broken transaction still renders
                db.rollback()
        g.unread_notifications = count
    value: int = g.unread_notifications
    return value


@bp.route("/")
@permission(STAFF)
def index() -> str:
    """The user's notifications, newest first."""
    rows = services.list_notifications(get_session(), current_user.id, page=page_arg(), per_page=PAGE_SIZE)
    return render_template("notifications/index.html", rows=rows, form=FlaskForm())


@bp.route("/<int:notification_id>/read", methods=["POST"])
@permission(STAFF)
def mark_read(notification_id: int) -> Response:
    """Mark one notification read."""
    db = get_session()
    if FlaskForm().validate_on_submit():
        try:
            services.mark_read(db, actor=current_user, notification_id=notification_id)
        except NotFoundError:
            db.rollback()
            ensure_visible(False)
        db.commit()
    return redirect(url_for("notifications.index"))


@bp.route("/read-all", methods=["POST"])
@permission(STAFF)
def mark_all_read() -> Response:
    """Mark every notification read."""
    db = get_session()
    if FlaskForm().validate_on_submit():
        count = services.mark_all_read(db, actor=current_user)
        db.commit()
        flash(f"Marked {count} notification(s) read." if count else "Nothing was unread.", "success")
    return redirect(url_for("notifications.index"))
