"""Audit sinks on the admin's Jobs page: add one, pause, resume, remove."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from govern.db import get_session
from govern.errors import InvalidError, NotFoundError
from govern.forms import FlaskForm
from govern.shipping import sinks as sink_services
from govern.shipping.forms import SinkForm
from govern.web import form_errors, permission

bp = Blueprint("sinks", __name__, url_prefix="/jobs/sinks")


def _box() -> Any:
    return sink_services.secret_box([current_app.config["SECRET_KEY"], *current_app.config["SECRET_KEY_FALLBACKS"]])


@bp.route("/new", methods=["GET", "POST"])
@permission("jobs.manage")
def new() -> Any:
    """Add a sink; an HTTPS sink's signing secret is shown once, on the page that answers the form."""
    form = SinkForm()
    if form.validate_on_submit():
        db = get_session()
        data = sink_services.SinkInput(
            name=form.name.data or "", kind=form.kind.data or "", host=form.host.data or "", port=form.port.data,
            tls=bool(form.tls.data), ca_file=form.ca_file.data or "", line_format=form.line_format.data or "rfc5424",
            url=form.url.data or "", sign=bool(form.sign.data))
        try:
            sink, secret = sink_services.create_sink(db, actor=current_user, data=data, box=_box(),
                                                     allow_plain_loopback=not current_app.config["IS_PRODUCTION"])
        except InvalidError as exc:
            db.rollback()
            form_errors(form, exc, default=form.name)
        else:
            db.commit()
            return render_template("shipping/created.html", sink=sink, secret=secret,
                                   destination=sink_services.destination(sink))
    return render_template("shipping/new.html", form=form), 400 if form.errors else 200


def _change(sink_id: int, enabled: bool | None) -> Response:
    db = get_session()
    if FlaskForm().validate_on_submit():
        try:
            if enabled is None:
                sink_services.delete_sink(db, actor=current_user, sink_id=sink_id)
                message = "The sink was removed."
            else:
                sink_services.set_enabled(db, actor=current_user, sink_id=sink_id, enabled=enabled)
                message = "The sink ships again from where it stopped." if enabled else "The sink is paused."
        except NotFoundError:
            db.rollback()
            flash("No such sink.", "error")
        else:
            db.commit()
            flash(message, "success")
    return redirect(url_for("jobs.index") + "#audit-sinks")


@bp.route("/<int:sink_id>/pause", methods=["POST"])
@permission("jobs.manage")
def pause(sink_id: int) -> Response:
    return _change(sink_id, False)


@bp.route("/<int:sink_id>/resume", methods=["POST"])
@permission("jobs.manage")
def resume(sink_id: int) -> Response:
    return _change(sink_id, True)


@bp.route("/<int:sink_id>/remove", methods=["POST"])
@permission("jobs.manage")
def remove(sink_id: int) -> Response:
    return _change(sink_id, None)
