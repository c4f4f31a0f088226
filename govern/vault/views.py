"""Vault pages: the secrets one may use, a secret's page, add and change values, reveal flows."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from govern import audit
from govern.accounts.services import can_see_account, get_account
from govern.crypto.keyring import Keyring
from govern.db import get_session, utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.rotation import schedules as rotation_schedules
from govern.vault import access, errors, keys, listing, versions
from govern.vault.forms import MetadataForm, NewSecretForm, RevealForm, ValueForm
from govern.vault.models import Secret
from govern.web import (
    ensure_visible,
    form_errors,
    fresh_mfa_required,
    known_object,
    may,
    mfa_is_fresh,
    page_arg,
    permission,
)

bp = Blueprint("vault", __name__, url_prefix="/vault")

PAGE_SIZE = 50
MULTILINE_KINDS = ("recovery_codes", "note")
#: Where a service's "value" reason shows for a kind typed as lines (recovery codes, notes).
_VALUE_BOX = {"value": "value_lines"}


@bp.app_context_processor
def _vault_helpers() -> dict[str, Any]:
    return {"now": utcnow()}


@bp.before_request
def _refuse_when_sealed() -> Any:
    """Every vault page answers 503 with what the operator must do while the vault is sealed."""
    if current_app.extensions.get("govern.keyring") is None:
        return render_template("errors/error.html", status=503, title="The vault is sealed",
                               message=keys.SEALED_MESSAGE), 503
    return None


def _keyring() -> Keyring:
    keyring: Keyring = current_app.extensions["govern.keyring"]
    return keyring


def _may_know_secret(secret_id: int, **_url_args: Any) -> bool:
    """Whether the secret exists and the user may know it does (for refusals of the permission layer)."""
    db = get_session()
    secret = db.get(Secret, secret_id)
    return secret is not None and access.can_see_secret(db, current_user, secret)


def _visible_secret(secret_id: int) -> Secret:
    """The secret if the user may know it exists; anything else is the same 404."""
    db = get_session()
    secret = db.get(Secret, secret_id)
    if secret is not None and not access.can_see_secret(db, current_user, secret):
        # Someone asked for a secret they may not know about: recorded, answered like a missing one.
        audit.record(db, "authz.denied", actor=current_user, target_type="secret", target_id=secret.id, outcome="denied",
                     details={"endpoint": request.endpoint, "account_id": secret.account_id})
        db.commit()
        abort(404)
    ensure_visible(secret is not None)
    assert secret is not None
    return secret


def _revealable_secret(secret_id: int, what: str) -> Secret:
    """The secret if the user may reveal it (``what``); refusals are audited (404 when not even visible)."""
    db = get_session()
    secret = db.get(Secret, secret_id)
    if secret is None:
        abort(404)
    why_not = access.refusal(db, current_user, secret, what)
    if why_not is not None:
        access.record_reveal_denied(db, actor=current_user, secret=secret, exposure=what, why=why_not)
        db.commit()
        if not access.can_see_secret(db, current_user, secret):
            abort(404)
        raise ForbiddenError(why_not)  # they may know it exists: tell them why it is not shown
    return secret


def _submitted_value(form: NewSecretForm | ValueForm, kind: str) -> str | list[str]:
    if kind in MULTILINE_KINDS:
        text = form.value_lines.data or ""
        return text.splitlines() if kind == "recovery_codes" else text
    return form.value.data or ""


def _forget_values(form: NewSecretForm | ValueForm) -> None:
    # A page answering a failed form never carries the secret back.
    form.value.data = ""
    form.value_lines.data = ""
    form.value_lines.raw_data = []


# --- lists and the secret page ---------------------------------------------------------------------


@bp.route("/")
@permission("vault.read")
def index() -> str:
    """The credentials the user may reveal (IT: all of them)."""
    db = get_session()
    page = page_arg()
    return render_template("vault/index.html", secrets=listing.revealable_secrets(db, current_user, page=page, per_page=PAGE_SIZE))


@bp.route("/secrets/<int:secret_id>")
@permission("vault.read")
def detail(secret_id: int) -> str:
    """Metadata, versions and exposures of a secret; never its value."""
    db = get_session()
    secret = _visible_secret(secret_id)
    page = page_arg()
    exposures = listing.exposures(db, secret_id=secret.id, page=page, per_page=PAGE_SIZE)
    # Rotation builds on the vault; its state of this secret (interval, due date, open task) is shown
    # here to those who may read rotation, so IT sees and starts a rotation from the secret itself.
    schedule = rotation_schedules.schedules(db, [secret])[0] if may(current_user, "rotation.read") else None
    return render_template(
        "vault/detail.html", secret=secret, versions=listing.versions_of(db, secret),
        exposures=exposures, schedule=schedule,
        may_reveal=access.refusal(db, current_user, secret, "totp_code" if secret.kind == "totp" else "value") is None,
        may_see_seed=secret.kind == "totp" and access.refusal(db, current_user, secret, "totp_seed") is None,
    )


# --- IT: add, edit, change ---------------------------------------------------------------------------


@bp.route("/accounts/<int:account_id>/new", methods=["GET", "POST"])
@permission("vault.manage")
@fresh_mfa_required
def new(account_id: int) -> Any:
    """Vault a new secret for an account."""
    db = get_session()
    try:
        account = get_account(db, account_id)
    except NotFoundError:
        abort(404)
    ensure_visible(can_see_account(current_user, account))
    form = NewSecretForm()
    if form.validate_on_submit():
        kind = form.kind.data or ""
        try:
            secret = versions.create_secret(
                db, actor=current_user, keyring=_keyring(), account=account, kind=kind, label=form.label.data or "",
                value=_submitted_value(form, kind), login=form.login.data, url=form.url.data, notes=form.notes.data,
                token_expires_at=form.token_expires_at.data)
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.label, fields=_VALUE_BOX if kind in MULTILINE_KINDS else None)
            _forget_values(form)
            return render_template("vault/new.html", form=form, account=account), 200
        db.commit()
        flash(f"“{secret.label}” is in the vault.", "success")
        return redirect(url_for("vault.detail", secret_id=secret.id))
    _forget_values(form)
    return render_template("vault/new.html", form=form, account=account)


@bp.route("/secrets/<int:secret_id>/edit", methods=["GET", "POST"])
@permission("vault.manage")
@known_object(_may_know_secret)
def edit(secret_id: int) -> Any:
    """Change a secret's name, login, URL, notes or token expiry (not its value)."""
    db = get_session()
    secret = _visible_secret(secret_id)
    form = MetadataForm(obj=secret) if request.method == "GET" else MetadataForm()
    if form.validate_on_submit():
        try:
            changed = versions.update_metadata(db, actor=current_user, secret=secret, label=form.label.data or "",
                                               login=form.login.data, url=form.url.data, notes=form.notes.data,
                                               token_expires_at=form.token_expires_at.data)
        except InvalidError as exc:
            db.rollback()
            form_errors(form, exc, default=form.label)
            return render_template("vault/edit.html", form=form, secret=secret), 200
        db.commit()
        flash("Saved." if changed else "Nothing changed.", "success")
        return redirect(url_for("vault.detail", secret_id=secret.id))
    return render_template("vault/edit.html", form=form, secret=secret)


