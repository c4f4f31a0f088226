"""Own passkeys: list, register (after a fresh second factor), rename and remove; and the gate that sends a
user whose role requires a passkey, and who has none yet, to register one before anything else."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from govern.auth import passkeys
from govern.auth.forms import ConfirmForm, PasskeyRegisterForm, PasskeyRenameForm
from govern.db import get_session
from govern.errors import InvalidError, NotFoundError
from govern.web import STAFF, form_errors, fresh_mfa_required, mfa_is_fresh, permission

bp = Blueprint("passkeys", __name__, url_prefix="/account/passkeys")

#: What a user who must first register a passkey may still reach.
_ENROLMENT_ENDPOINTS = frozenset({"passkeys.index", "passkeys.new", "auth.logout", "auth.reauth", "auth.reauth_passkey",
                                  "static", "home.healthz"})


def _relying_party() -> passkeys.RelyingParty:
    return passkeys.relying_party(current_app.config)


@bp.before_app_request
def passkey_enrolment_first() -> Any:
    """While the policy wants a passkey this user lacks, every other page waits."""
    if not session.get(passkeys.ENROLMENT_KEY) or not current_user.is_authenticated:
        return None
    if request.endpoint in _ENROLMENT_ENDPOINTS:
        return None
    db = get_session()
    if passkeys.has_passkey(db, current_user) or not passkeys.passkey_required(db, current_user):
        session.pop(passkeys.ENROLMENT_KEY, None)
        return None
    if request.method == "GET":
        flash("Your role must sign in with a passkey: register one now to go on.", "warning")
        return redirect(url_for("passkeys.new"))
    return Response("Register a passkey first.", status=403, mimetype="text/plain")


@bp.route("/")
@permission(STAFF)
def index() -> str:
    db = get_session()
    return render_template("auth/passkeys.html", passkeys=passkeys.passkeys_of(db, current_user),
                           required=passkeys.passkey_required(db, current_user), fresh=mfa_is_fresh(),
                           form=ConfirmForm(), rename_form=PasskeyRenameForm())


@bp.route("/new", methods=["GET", "POST"])
@permission(STAFF)
@fresh_mfa_required
def new() -> Any:
    db = get_session()
    form = PasskeyRegisterForm()
    if form.validate_on_submit():
        stored = session.pop(passkeys.CHALLENGE_KEY, None)
        try:
            challenge = passkeys.Challenge.from_session(stored, purpose="register", user_id=current_user.id)
            passkey = passkeys.register(db, _relying_party(), user=current_user, challenge=challenge,
                                        response=form.credential.data or "", name=form.name.data or "")
        except InvalidError as exc:
            db.commit()  # the refusal's audit event stays
            form_errors(form, exc, default=form.name, fields={"credential": "name"})
            return _new_page(form), 200
        db.commit()
        session.pop(passkeys.ENROLMENT_KEY, None)
        flash(f"Passkey “{passkey.name}” registered. Use it at sign-in and to confirm sensitive actions.", "success")
        return redirect(url_for("passkeys.index"))
    return _new_page(form)


def _new_page(form: PasskeyRegisterForm) -> str:
    db = get_session()
    try:
        options, challenge = passkeys.registration_options(db, _relying_party(), current_user)
    except InvalidError as exc:
        flash(exc.message, "error")
        options = None
    else:
        session[passkeys.CHALLENGE_KEY] = challenge.to_session()
    return render_template("auth/passkey_new.html", form=form, options=options,
                           enrolment=bool(session.get(passkeys.ENROLMENT_KEY)))


@bp.route("/<int:passkey_id>/rename", methods=["POST"])
@permission(STAFF)
def rename(passkey_id: int) -> Response:
    db = get_session()
    form = PasskeyRenameForm()
    if not form.validate_on_submit():
        flash("Give the passkey a name of at most 80 characters.", "error")
        return redirect(url_for("passkeys.index"))
    try:
        passkeys.rename(db, user=current_user, passkey_id=passkey_id, name=form.name.data or "")
    except NotFoundError:
        db.rollback()
        flash("No such passkey.", "error")
        return redirect(url_for("passkeys.index"))
    db.commit()
    flash("Passkey renamed.", "success")
    return redirect(url_for("passkeys.index"))


@bp.route("/<int:passkey_id>/remove", methods=["POST"])
@permission(STAFF)
@fresh_mfa_required
def remove(passkey_id: int) -> Response:
    db = get_session()
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("passkeys.index"))
    try:
        passkeys.remove(db, user=current_user, passkey_id=passkey_id)
    except NotFoundError:
        db.rollback()
        flash("No such passkey.", "error")
        return redirect(url_for("passkeys.index"))
    db.commit()
    flash("Passkey removed. It no longer signs you in to govern; remove it from your device too.", "success")
    return redirect(url_for("passkeys.index"))
