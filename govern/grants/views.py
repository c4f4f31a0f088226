"""Granting, requesting, deciding and revoking roles; confirming removals from platforms."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from govern.accounts import services as accounts
from govern.accounts.models import Account
from govern.auth.models import User
from govern.auth.roles import is_admin
from govern.db import get_session
from govern.directory.models import Person
from govern.directory.services import find_person_by_email
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants import services
from govern.grants.forms import DecisionForm, GrantForm, PolicyLinkForm, RemovalForm, RequestForm, RevokeForm
from govern.grants.models import Grant, PlatformRemoval
from govern.policies import links as policy_links
from govern.policies.models import PolicyVersion
from govern.web import end_of_local_day, ensure_visible, form_errors, permission, safe_next

bp = Blueprint("grants", __name__, url_prefix="/grants")


def _role_choices(db: Any, platform: str | None) -> list[tuple[str, str]]:
    names = accounts.platform_role_names(db, platform) if platform else {}
    choices = []
    for role in accounts.roles(db):
        mapped = "; ".join(f"{n.system}: {n.platform_role}" for n in names.get(role.code, []))
        reveal = "may reveal credentials" if role.may_reveal else "no credentials"
        approval = ", needs a second approval" if role.needs_second_approval else ""
        choices.append((role.code, f"{role.name} ({reveal}{approval})" + (f" — {mapped}" if mapped else "")))
    return choices


def _page(template: str, form: Any, account: Account | None, policy_gate: dict[str, Any] | None = None) -> str:
    """The grant or request form: the account first, then its roles with the platform's names."""
    db = get_session()
    if account is not None and account.id not in {value for value, _label in form.account_id.choices}:
        account = None  # not an account one can be granted (archived or locked): choose again
    return render_template(template, form=form, account=account, roles=accounts.roles(db), policy_gate=policy_gate,
                           role_names=accounts.platform_role_names(db, account.platform) if account else {})


def _policy_gate(exc: services.PolicyNotAcceptedError, account_id: int | None, role_code: str | None,
                 grant_id: int | None = None) -> dict[str, Any]:
    """What the policy gate's offer needs: who, which version, whether they can sign in, and its form."""
    has_login = get_session().scalar(
        select(User.id).where(User.person_id == exc.person.id, User.is_active.is_(True))) is not None
    form = PolicyLinkForm(formdata=None, person_id=exc.person.id, version_id=exc.version.id, account_id=account_id,
                          role_code=role_code, grant_id=grant_id)
    return {"person": exc.person, "version": exc.version, "has_login": has_login, "form": form}


def _active_accounts(db: Any) -> list[Account]:
    # Managers may grant on accounts they own and, for their reports, on any account; the
    # service decides per person, so the list offers every active account.
    return list(db.scalars(select(Account).where(Account.status == "active").order_by(Account.platform, Account.handle).limit(2000)))


@bp.route("/")
@permission("grants.request")
def index() -> str:
    """My access, my requests, and the requests waiting for my decision."""
    db = get_session()
    mine = list(db.scalars(select(Grant).where(Grant.person_id == current_user.person_id).order_by(Grant.id.desc()).limit(200)))
    waiting, _total = services.decision_queue(db, current_user)
    # After an approval the policy gate refused: offer to send the grantee the policy.
    gate = None
    policy_for = request.args.get("policy_for", type=int)
    pending = db.get(Grant, policy_for) if policy_for is not None and 0 < policy_for < 2**31 else None
    if pending is not None and pending.status == "requested" and services.may_decide(current_user, pending):
        try:
            services.check_policy_accepted(db, pending.person, pending.role)
        except services.PolicyNotAcceptedError as exc:
            gate = _policy_gate(exc, pending.account_id, pending.role_code, grant_id=pending.id)
        except ConflictError:
            gate = None
    return render_template("grants/index.html", mine=mine, waiting=waiting, form=DecisionForm(), policy_gate=gate)


