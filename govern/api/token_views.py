"""The pages of API tokens: each person's own tokens, and the service tokens admins and IT manage.

A new token's text is shown once, on the answer to the POST that created it: it is never kept in the
session nor flashed, and every page is sent with Cache-Control: no-store (govern.web).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from govern.accounts.models import Account
from govern.activity import account_name
from govern.api.spec import PREFIX
from govern.api.token_forms import ChangeOwnerForm, PersonalTokenForm, ServiceTokenForm
from govern.auth import apitokens
from govern.auth.apitokens import SCOPES, TokenRequest
from govern.auth.models import ApiToken
from govern.db import get_session, utcnow
from govern.directory.services import find_person_by_reference
from govern.errors import GovernError, InvalidError, NotFoundError
from govern.forms import FlaskForm
from govern.offboarding.checklist import close_linked_items
from govern.web import (
    POLICY,
    act,
    ensure_visible,
    form_errors,
    fresh_mfa_required,
    mfa_is_fresh,
    permission,
    roles_allow,
    roles_of,
    success,
)

bp = Blueprint("api_tokens", __name__)

OWN = "api.tokens.own"
MANAGE = "api.tokens.manage"
REVEAL = "secrets:reveal"


def _expiry(days: int | None) -> datetime:
    return utcnow() + timedelta(days=days or 0)


def _api_url() -> str:
    return request.host_url.rstrip("/") + PREFIX


# --- one's own tokens -------------------------------------------------------------------------------------


def _own_scopes() -> list[str]:
    """The scopes the user's roles allow, in SCOPES' order; never one only service tokens may hold."""
    roles = roles_of(current_user)
    return [name for name, scope in SCOPES.items()
            if not scope.service_only and any(roles_allow(roles, p) for p in scope.permissions)]


def _personal_form() -> PersonalTokenForm:
    form = PersonalTokenForm()
    form.scopes.choices = [(name, name) for name in _own_scopes()]
    return form


def _own_page(form: PersonalTokenForm, status: int = 200) -> tuple[str, int]:
    db = get_session()
    return render_template("api/tokens.html", form=form, tokens=apitokens.tokens_of_user(db, current_user.id),
                           status_of=apitokens.status_of, scopes_of=apitokens.scopes_of, scopes=SCOPES,
                           mfa_fresh=mfa_is_fresh(), api_url=_api_url()), status


@bp.route("/account/api-tokens")
@permission(OWN)
def mine() -> tuple[str, int]:
    """The user's own tokens and the form to make one."""
    return _own_page(_personal_form())


@bp.route("/account/api-tokens", methods=["POST"])
@permission(OWN)
@fresh_mfa_required
def create_mine() -> Any:
    """Make a personal token and show its text, once."""
    form = _personal_form()
    if not form.validate_on_submit():
        return _own_page(form, 400)
    token_request = TokenRequest(name=form.name.data or "", scopes=list(form.scopes.data or ()),
                                 expires_at=_expiry(form.expires_in.data))

    def invalid(exc: InvalidError) -> tuple[str, int]:
        form_errors(form, exc, default=form.name, fields={"expires_at": "expires_in"})
        return _own_page(form, 400)

    return act(lambda: apitokens.create_personal_token(get_session(), actor=current_user, request=token_request,
                                                       policy=POLICY),
               back=url_for("api_tokens.mine"), invalid=invalid,
               done=lambda made: _shown(made, back=url_for("api_tokens.mine")))


@bp.route("/account/api-tokens/<int:token_id>/revoke", methods=["POST"])
@permission(OWN)
def revoke_mine(token_id: int) -> Response:
    """Revoke one of the user's own tokens."""
    db = get_session()
    token = db.get(ApiToken, token_id)
    # Another user's token, or a service token: as if there were none.
    ensure_visible(token is not None and token.kind == "personal" and token.user_id == current_user.id)
    assert token is not None
    back = url_for("api_tokens.mine")
    return act(lambda: apitokens.revoke_token(db, actor=current_user, token=token, reason="revoked by its owner"),
               back=back, valid=FlaskForm().validate_on_submit(),
               done=lambda _: success(f"“{token.name}” is revoked: calls with it are refused from now on.", back))


def _shown(made: tuple[ApiToken, str], *, back: str) -> str:
    """The page that shows a new token's text: the only time anyone sees it."""
    token, text = made
    return render_template("api/token_shown.html", token=token, text=text, back=back, scopes=sorted(
        apitokens.scopes_of(token)), status=apitokens.status_of(token), api_url=_api_url())


# --- service tokens ---------------------------------------------------------------------------------------


def _is_it() -> bool:
    return "it" in roles_of(current_user)


def _service_scopes() -> list[str]:
    """Admins offer every scope but revealing; IT also offer revealing (for named accounts)."""
    return [name for name, scope in SCOPES.items() if not scope.service_only or _is_it()]


def _accounts() -> list[Account]:
    return list(get_session().scalars(select(Account).where(Account.status == "active")
                                      .order_by(Account.platform, Account.handle).limit(2000)))


def _service_form() -> ServiceTokenForm:
    form = ServiceTokenForm()
    form.scopes.choices = [(name, name) for name in _service_scopes()]
    form.account_ids.choices = ([(a.id, f"{a.display_name} ({account_name(a.platform, a.handle)})") for a in _accounts()]
                                if _is_it() else [])
    return form