@bp.route("/secrets/<int:secret_id>/change", methods=["GET", "POST"])
@permission("vault.manage")
@known_object(_may_know_secret)
@fresh_mfa_required
def change(secret_id: int) -> Any:
    """Store a new value: a new current version, the old one retired."""
    db = get_session()
    secret = _visible_secret(secret_id)
    form = ValueForm()
    if form.validate_on_submit():
        try:
            version = versions.change_value(db, actor=current_user, keyring=_keyring(), secret=secret,
                                            value=_submitted_value(form, secret.kind))
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            multiline = secret.kind in MULTILINE_KINDS
            form_errors(form, exc, default=form.value_lines if multiline else form.value, fields=_VALUE_BOX if multiline else None)
            _forget_values(form)
            return render_template("vault/change.html", form=form, secret=secret, multiline=secret.kind in MULTILINE_KINDS), 200
        db.commit()
        flash(f"Version {version.version} is now current; the previous one is retired.", "success")
        return redirect(url_for("vault.detail", secret_id=secret.id))
    _forget_values(form)
    return render_template("vault/change.html", form=form, secret=secret, multiline=secret.kind in MULTILINE_KINDS)


# --- reveal ---------------------------------------------------------------------------------------------


def _reveal_flow(secret_id: int, what: str, endpoint: str) -> Any:
    db = get_session()
    secret = _revealable_secret(secret_id, what)
    if (secret.kind == "totp") != (what != "value"):
        abort(404)
    form = RevealForm()
    if request.method == "GET":
        if not mfa_is_fresh():
            return redirect(url_for("auth.reauth", next=url_for(endpoint, secret_id=secret.id)))
        return render_template("vault/reveal.html", form=form, secret=secret, what=what)
    if not form.validate_on_submit():
        return render_template("vault/reveal.html", form=form, secret=secret, what=what), 200
    try:
        revealed = access.reveal(db, actor=current_user, keyring=_keyring(), secret=secret,
                                   reason=form.reason.data or "", mfa_fresh=mfa_is_fresh(), what=what)
    except errors.StepUpRequiredError:
        access.record_reveal_denied(db, actor=current_user, secret=secret, exposure=what, why="second factor not fresh")
        db.commit()
        flash("Confirm a code from your authenticator, then ask again.", "error")
        return redirect(url_for("auth.reauth", next=url_for(endpoint, secret_id=secret.id)))
    except InvalidError as exc:
        db.rollback()
        form_errors(form, exc, default=form.reason)
        return render_template("vault/reveal.html", form=form, secret=secret, what=what), 200
    except (ForbiddenError, errors.SecretDecryptError) as exc:
        db.commit()  # the refusal or the failed decryption is audited
        return render_template("errors/error.html", status=exc.status_code, title="Not shown", message=exc.message), exc.status_code
    except NotFoundError as exc:
        db.rollback()
        return render_template("errors/error.html", status=404, title="Not shown", message=exc.message), 404
    db.commit()
    return render_template("vault/revealed.html", revealed=revealed, secret=secret)