@bp.route("/new", methods=["GET", "POST"])
@permission("grants.manage")
def new() -> Any:
    db = get_session()
    form = GrantForm()
    account_id = request.args.get("account_id", type=int) or form.account_id.data
    form.account_id.choices = [(a.id, f"{a.platform_label} @{a.handle} — {a.display_name}") for a in _active_accounts(db)]
    selected = db.get(Account, account_id) if account_id else None
    form.role_code.choices = _role_choices(db, selected.platform if selected else None)
    if request.method == "GET" and selected:
        form.account_id.data = selected.id
        if "person" in request.args:
            form.person.data = request.args.get("person", "")[:320]
    if form.validate_on_submit():
        person = find_person_by_email(db, form.person.data or "")
        if person is None:
            form.person.errors = ["No one in the directory has this email."]
            return _page("grants/new.html", form, selected), 200
        try:
            grant = services.grant_role(db, actor=current_user, person_id=person.id, account_id=form.account_id.data,
                                        role_code=form.role_code.data or "", reason=form.reason.data or "",
                                        expires_at=end_of_local_day(form.expires_on.data))
        except (InvalidError, ConflictError, ForbiddenError, NotFoundError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.role_code, fields={"expires_at": "expires_on"}, whole=True)
            gate = _policy_gate(exc, form.account_id.data, form.role_code.data) \
                if isinstance(exc, services.PolicyNotAcceptedError) else None
            return _page("grants/new.html", form, selected, policy_gate=gate), 200
        db.commit()
        if grant.status == "requested" and services.awaits_owner(grant):
            owner = grant.account.business_owner
            flash(f"{grant.role.name} for {person.full_name} reveals the credentials of {grant.account.display_name}: it waits "
                  f"for the approval of {owner.full_name if owner else 'its business owner'}, the account's business owner.", "info")
        elif grant.status == "requested":
            flash(f"{grant.role.name} for {person.full_name} needs a second person's approval; it is waiting in their queue.", "info")
        else:
            flash(f"{person.full_name} is now {grant.role.name} on {grant.account.display_name}.", "success")
        return redirect(url_for("accounts.detail", account_id=grant.account_id))
    return _page("grants/new.html", form, selected)


