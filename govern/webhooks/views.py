"""Webhook endpoints for admins, and each person's notification channels."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from govern.db import get_session
from govern.errors import InvalidError, NotFoundError
from govern.forms import FlaskForm
from govern.notifications import services as notifications
from govern.notifications.models import NOTIFICATION_GROUPS
from govern.web import STAFF, form_errors, permission
from govern.webhooks import chat, delivery, subscriptions
from govern.webhooks.events import EVENT_TYPES
from govern.webhooks.forms import ChatChannelForm, PreferencesForm, WebhookForm

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")
account_bp = Blueprint("notification_settings", __name__, url_prefix="/account/notifications")


def _box() -> Any:
    return subscriptions.webhook_box([current_app.config["SECRET_KEY"], *current_app.config["SECRET_KEY_FALLBACKS"]])


def _loopback_allowed() -> bool:
    return not current_app.config["IS_PRODUCTION"]


@bp.route("/")
@permission("webhooks.manage")
def index() -> str:
    db = get_session()
    return render_template("webhooks/index.html", subscriptions=subscriptions.list_subscriptions(db),
                           event_types=EVENT_TYPES, form=FlaskForm())


@bp.route("/new", methods=["GET", "POST"])
@permission("webhooks.manage")
def new() -> Any:
    form = WebhookForm()
    if form.validate_on_submit():
        db = get_session()
        data = subscriptions.SubscriptionInput(name=form.name.data or "", url=form.url.data or "",
                                               format=form.format.data or "", event_types=tuple(form.event_types.data or ()))
        try:
            sub, secret = subscriptions.create_subscription(db, actor=current_user, data=data, box=_box(),
                                                            allow_plain_loopback=_loopback_allowed())
        except InvalidError as exc:
            db.rollback()
            form_errors(form, exc, default=form.name, fields={"event_types": "event_types"})
        else:
            db.commit()
            return render_template("webhooks/created.html", sub=sub, secret=secret)
    return render_template("webhooks/new.html", form=form), 400 if form.errors else 200


def _act(sub_id: int, what: str) -> Response:
    db = get_session()
    if FlaskForm().validate_on_submit():
        try:
            if what == "delete":
                subscriptions.delete_subscription(db, actor=current_user, sub_id=sub_id)
                message = "The webhook was removed."
            elif what == "test":
                sub = subscriptions.get_subscription(db, sub_id)
                delivery.send_test(db, sub, box=_box(), base_url=current_app.config["BASE_URL"])
                message = f"A test event reached {sub.url_hint}."
            else:
                subscriptions.set_enabled(db, actor=current_user, sub_id=sub_id, enabled=what == "enable")
                message = ("The webhook is on again: it resumes from the first event it missed." if what == "enable"
                           else "The webhook is off: events wait for it until it is on again.")
        except NotFoundError:
            db.rollback()
            flash("No such webhook.", "error")
        except delivery.DeliveryError as exc:
            db.rollback()
            flash(f"The test did not arrive: {exc}.", "error")
        else:
            db.commit()
            flash(message, "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/<int:sub_id>/disable", methods=["POST"])
@permission("webhooks.manage")
def disable(sub_id: int) -> Response:
    return _act(sub_id, "disable")


@bp.route("/<int:sub_id>/enable", methods=["POST"])
@permission("webhooks.manage")
def enable(sub_id: int) -> Response:
    return _act(sub_id, "enable")


@bp.route("/<int:sub_id>/test", methods=["POST"])
@permission("webhooks.manage")
def test(sub_id: int) -> Response:
    return _act(sub_id, "test")


@bp.route("/<int:sub_id>/delete", methods=["POST"])
@permission("webhooks.manage")
def delete(sub_id: int) -> Response:
    return _act(sub_id, "delete")


# --- a person's own channels -------------------------------------------------------------------------


@account_bp.route("/", methods=["GET", "POST"])
@permission(STAFF)
def settings() -> Any:
    db = get_session()
    current = notifications.preferences_of(db, current_user.id)
    form = PreferencesForm(data={f"group_{g}": c for g, c in current.items()})
    if form.validate_on_submit():
        choices = {group: getattr(form, f"group_{group}").data for group in NOTIFICATION_GROUPS}
        channel = chat.chat_channel_of(db, current_user.id)
        if channel is None and "chat" in choices.values():
            flash("Add your chat first: without it, chat notifications have nowhere to go.", "error")
        else:
            notifications.set_preferences(db, actor=current_user, choices=choices)
            db.commit()
            flash("Your notification settings are saved.", "success")
            return redirect(url_for("notification_settings.settings"))
    return _render(form, ChatChannelForm()), 400 if form.errors else 200


def _render(form: PreferencesForm, chat_form: ChatChannelForm) -> str:
    db = get_session()
    return render_template("webhooks/preferences.html", form=form, chat_form=chat_form, groups=NOTIFICATION_GROUPS,
                           channel=chat.chat_channel_of(db, current_user.id), confirm=FlaskForm())


@account_bp.route("/chat", methods=["POST"])
@permission(STAFF)
def set_chat() -> Any:
    db = get_session()
    chat_form = ChatChannelForm()
    if chat_form.validate_on_submit():
        try:
            chat.set_chat_channel(db, actor=current_user, fmt=chat_form.format.data or "", url=chat_form.url.data or "",
                                  box=_box(), allow_plain_loopback=_loopback_allowed())
        except InvalidError as exc:
            db.rollback()
            form_errors(chat_form, exc, default=chat_form.url)
        else:
            db.commit()
            flash("Your chat is set: choose below which notifications go there.", "success")
            return redirect(url_for("notification_settings.settings"))
    current = notifications.preferences_of(db, current_user.id)
    return _render(PreferencesForm(data={f"group_{g}": c for g, c in current.items()}), chat_form), 400


@account_bp.route("/chat/remove", methods=["POST"])
@permission(STAFF)
def remove_chat() -> Response:
    db = get_session()
    if FlaskForm().validate_on_submit():
        chat.remove_chat_channel(db, actor=current_user)
        # Nothing may stay routed to a chat that is gone: those groups fall back to email.
        current = notifications.preferences_of(db, current_user.id)
        notifications.set_preferences(db, actor=current_user,
                                      choices={g: "email" for g, c in current.items() if c == "chat"})
        db.commit()
        flash("Your chat was removed; what went there comes by email again.", "success")
    return redirect(url_for("notification_settings.settings"))
