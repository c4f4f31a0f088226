"""Login (password, then TOTP), first-time setup and enrolment, logout, step-up and own account."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import segno
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from govern import timezones
from govern.auth import credentials, enrolment, once, passkeys, sessions, users
from govern.auth import login as auth_login
from govern.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmForm,
    CurrentPasswordForm,
    EnrolForm,
    LoginForm,
    NewPasswordForm,
    PasskeyAnswerForm,
    SetupTokenForm,
    TimeZoneForm,
)
from govern.auth.kit import AuthKit
from govern.auth.models import User
from govern.auth.sessions import server_session
from govern.crypto import totp
from govern.db import get_session
from govern.errors import ForbiddenError, InvalidError, NotFoundError
from govern.sso import services as sso
from govern.sso import views as sso_views
from govern.sso.models import SsoProvider
from govern.web import PUBLIC, RESUME_KEY, STAFF, client_ip, form_errors, fresh_mfa_required, permission, safe_next

bp = Blueprint("auth", __name__)

#: How long the step between password and second factor may take.
PENDING_LOGIN_SECONDS = 300


def _kit() -> AuthKit:
    kit: AuthKit = current_app.extensions["govern.auth"]
    return kit


def _begin_new_session(*, keep_resume: bool = False) -> None:
    """Drop everything of the previous session and issue a new session id (ASVS 7.2.4).

    Signing in keeps the input of a form sent after the session had expired (govern.web.RESUME_KEY):
    it is shown again on that form once the same user is signed in.
    """
    resume = session.get(RESUME_KEY) if keep_resume else None
    session.clear()
    if resume:
        session[RESUME_KEY] = resume
    server_session().regenerate = True


def _pending_user() -> User | None:
    pending = session.get("auth_pending")
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_LOGIN_SECONDS:
        return None
    user = get_session().get(User, int(pending.get("user_id", 0)))
    if user is None or not user.is_active or _password_stamp(user) != pending.get("password_stamp"):
        return None  # deactivated, or the password changed since it was checked
    return user


def _password_stamp(user: User) -> str:
    return user.password_changed_at.isoformat() if user.password_changed_at else ""


def _finish_login(user: User, factor: str, next_url: str | None) -> Response:
    db = get_session()
    auth_login.record_login(db, user=user, factor=factor)
    db.commit()
    _begin_new_session(keep_resume=True)
    login_user(user, remember=False)
    server_session().mark_authenticated = True
    server_session().mark_mfa_verified = True
    if factor != "passkey" and passkeys.passkey_required(db, user) and not passkeys.has_passkey(db, user):
        # The policy wants a passkey and this user has none yet: registering one is all they may do next.
        session[passkeys.ENROLMENT_KEY] = True
        flash("Your role must sign in with a passkey: register one now to go on.", "warning")
        return redirect(url_for("passkeys.new"))
    return redirect(safe_next(next_url, url_for("home.index")))


def _passkey_offer(user: User, purpose: str) -> str | None:
    """The WebAuthn options for ``user``'s passkeys (JSON for static/passkeys.js), its challenge kept in the
    session; None when the user has no passkey."""
    db = get_session()
    if not passkeys.has_passkey(db, user):
        return None
    options, challenge = passkeys.authentication_options(db, _relying_party(), user, purpose)
    session[passkeys.CHALLENGE_KEY] = challenge.to_session()
    return options


def _relying_party() -> passkeys.RelyingParty:
    return passkeys.relying_party(current_app.config)


def _check_passkey(user: User, purpose: str, form: PasskeyAnswerForm) -> None:
    """Verify the passkey answer of ``form`` against the challenge this session waits on (used once)."""
    stored = session.pop(passkeys.CHALLENGE_KEY, None)
    challenge = passkeys.Challenge.from_session(stored, purpose=purpose, user_id=user.id)
    passkeys.verify(get_session(), _relying_party(), user=user, challenge=challenge,
                    response=form.credential.data or "")


@bp.route("/login", methods=["GET", "POST"])
@permission(PUBLIC)
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"), "")
        if getattr(session, "expired", False):
            flash("Your session ended after a period of inactivity. Sign in again.", "info")
    if form.validate_on_submit():
        db = get_session()
        try:
            user = auth_login.check_password_login(
                db, _kit(), email=form.email.data or "", password=form.password.data or "", ip=client_ip()
            )
        except (InvalidError, ForbiddenError) as exc:
            db.commit()  # the failure count and its audit event must persist
            form_errors(form, exc, default=form.password)
            return render_template("auth/login.html", form=form, sso_providers=sso.enabled_providers(db)), 200
        try:
            break_glass = sso.check_password_allowed(db, user)
        except ForbiddenError as exc:
            db.commit()  # the refusal's audit event stays
            form_errors(form, exc, default=form.password)
            return render_template("auth/login.html", form=form, sso_providers=sso.enabled_providers(db)), 200
        db.commit()
        _begin_new_session(keep_resume=True)
        session["auth_pending"] = {"user_id": user.id, "at": time.time(), "password_stamp": _password_stamp(user),
                                   "break_glass": break_glass}
        session["next"] = safe_next(form.next.data, "")
        return redirect(url_for("auth.login_code"))
    return render_template("auth/login.html", form=form, sso_providers=sso.enabled_providers(get_session()))


@bp.route("/login/code", methods=["GET", "POST"])
@permission(PUBLIC)
def login_code() -> Any:
    user = _pending_user()
    if user is None:
        flash("Start by entering your email and password.", "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    db = get_session()
    passkey_only = passkeys.passkey_required(db, user) and passkeys.has_passkey(db, user)
    if form.validate_on_submit():
        try:
            if passkey_only:
                raise InvalidError("Your role must sign in with a passkey: use the passkey button.",
                                   reasons={"code": "Your role must sign in with a passkey: use the passkey button."})
            factor = auth_login.verify_second_factor(
                db, _kit(), user=user, code=form.code.data or "", ip=client_ip(), purpose="login"
            )
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.code)
            return _login_code_page(form, user, passkey_only), 200
        if factor == "recovery_code":
            # A recovery code means the authenticator may be lost: end every other session.
            sessions.end_user_sessions(db, user=user, actor=user, reason="recovery_code_used")
            remaining = auth_login.count_unused_recovery_codes(db, user)
            flash(f"You signed in with a recovery code; {remaining} left. Create new codes under Your account if you are running low.", "warning")
        return _second_factor_done(user, factor)
    return _login_code_page(form, user, passkey_only)


def _login_code_page(form: CodeForm, user: User, passkey_only: bool) -> str:
    offer = _passkey_offer(user, "login")
    db = get_session()
    db.commit()
    return render_template("auth/login_code.html", form=form, user=user, passkey_options=offer,
                           passkey_form=PasskeyAnswerForm(), passkey_only=passkey_only)


def _second_factor_done(user: User, factor: str) -> Response:
    pending = session.get("auth_pending") or {}
    if pending.get("break_glass"):
        sso.record_break_glass(get_session(), user=user)
    return _finish_login(user, factor, session.get("next"))


@bp.route("/login/passkey", methods=["POST"])
@permission(PUBLIC)
def login_passkey() -> Any:
    user = _pending_user()
    if user is None:
        flash("Start by entering your email and password.", "info")
        return redirect(url_for("auth.login"))
    form = PasskeyAnswerForm()
    db = get_session()
    try:
        if not form.validate_on_submit():
            raise InvalidError("No passkey answer arrived: try again.")
        _check_passkey(user, "login", form)
    except InvalidError as exc:
        db.commit()  # the refusal's audit event stays
        flash(exc.message, "error")
        return redirect(url_for("auth.login_code"))
    return _second_factor_done(user, "passkey")


@bp.route("/logout", methods=["POST"])
@permission(STAFF)
def logout() -> Response:
    form = ConfirmForm()
    if not form.validate_on_submit():
        return redirect(url_for("home.index"))
    db = get_session()
    provider_logout = sso_views.logout_target()
    auth_login.record_logout(db, user=current_user)
    db.commit()
    logout_user()
    server_session().ended = True
    # A single sign-on session also ends at the provider when it offers RP-initiated logout.
    response = redirect(provider_logout or url_for("auth.login"))
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


@bp.route("/reauth", methods=["GET", "POST"])
@permission(STAFF)
def reauth() -> Any:
    form = CodeForm()
    db = get_session()
    passkey_only = passkeys.passkey_required(db, current_user) and passkeys.has_passkey(db, current_user)
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"), "")
    if form.validate_on_submit():
        try:
            if passkey_only:
                raise InvalidError("Your role must confirm with a passkey: use the passkey button.",
                                   reasons={"code": "Your role must confirm with a passkey: use the passkey button."})
            auth_login.verify_second_factor(db, _kit(), user=current_user, code=form.code.data or "", ip=client_ip(), purpose="reauth")
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.code)
            return _reauth_page(form, passkey_only), 200
        db.commit()
        return _stepped_up(form.next.data)
    return _reauth_page(form, passkey_only)


def _reauth_page(form: CodeForm, passkey_only: bool) -> str:
    offer = _passkey_offer(current_user, "reauth")
    get_session().commit()
    return render_template("auth/reauth.html", form=form, sso_provider=_sso_provider(), passkey_options=offer,
                           passkey_form=PasskeyAnswerForm(next=form.next.data), passkey_only=passkey_only)


def _stepped_up(next_url: str | None) -> Response:
    server_session().regenerate = True
    server_session().mark_mfa_verified = True
    return redirect(safe_next(next_url, url_for("home.index")))


@bp.route("/reauth/passkey", methods=["POST"])
@permission(STAFF)
def reauth_passkey() -> Any:
    form = PasskeyAnswerForm()
    db = get_session()
    try:
        if not form.validate_on_submit():
            raise InvalidError("No passkey answer arrived: try again.")
        _check_passkey(current_user, "reauth", form)
    except InvalidError as exc:
        db.commit()  # the refusal's audit event stays
        flash(exc.message, "error")
        return redirect(url_for("auth.reauth", next=safe_next(form.next.data, "") or None))
    db.commit()
    return _stepped_up(form.next.data)


def _sso_provider() -> SsoProvider | None:
    """The provider this session signed in through, for a step-up there."""
    provider_id = session.get("sso_provider_id")
    return get_session().get(SsoProvider, int(provider_id)) if provider_id else None


# --- setup: first login and MFA re-enrolment ------------------------------------------------------


def _setup_state() -> dict[str, Any] | None:
    state = session.get("setup")
    return state if isinstance(state, dict) and "token_id" in state else None


@bp.route("/setup", methods=["GET", "POST"])
@permission(PUBLIC)
def setup() -> Any:
    form = SetupTokenForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            token = enrolment.redeem_setup_token(db, _kit(), token=form.token.data or "", ip=client_ip())
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.token)
            return render_template("auth/setup.html", form=form), 200
        db.commit()
        if current_user.is_authenticated:
            logout_user()
        _begin_new_session()
        session["setup"] = {"token_id": token.id, "password_ok": False}
        return redirect(url_for("auth.setup_password"))
    return render_template("auth/setup.html", form=form)


@bp.route("/setup/password", methods=["GET", "POST"])
@permission(PUBLIC)
def setup_password() -> Any:
    state = _setup_state()
    if state is None:
        return redirect(url_for("auth.setup"))
    db = get_session()
    token = enrolment.live_setup_token(db, int(state["token_id"]))
    user = db.get(User, token.user_id)
    form: NewPasswordForm | CurrentPasswordForm = (
        CurrentPasswordForm() if token.purpose == "mfa_reset" else NewPasswordForm()
    )
    if form.validate_on_submit():
        try:
            enrolment.set_password_during_setup(
                db,
                _kit(),
                setup=token,
                password=(form.password.data or "") if isinstance(form, NewPasswordForm) else "",
                current_password=(form.current_password.data or "") if isinstance(form, CurrentPasswordForm) else None,
                ip=client_ip(),
            )
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.current_password if isinstance(form, CurrentPasswordForm) else form.password)
            return render_template("auth/setup_password.html", form=form, user=user, purpose=token.purpose), 200
        db.commit()
        state["password_ok"] = True
        session["setup"] = state
        return redirect(url_for("auth.setup_authenticator"))
    return render_template("auth/setup_password.html", form=form, user=user, purpose=token.purpose)


def _qr_svg(uri: str) -> Markup:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", xmldecl=False, svgns=True, nl=False, scale=5, border=2,
                                   title="QR code for your authenticator app")
    return Markup(buffer.getvalue().decode("utf-8"))  # noqa: S704 - segno output, no user input in markup


@bp.route("/setup/authenticator", methods=["GET", "POST"])
@permission(PUBLIC)
def setup_authenticator() -> Any:
    state = _setup_state()
    if state is None or not state.get("password_ok"):
        return redirect(url_for("auth.setup"))
    db = get_session()
    kit = _kit()
    token = enrolment.live_setup_token(db, int(state["token_id"]))
    user = db.get(User, token.user_id)
    assert user is not None
    if "seed" not in state:
        state["seed"] = base64.b64encode(enrolment.seal_pending_seed(kit, user, totp.new_seed())).decode("ascii")
        session["setup"] = state
    seed = enrolment.open_pending_seed(kit, user, base64.b64decode(state["seed"]))
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            user, codes = enrolment.confirm_enrolment(db, kit, setup=token, seed=seed, code=form.code.data or "", ip=client_ip())
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.code)
        else:
            auth_login.record_login(db, user=user, factor="totp")
            db.commit()
            _begin_new_session()
            login_user(user, remember=False)
            server_session().mark_authenticated = True
            server_session().mark_mfa_verified = True
            once.keep(session, kit, user_id=user.id, kind="recovery_codes", payload={"codes": codes, "first_time": True})
            return redirect(url_for("auth.recovery_codes"), 303)
    uri = enrolment.enrolment_uri(kit, user, seed)
    grouped = " ".join(seed[i : i + 4] for i in range(0, len(seed), 4))
    return render_template("auth/setup_authenticator.html", form=form, qr=_qr_svg(uri), seed=grouped, user=user)


# --- own account ------------------------------------------------------------------------------------


@bp.route("/account")
@permission(STAFF)
def account(zone_form: TimeZoneForm | None = None) -> str:
    db = get_session()
    user: User = current_user
    return render_template(
        "auth/account.html",
        user=user,
        sessions=sessions.list_user_sessions(db, user, idle=current_app.config["SESSION_IDLE_TIMEOUT"],
                                             absolute=current_app.config["SESSION_ABSOLUTE_TIMEOUT"]),
        current_session=getattr(session, "digest", None),
        codes_left=auth_login.count_unused_recovery_codes(db, user),
        passkey_count=len(passkeys.passkeys_of(db, user)),
        form=ConfirmForm(),
        zone_form=zone_form or TimeZoneForm(time_zone=user.time_zone or ""),
        zone_names=timezones.zone_names(),
        organisation_zone=current_app.config["TIME_ZONE"],
    )


@bp.route("/account/time-zone", methods=["POST"])
@permission(STAFF)
def set_time_zone() -> Any:
    form = TimeZoneForm()
    if form.validate_on_submit():
        db = get_session()
        user: User = current_user
        try:
            users.set_time_zone(db, actor=user, user=user, time_zone=form.time_zone.data)
        except InvalidError as exc:
            form_errors(form, exc, default=form.time_zone)
            return account(zone_form=form), 400
        db.commit()
        chosen = user.time_zone or f"your organisation’s zone, {current_app.config['TIME_ZONE']}"
        flash(f"Times now show in {chosen}.", "success")
        return redirect(url_for("auth.account"))
    return account(zone_form=form), 400


@bp.route("/account/password", methods=["GET", "POST"])
@permission(STAFF)
def change_password() -> Any:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            ended = credentials.change_password(
                db, _kit(), user=current_user, current_password=form.current_password.data or "",
                code=form.code.data or "", new_password=form.new_password.data or "", ip=client_ip(),
                keep_session_id=getattr(session, "digest", None),
            )
        except InvalidError as exc:
            db.commit()
            form_errors(form, exc, default=form.code)
            return render_template("auth/change_password.html", form=form), 200
        db.commit()
        server_session().regenerate = True
        server_session().mark_mfa_verified = True
        flash(f"Your password was changed. {ended} other session(s) were signed out.", "success")
        return redirect(url_for("auth.account"))
    return render_template("auth/change_password.html", form=form)


@bp.route("/account/recovery-codes", methods=["POST"])
@permission(STAFF)
@fresh_mfa_required
def regenerate_recovery_codes() -> Any:
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("auth.account"))
    db = get_session()
    codes = credentials.regenerate_recovery_codes(db, _kit(), user=current_user)
    db.commit()
    once.keep(session, _kit(), user_id=current_user.id, kind="recovery_codes", payload={"codes": codes, "first_time": False})
    return redirect(url_for("auth.recovery_codes"), 303)


@bp.route("/account/recovery-codes", methods=["GET"])
@permission(STAFF)
def recovery_codes() -> Any:
    """The recovery codes just made, shown once (a reload shows them no more)."""
    shown = once.take(session, _kit(), user_id=current_user.id, kind="recovery_codes")
    if shown is None:
        flash("Recovery codes are shown only once, right after they are made. If you did not save them, create new ones.",
              "info")
        return redirect(url_for("auth.account"))
    return render_template("auth/recovery_codes.html", codes=shown.get("codes", []), first_time=bool(shown.get("first_time")))


@bp.route("/account/sessions/<public_id>/end", methods=["POST"])
@permission(STAFF)
def end_own_session(public_id: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("auth.account"))
    db = get_session()
    try:
        sessions.end_one_session(db, actor=current_user, owner=current_user, public_id=public_id[:32])
    except NotFoundError as exc:
        flash(exc.message, "info")
        return redirect(url_for("auth.account"))
    db.commit()
    flash("That session was signed out.", "success")
    return redirect(url_for("auth.account"))