@bp.route("/policy-request", methods=["POST"])
@permission("grants.manage")
def request_policy() -> Response:
    """The policy gate's way forward: email the grantee the policy to accept (a one-time link without a login)."""
    db = get_session()
    form = PolicyLinkForm()
    back = url_for("grants.new", account_id=form.account_id.data) if form.account_id.data else url_for("grants.new")
    if not form.validate_on_submit():
        flash("Choose the person again.", "error")
        return redirect(back)
    person = db.get(Person, form.person_id.data)
    version = db.get(PolicyVersion, form.version_id.data)
    account = db.get(Account, form.account_id.data) if form.account_id.data else None
    pending = db.get(Grant, form.grant_id.data) if form.grant_id.data else None
    if person is None or version is None or (form.grant_id.data and (pending is None or pending.person_id != person.id)):
        abort(404)
    if pending is not None:
        back = url_for("grants.index")
    # Only someone who may grant this person a role, or decide their request, may send them the policy for it.
    if not (is_admin(current_user) or (account is not None and services.may_manage(current_user, account, person))
            or (pending is not None and services.may_decide(current_user, pending))):
        abort(403)
    try:
        sent = policy_links.request_acknowledgement(
            db, actor=current_user, person=person, version=version, base_url=current_app.config.get("BASE_URL", ""),
            account_id=account.id if account is not None else None, role_code=(form.role_code.data or None),
            grant_id=pending.id if pending is not None else None)
    except (ConflictError, InvalidError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(back)
    db.commit()
    if sent.kind == "link":
        flash(f"{person.full_name} has no login: they got an email with a one-time link to read and accept the policy "
              f"(valid {policy_links.ACK_LINK_TTL.days} days). You will be notified when they accept; then grant the role.",
              "success")
    else:
        flash(f"{person.full_name} got an email and a notification to sign in and accept the policy. You will be "
              "notified when they accept; then grant the role.", "success")
    return redirect(back)


@bp.route("/request", methods=["GET", "POST"])
@permission("grants.request")
def request_access() -> Any:
    db = get_session()
    form = RequestForm()
    form.account_id.choices = [(a.id, f"{a.platform_label} @{a.handle} — {a.display_name}") for a in _active_accounts(db)]
    account_id = request.args.get("account_id", type=int) or form.account_id.data
    selected = db.get(Account, account_id) if account_id else None
    form.role_code.choices = _role_choices(db, selected.platform if selected else None)
    if request.method == "GET" and selected:
        form.account_id.data = selected.id
    if form.validate_on_submit():
        try:
            services.request_role(db, actor=current_user, account_id=form.account_id.data, role_code=form.role_code.data or "",
                                  reason=form.reason.data or "", expires_at=end_of_local_day(form.expires_on.data))
        except (InvalidError, ConflictError, NotFoundError) as exc:
            db.rollback()
            # The request form shows every refusal, the end date's too, above the role.
            form_errors(form, exc, default=form.role_code, fields={"expires_at": "role_code"}, whole=True)
            return _page("grants/request.html", form, selected), 200
        db.commit()
        flash("Your request was sent to the account's owner or your manager.", "success")
        return redirect(url_for("grants.index"))
    return _page("grants/request.html", form, selected)


def _grant_or_404(grant_id: int) -> Grant:
    db = get_session()
    grant = db.get(Grant, grant_id)
    ensure_visible(grant is not None)
    assert grant is not None
    return grant


def _back(form: Any, default: str) -> Response:
    return redirect(safe_next(getattr(form, "next", None) and form.next.data, default))


@bp.route("/<int:grant_id>/approve", methods=["POST"])
@permission("grants.manage")
def approve(grant_id: int) -> Response:
    db = get_session()
    grant = _grant_or_404(grant_id)
    form = DecisionForm()
    if form.validate_on_submit():
        try:
            services.approve_grant(db, actor=current_user, grant=grant, note=form.note.data or "")
        except (ConflictError, ForbiddenError, InvalidError) as exc:
            db.rollback()
            flash(exc.message, "error")
            if isinstance(exc, services.PolicyNotAcceptedError):
                return redirect(url_for("grants.index", policy_for=grant.id, _anchor="policy-gate"))
            return _back(form, url_for("grants.index"))
        db.commit()
        flash(f"Approved: {grant.person.full_name} is {grant.role.name} on {grant.account.display_name}.", "success")
    return _back(form, url_for("grants.index"))


@bp.route("/<int:grant_id>/reject", methods=["POST"])
@permission("grants.request")
def reject(grant_id: int) -> Response:
    db = get_session()
    grant = _grant_or_404(grant_id)
    form = DecisionForm()
    if form.validate_on_submit():
        try:
            services.reject_grant(db, actor=current_user, grant=grant, note=form.note.data or "")
        except (ConflictError, ForbiddenError, InvalidError) as exc:
            db.rollback()
            flash(exc.message if not isinstance(exc, InvalidError) else "Say why you reject or withdraw the request.", "error")
            return _back(form, url_for("grants.index"))
        db.commit()
        flash("Request closed.", "success")
    return _back(form, url_for("grants.index"))


@bp.route("/<int:grant_id>/revoke", methods=["POST"])
@permission("grants.manage")
def revoke(grant_id: int) -> Response:
    db = get_session()
    grant = _grant_or_404(grant_id)
    form = RevokeForm()
    default = url_for("accounts.detail", account_id=grant.account_id)
    if not form.validate_on_submit():
        flash("Say why this access is ending.", "error")
        return _back(form, default)
    try:
        removal = services.revoke_grant(db, actor=current_user, grant=grant, reason=form.reason.data or "",
                                        override_reason=form.override_reason.data or "")
    except (ConflictError, ForbiddenError, InvalidError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return _back(form, default)
    db.commit()
    flash(f"Revoked. Now remove {grant.person.full_name} as {removal.platform_role} on the platform and confirm it here.", "warning")
    return _back(form, default)


@bp.route("/removals/<int:removal_id>/confirm", methods=["POST"])
@permission("removals.confirm")
def confirm_removal(removal_id: int) -> Response:
    db = get_session()
    removal = db.get(PlatformRemoval, removal_id)
    if removal is None:
        abort(404)
    account = db.get(Account, removal.account_id)
    ensure_visible(account is not None and accounts.can_see_account(current_user, account))
    form = RemovalForm()
    default = url_for("accounts.detail", account_id=removal.account_id)
    if form.validate_on_submit():
        try:
            services.confirm_removal(db, actor=current_user, removal=removal, note=form.note.data or "")
        except (ConflictError, ForbiddenError) as exc:
            db.rollback()
            flash(exc.message, "error")
            return _back(form, default)
        db.commit()
        flash("Removal from the platform confirmed.", "success")
    return _back(form, default)