@bp.route("/secrets/<int:secret_id>/reveal", methods=["GET", "POST"])
@permission("vault.reveal")
def reveal(secret_id: int) -> Any:
    """Ask for a reason (and a fresh second factor), then show the value or the live 2FA code."""
    db = get_session()
    secret = db.get(Secret, secret_id)
    what = "totp_code" if secret is not None and secret.kind == "totp" else "value"
    return _reveal_flow(secret_id, what, "vault.reveal")


@bp.route("/secrets/<int:secret_id>/seed", methods=["GET", "POST"])
@permission("vault.reveal_seed")
@known_object(_may_know_secret)
def reveal_seed(secret_id: int) -> Any:
    """IT and admins: show a 2FA seed itself (e.g. to enrol a new device), with its own reason."""
    return _reveal_flow(secret_id, "totp_seed", "vault.reveal_seed")


@bp.route("/secrets/<int:secret_id>/codes/<int:index>/used", methods=["POST"])
@permission("vault.reveal")
def mark_code_used(secret_id: int, index: int) -> Response:
    """Mark one recovery code used (a new version without it)."""
    db = get_session()
    secret = _revealable_secret(secret_id, "value")
    try:
        access.mark_recovery_code_used(db, actor=current_user, keyring=_keyring(), secret=secret, index=index - 1,
                                         mfa_fresh=mfa_is_fresh())
    except errors.StepUpRequiredError:
        flash("Confirm a code from your authenticator, then mark the code again.", "error")
        return redirect(url_for("auth.reauth", next=url_for("vault.detail", secret_id=secret.id)))
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("vault.detail", secret_id=secret.id))
    except errors.SecretDecryptError as exc:
        db.commit()
        flash(exc.message, "error")
        return redirect(url_for("vault.detail", secret_id=secret.id))
    db.commit()
    flash(f"Code {index} is marked used; a new version keeps the rest.", "success")
    return redirect(url_for("vault.detail", secret_id=secret.id))
