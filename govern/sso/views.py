"""Sign in through an identity provider (OpenID Connect), and step up through it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from govern.auth import login as auth_login
from govern.auth.sessions import server_session
from govern.db import get_session
from govern.errors import InvalidError, NotFoundError
from govern.sso import services
from govern.sso.models import SsoProvider
from govern.sso.services import SsoKit
from govern.web import PUBLIC, RESUME_KEY, permission, safe_next

bp = Blueprint("sso", __name__)

PENDING_KEY = "sso_pending"


def _kit() -> SsoKit:
    kit: SsoKit = current_app.extensions["govern.sso"]
    return kit


def redirect_uri(slug: str) -> str:
    """The callback address to register at the provider: GOVERN_BASE_URL + /login/sso/<slug>/callback."""
    return f"{current_app.config['BASE_URL']}/login/sso/{slug}/callback"


@bp.route("/login/sso/<slug>", methods=["GET"])
@permission(PUBLIC)
def start(slug: str) -> Response:
    """Send the browser to the provider (a step-up when ?reauth=1 and someone is signed in)."""
    db = get_session()
    try:
        provider = services.provider_by_slug(db, slug)
    except NotFoundError:
        abort(404)
    reauth = request.args.get("reauth") == "1" and current_user.is_authenticated
    try:
        url, pending = services.begin(_kit(), provider, redirect_uri=redirect_uri(provider.slug), reauth=reauth)
    except Exception:  # noqa: BLE001 - discovery failed: say so without details
        current_app.logger.warning("sso discovery failed for provider %s", provider.slug)
        flash("The identity provider cannot be reached right now. Try again in a moment.", "error")
        return redirect(url_for("auth.reauth") if reauth else url_for("auth.login"))
    pending["next"] = safe_next(request.args.get("next"), "")
    session[PENDING_KEY] = pending
    return redirect(url)


@bp.route("/login/sso/<slug>/callback", methods=["GET"])
@permission(PUBLIC)
def callback(slug: str) -> Any:
    """The provider sends the browser back here with a code; the pending sign-in is used once."""
    db = get_session()
    try:
        provider = services.provider_by_slug(db, slug)
    except NotFoundError:
        abort(404)
    pending = session.pop(PENDING_KEY, None)
    try:
        result = services.complete(db, _kit(), provider, pending=pending, args=request.args,
                                   redirect_uri=redirect_uri(provider.slug))
    except InvalidError as exc:
        db.commit()  # the failure's audit event stays
        return render_template("sso/failed.html", message=exc.message), 400
    window = current_app.config["FRESH_MFA_WINDOW"]
    fresh = services.mfa_is_recent(result.mfa_at, window)
    if pending and pending.get("reauth"):
        if not current_user.is_authenticated or current_user.id != result.user.id:
            db.rollback()
            return render_template("sso/failed.html", message="You confirmed as someone else. Sign in again."), 400
        db.commit()
        if not fresh:
            flash("Your identity provider did not ask for a second factor: confirm with your authenticator instead.", "warning")
            return redirect(url_for("auth.reauth", next=pending.get("next") or None))
        server_session().regenerate = True
        server_session().mark_mfa_verified = True
        server_session().mfa_verified_stamp = result.mfa_at
        return redirect(safe_next(pending.get("next"), url_for("home.index")))
    auth_login.record_login(db, user=result.user, factor="sso")
    db.commit()
    resume = session.get(RESUME_KEY)
    session.clear()
    if resume:
        session[RESUME_KEY] = resume
    server_session().regenerate = True
    login_user(result.user, remember=False)
    session["sso_provider_id"] = provider.id
    server_session().mark_authenticated = True
    if fresh:
        server_session().mark_mfa_verified = True
        server_session().mfa_verified_stamp = result.mfa_at
    return redirect(safe_next((pending or {}).get("next"), url_for("home.index")))


def logout_target() -> str | None:
    """Where logout sends the browser when this session came from SSO: govern's page that offers the
    provider's end-session (a redirect there straight from the logout form would break govern's CSP
    form-action 'self', which also covers where a form's answer redirects)."""
    provider_id = session.get("sso_provider_id")
    if not provider_id:
        return None
    provider = get_session().get(SsoProvider, int(provider_id))
    return url_for("sso.signed_out", slug=provider.slug) if provider is not None else None


@bp.route("/logout/sso/<slug>", methods=["GET"])
@permission(PUBLIC)
def signed_out(slug: str) -> Any:
    """Signed out of govern; RP-initiated logout at the provider when its metadata offers it."""
    try:
        provider = services.provider_by_slug(get_session(), slug)
    except NotFoundError:
        abort(404)
    end_url = services.end_session_url(_kit(), provider, post_logout_redirect_uri=f"{current_app.config['BASE_URL']}/login")
    return render_template("sso/signed_out.html", provider=provider, end_url=end_url)