def _service_page(form: ServiceTokenForm, status: int = 200) -> tuple[str, int]:
    db = get_session()
    tokens = apitokens.service_tokens(db)
    account_ids = {a for t in tokens for a in apitokens.account_ids_of(t)}
    accounts = {a.id: a for a in db.scalars(select(Account).where(Account.id.in_(account_ids)))} if account_ids else {}
    return render_template("api/service_tokens.html", form=form, tokens=tokens, accounts=accounts,
                           account_name=account_name, status_of=apitokens.status_of, scopes_of=apitokens.scopes_of,
                           role_cap_of=apitokens.role_cap_of, account_ids_of=apitokens.account_ids_of, scopes=SCOPES,
                           is_it=_is_it(), is_admin="admin" in roles_of(current_user), owner_form=ChangeOwnerForm(),
                           mfa_fresh=mfa_is_fresh(), api_url=_api_url()), status


@bp.route("/admin/api-tokens")
@permission(MANAGE)
def service() -> tuple[str, int]:
    """Every service token and the form to make one."""
    return _service_page(_service_form())


@bp.route("/admin/api-tokens", methods=["POST"])
@permission(MANAGE)
@fresh_mfa_required
def create_service() -> Any:
    """Make a service token for an owner and show its text, once."""
    form = _service_form()
    if not form.validate_on_submit():
        return _service_page(form, 400)
    owner = find_person_by_reference(get_session(), form.owner.data or "")
    if owner is None:
        form.owner.errors = ["No one in the directory has this email or employee id."]
        return _service_page(form, 400)
    token_request = TokenRequest(name=form.name.data or "", scopes=list(form.scopes.data or ()),
                                 expires_at=_expiry(form.expires_in.data), owner=owner,
                                 roles=list(form.roles.data or ()), account_ids=list(form.account_ids.data or ()))

    def invalid(exc: InvalidError) -> tuple[str, int]:
        form_errors(form, exc, default=form.name, fields={"expires_at": "expires_in"})
        return _service_page(form, 400)

    return act(lambda: apitokens.create_service_token(get_session(), actor=current_user, request=token_request,
                                                      policy=POLICY),
               back=url_for("api_tokens.service"), invalid=invalid,
               done=lambda made: _shown(made, back=url_for("api_tokens.service")))


def _in_words(exc: GovernError) -> str:
    """A domain error as the flash says it: an invalid input's reasons, else its message."""
    reasons = exc.reasons if isinstance(exc, InvalidError) else {}
    return " ".join(reasons.values()) or exc.message


def _service_token(token_id: int) -> ApiToken:
    try:
        token = apitokens.get_token(get_session(), token_id)
    except NotFoundError:
        token = None
    # A personal token is its owner's business: the admin page knows service tokens only.
    ensure_visible(token is not None and token.kind == "service")
    assert token is not None
    return token


@bp.route("/admin/api-tokens/<int:token_id>/approve", methods=["POST"])
@permission(MANAGE)
@fresh_mfa_required
def approve(token_id: int) -> Response:
    """A second IT user approves a token that may reveal secrets."""
    token = _service_token(token_id)
    back = url_for("api_tokens.service")
    return act(lambda: apitokens.approve_service_token(get_session(), actor=current_user, token=token),
               back=back, valid=FlaskForm().validate_on_submit(),
               done=lambda _: success(f"“{token.name}” is approved: it may reveal the secrets of its accounts now.",
                                      back))


@bp.route("/admin/api-tokens/<int:token_id>/revoke", methods=["POST"])
@permission(MANAGE)
@fresh_mfa_required
def revoke_service(token_id: int) -> Response:
    """Revoke a service token."""
    token = _service_token(token_id)
    back = url_for("api_tokens.service")

    def revoke() -> bool:
        db = get_session()
        revoked = apitokens.revoke_token(db, actor=current_user, token=token, reason=f"revoked by {current_user.email}")
        # An offboarding that asked for a new owner of this token (or its revocation) has its item done.
        close_linked_items(db, ref_type="api_token", ref_id=token.id, actor=current_user)
        return revoked

    return act(revoke, back=back, valid=FlaskForm().validate_on_submit(),
               done=lambda _: success(f"“{token.name}” is revoked: the integration's next call is refused.", back))


@bp.route("/admin/api-tokens/<int:token_id>/owner", methods=["POST"])
@permission(MANAGE)
@fresh_mfa_required
def change_owner(token_id: int) -> Response:
    """Give a service token a new owner (a leaver's integration keeps working)."""
    token = _service_token(token_id)
    form = ChangeOwnerForm()
    back = url_for("api_tokens.service")

    def change() -> ApiToken:
        db = get_session()
        owner = find_person_by_reference(db, form.owner.data or "")
        if owner is None:
            raise InvalidError("No one in the directory has this email or employee id.")
        changed = apitokens.change_owner(db, actor=current_user, token=token, owner=owner)
        # An offboarding that asked for a new owner of this token has its item done.
        close_linked_items(db, ref_type="api_token", ref_id=changed.id, actor=current_user)
        return changed

    return act(change, back=back, valid=form.validate_on_submit(), refused="Name the new owner by their email.",
               explain=_in_words, done=lambda changed: success(f"“{changed.name}” now belongs to {changed.owner.full_name} and acts "
                                            "as their login.", back))
