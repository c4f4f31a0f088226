"""Admin pages for govern logins. Thin: parse, call one service, commit, redirect."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from govern.auth import login as auth_login
from govern.auth import once, passkeys
from govern.auth import sessions as auth_sessions
from govern.auth import users as auth_users
from govern.auth.forms import ConfirmForm
from govern.auth.kit import AuthKit
from govern.auth.models import User
from govern.config import base_url
from govern.db import get_session
from govern.directory import services as directory
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.paging import read_page
from govern.users.forms import ROLE_LABELS, InviteForm, RolesForm
from govern.web import form_errors, fresh_mfa_required, page_arg, permission

bp = Blueprint("users", __name__, url_prefix="/admin/users")

PAGE_SIZE = 50


def _kit() -> AuthKit:
    kit: AuthKit = current_app.extensions["govern.auth"]
    return kit


def _setup_link(token: str) -> str:
    # The secret travels in the fragment, which browsers never send to a server or a log.
    return f"{base_url()}{url_for('auth.setup')}#token={token}"


@bp.route("/")
@permission("users.read")
def index() -> str:
    db = get_session()
    users = read_page(db, select(User).order_by(User.email), page_arg(), PAGE_SIZE,
                      count=select(func.count()).select_from(User), scalars=True)
    return render_template("users/index.html", users=users)


@bp.route("/new", methods=["GET", "POST"])
@permission("users.manage")
@fresh_mfa_required
def new() -> Any:
    form = InviteForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            person = directory.find_person_by_email(db, form.email.data or "")
            if person is None:
                person = directory.create_person(db, actor=current_user, full_name=form.full_name.data or "", email=form.email.data or "")
            user, token = auth_users.create_user(db, _kit(), actor=current_user, person=person, roles=set(form.roles.data or []))
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.email)
            return render_template("users/new.html", form=form), 200
        db.commit()
        return _show_setup_secret(user, token, "invited")
    return render_template("users/new.html", form=form)


@bp.route("/<int:user_id>")
@permission("users.read")
def detail(user_id: int) -> str:
    db = get_session()
    user = auth_users.get_user(db, user_id)
    roles_form = RolesForm(data={"roles": sorted(user.roles)})
    return render_template(
        "users/detail.html",
        user=user,
        roles_form=roles_form,
        form=ConfirmForm(),
        sessions=auth_sessions.list_user_sessions(db, user, idle=current_app.config["SESSION_IDLE_TIMEOUT"],
                                             absolute=current_app.config["SESSION_ABSOLUTE_TIMEOUT"]),
        codes_left=auth_login.count_unused_recovery_codes(db, user),
        current_session=getattr(session, "digest", None),
        role_labels=ROLE_LABELS,
    )


@bp.route("/<int:user_id>/roles", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def set_roles(user_id: int) -> Response:
    db = get_session()
    user = auth_users.get_user(db, user_id)
    form = RolesForm()
    if not form.validate_on_submit():
        flash("Choose roles from the list.", "error")
        return redirect(url_for("users.detail", user_id=user.id))
    try:
        auth_users.set_roles(db, actor=current_user, user=user, roles=set(form.roles.data or []))
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("users.detail", user_id=user_id))
    db.commit()
    flash("Roles saved. The user's sessions were signed out so the change applies at once.", "success")
    return redirect(url_for("users.detail", user_id=user.id))


def _simple_action(user_id: int, action: str) -> Response:
    db = get_session()
    user = auth_users.get_user(db, user_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("users.detail", user_id=user.id))
    try:
        if action == "deactivate":
            auth_users.deactivate_user(db, actor=current_user, user=user)
            message = "Login deactivated; every session of it has ended."
        elif action == "reactivate":
            auth_users.reactivate_user(db, actor=current_user, user=user)
            message = "Login reactivated."
        elif action == "unlock":
            auth_users.unlock_user(db, _kit(), actor=current_user, user=user)
            message = "Failed sign-in lockout cleared."
        else:
            ended = auth_sessions.end_user_sessions(db, user=user, actor=current_user, reason="ended_by_admin")
            message = f"{ended} session(s) signed out."
    except ConflictError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("users.detail", user_id=user_id))
    db.commit()
    flash(message, "success")
    return redirect(url_for("users.detail", user_id=user_id))


@bp.route("/<int:user_id>/deactivate", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def deactivate(user_id: int) -> Response:
    return _simple_action(user_id, "deactivate")


@bp.route("/<int:user_id>/reactivate", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def reactivate(user_id: int) -> Response:
    return _simple_action(user_id, "reactivate")


@bp.route("/<int:user_id>/unlock", methods=["POST"])
@permission("users.manage")
def unlock(user_id: int) -> Response:
    return _simple_action(user_id, "unlock")


@bp.route("/<int:user_id>/sessions/end-all", methods=["POST"])
@permission("users.manage")
def end_all_sessions(user_id: int) -> Response:
    return _simple_action(user_id, "end_sessions")


@bp.route("/<int:user_id>/sessions/<public_id>/end", methods=["POST"])
@permission("users.manage")
def end_session(user_id: int, public_id: str) -> Response:
    db = get_session()
    user = auth_users.get_user(db, user_id)
    if ConfirmForm().validate_on_submit():
        try:
            auth_sessions.end_one_session(db, actor=current_user, owner=user, public_id=public_id[:32])
            db.commit()
            flash("Session signed out.", "success")
        except NotFoundError as exc:
            flash(exc.message, "error")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/<int:user_id>/reset-mfa", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def reset_mfa(user_id: int) -> Any:
    db = get_session()
    user = auth_users.get_user(db, user_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("users.detail", user_id=user.id))
    try:
        token = auth_users.reset_mfa(db, _kit(), actor=current_user, user=user)
    except ConflictError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("users.detail", user_id=user.id))
    db.commit()
    return _show_setup_secret(user, token, "mfa_reset")


def _show_setup_secret(user: User, token: str, reason: str) -> Response:
    once.keep(session, _kit(), user_id=current_user.id, kind="setup_secret",
              payload={"token": token, "user_id": user.id, "reason": reason})
    return redirect(url_for("users.setup_secret", user_id=user.id), 303)


@bp.route("/<int:user_id>/setup-secret")
@permission("users.manage")
def setup_secret(user_id: int) -> Any:
    """A user's new setup secret, shown once to the admin who made it."""
    user = auth_users.get_user(get_session(), user_id)
    shown = once.take(session, _kit(), user_id=current_user.id, kind="setup_secret")
    if shown is None or shown.get("user_id") != user.id:
        flash("A setup secret is shown only once, right after it is made. If it was lost, reset the authenticator again "
              "to make a new one.", "info")
        return redirect(url_for("users.detail", user_id=user.id))
    token = str(shown["token"])
    return render_template("users/setup_secret.html", user=user, token=token, link=_setup_link(token),
                           ttl_hours=int(_kit().setup_token_ttl.total_seconds() // 3600), reason=shown.get("reason"))


@bp.route("/passkey-policy", methods=["GET", "POST"])
@permission("users.manage")
@fresh_mfa_required
def passkey_policy() -> Any:
    """Which app roles must sign in and confirm sensitive actions with a passkey (phishing-resistant)."""
    db = get_session()
    form = RolesForm(data={"roles": sorted(passkeys.policy_roles(db))})
    if form.validate_on_submit():
        try:
            passkeys.set_policy_roles(db, actor=current_user, roles=form.roles.data or [])
        except InvalidError as exc:
            db.rollback()
            form_errors(form, exc, default=form.roles)
            return render_template("users/passkey_policy.html", form=form, role_labels=ROLE_LABELS), 200
        db.commit()
        flash("Saved. Users of these roles sign in and confirm with a passkey from their next sign-in.", "success")
        return redirect(url_for("users.passkey_policy"))
    return render_template("users/passkey_policy.html", form=form, role_labels=ROLE_LABELS)
