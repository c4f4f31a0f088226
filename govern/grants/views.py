"""Granting, requesting, deciding and revoking roles; confirming removals from platforms."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from govern.accounts import services as accounts
from govern.accounts.models import Account
from govern.db import get_session
from govern.directory.models import Person
from govern.directory.services import find_person_by_email
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants import services
from govern.grants.forms import DecisionForm, GrantForm, RemovalForm, RequestForm, RevokeForm
from govern.grants.models import Grant, PlatformRemoval
from govern.web import ensure_visible, permission, safe_next

bp = Blueprint("grants", __name__, url_prefix="/grants")


def _end_of_day(day: date | None) -> datetime | None:
    """A grant "until 30 November" lasts to the end of that day (UTC)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC) if day else None


def _role_choices(db: Any, platform: str | None) -> list[tuple[str, str]]:
    names = accounts.platform_role_names(db, platform) if platform else {}
    choices = []
    for role in accounts.roles(db):
        mapped = "; ".join(f"{n.system}: {n.platform_role}" for n in names.get(role.code, []))
        reveal = "may reveal credentials" if role.may_reveal else "no credentials"
        approval = ", needs a second approval" if role.needs_second_approval else ""
        choices.append((role.code, f"{role.name} ({reveal}{approval})" + (f" — {mapped}" if mapped else "")))
    return choices


def _page(template: str, form: Any, account: Account | None) -> str:
    """The grant or request form: the account first, then its roles with the platform's names."""
    db = get_session()
    if account is not None and account.id not in {value for value, _label in form.account_id.choices}:
        account = None  # not an account one can be granted (archived or locked): choose again
    return render_template(template, form=form, account=account, roles=accounts.roles(db),
                           role_names=accounts.platform_role_names(db, account.platform) if account else {})


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
    waiting: list[Grant] = []
    if services.is_admin(current_user) or "manager" in current_user.roles:
        query = (select(Grant).where(Grant.status == "requested").order_by(Grant.requested_at)
                 .options(selectinload(Grant.requested_by)))  # may_decide reads who asked
        if not services.is_admin(current_user):
            reports = select(Person.id).where(Person.manager_id == current_user.person_id)
            owned = select(Account.id).where(Account.business_owner_id == current_user.person_id)
            query = query.where(or_(Grant.account_id.in_(owned), Grant.person_id.in_(reports)))
        waiting = [g for g in db.scalars(query.limit(500)) if services.may_decide(current_user, g)]
    return render_template("grants/index.html", mine=mine, waiting=waiting, form=DecisionForm())


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
        form.person.data = request.args.get("person", "")[:320]
    if form.validate_on_submit():
        person = find_person_by_email(db, form.person.data or "")
        if person is None:
            form.person.errors = ["No one in the directory has this email."]
            return _page("grants/new.html", form, selected), 200
        try:
            grant = services.grant_role(db, actor=current_user, person_id=person.id, account_id=form.account_id.data,
                                        role_code=form.role_code.data or "", reason=form.reason.data or "",
                                        expires_at=_end_of_day(form.expires_on.data))
        except (InvalidError, ConflictError, ForbiddenError, NotFoundError) as exc:
            db.rollback()
            target = {"reason": form.reason, "expires_at": form.expires_on}
            field = next(iter(getattr(exc, "reasons", {}) or {}), None)
            (target.get(field) or form.role_code).errors = [exc.message]
            return _page("grants/new.html", form, selected), 200
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
                                  reason=form.reason.data or "", expires_at=_end_of_day(form.expires_on.data))
        except (InvalidError, ConflictError, NotFoundError) as exc:
            db.rollback()
            form.role_code.errors = [exc.message]
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
