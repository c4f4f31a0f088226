"""Pages of the account registry and the role catalogue."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload, lazyload
from werkzeug.wrappers import Response

from govern.accounts import services
from govern.accounts.forms import AccountForm, MappingForm, NewMappingForm
from govern.accounts.models import ACCOUNT_STATUSES, PLATFORM_LABELS, PLATFORMS, Account, PlatformRoleName
from govern.connectors import drift as connector_drift
from govern.connectors import removal as connector_removal
from govern.connectors.models import ATTESTED_PLATFORMS
from govern.db import get_session
from govern.directory.services import find_person_by_email
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.grants.forms import RemovalForm, RevokeForm
from govern.grants.models import Grant, PlatformRemoval
from govern.grants.services import may_manage, may_manage_account
from govern.rotation import schedules as rotation_schedules
from govern.vault import listing
from govern.web import ensure_visible, form_errors, may, page_arg, permission

bp = Blueprint("accounts", __name__, url_prefix="/accounts")

PAGE_SIZE = 50
HISTORY_SIZE = 100
#: The account page shows the latest exposures only; each secret's page lists all of its own.
EXPOSURES_SHOWN = 25


def _visible_account(account_id: int, options: list[Any] | None = None) -> Account:
    db = get_session()
    account = db.get(Account, account_id, options=options)
    ensure_visible(account is not None and services.can_see_account(current_user, account))
    assert account is not None
    return account


@bp.route("/")
@permission("accounts.read")
def index() -> str:
    db = get_session()
    args = request.args
    owner = find_person_by_email(db, args.get("owner", "")) if args.get("owner") else None
    flt = services.AccountFilter(
        platform=args.get("platform") if args.get("platform") in PLATFORMS else None,
        owner_id=owner.id if owner else (-1 if args.get("owner") else None),
        department=(args.get("department") or "")[:120] or None,
        status=args.get("status") if args.get("status") in ACCOUNT_STATUSES else None,
        risk=args.get("risk") if args.get("risk") in services.RISK_FLAGS else None,
        q=(args.get("q") or "")[:100] or None,
    )
    accounts, stats = services.list_accounts(db, current_user, flt, page=page_arg(), per_page=PAGE_SIZE)
    params = {k: v for k, v in args.items() if k in {"platform", "owner", "department", "status", "risk", "q"} and v}
    return render_template("accounts/index.html", accounts=accounts, stats=stats, params=params,
                           platforms=PLATFORM_LABELS, statuses=ACCOUNT_STATUSES, risks=services.RISK_FLAGS)


def _form_to_input(db: Any, form: AccountForm) -> tuple[services.AccountInput, dict[str, str]]:
    errors: dict[str, str] = {}

    def person_id(field: str, allow_label: bool = False) -> tuple[int | None, str]:
        raw = (getattr(form, field).data or "").strip()
        if not raw:
            return None, ""
        if "@" in raw and " " not in raw:
            person = find_person_by_email(db, raw)
            if person is not None:
                return person.id, ""
            if not allow_label:
                errors[field] = f"No one in the directory has the email {raw}."
                return None, ""
        if allow_label:
            return None, raw
        errors[field] = "Enter a person's work email."
        return None, ""

    owner, _ = person_id("business_owner")
    crisis, _ = person_id("crisis_contact")
    email_person, email_label = person_id("recovery_email_holder", allow_label=True)
    phone_person, phone_label = person_id("recovery_phone_holder", allow_label=True)
    data = services.AccountInput(
        platform=form.platform.data or "", handle=form.handle.data or "", url=form.url.data or "",
        display_name=form.display_name.data or "", business_owner_id=owner, crisis_contact_id=crisis,
        recovery_email_person_id=email_person, recovery_email_label=email_label,
        recovery_phone_person_id=phone_person, recovery_phone_label=phone_label,
        tier=form.tier.data or "standard", status=form.status.data or "active",
        rotation_interval_days=form.rotation_interval_days.data or 0,
        max_credential_holders=form.max_credential_holders.data or 0,
        min_admins=form.min_admins.data or 0, notes=form.notes.data or "",
    )
    return data, errors


#: Service field names -> the form fields that carry them.
FORM_FIELDS = {"business_owner_id": "business_owner", "crisis_contact_id": "crisis_contact",
               "recovery_email_label": "recovery_email_holder", "recovery_phone_label": "recovery_phone_holder"}


@bp.route("/new", methods=["GET", "POST"])
@permission("accounts.manage")
def new() -> Any:
    form = AccountForm()
    if form.validate_on_submit():
        db = get_session()
        data, errors = _form_to_input(db, form)
        if errors:
            form_errors(form, InvalidError("Check the form.", errors), default=form.handle, fields=FORM_FIELDS)
            return render_template("accounts/form.html", form=form, account=None), 200
        try:
            account = services.create_account(db, actor=current_user, data=data)
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.handle, fields=FORM_FIELDS)
            return render_template("accounts/form.html", form=form, account=None), 200
        db.commit()
        flash(f"{account.display_name} is registered.", "success")
        return redirect(url_for("accounts.detail", account_id=account.id))
    return render_template("accounts/form.html", form=form, account=None)


@bp.route("/<int:account_id>/edit", methods=["GET", "POST"])
@permission("accounts.manage")
def edit(account_id: int) -> Any:
    db = get_session()
    account = _visible_account(account_id)
    form = AccountForm(obj=account) if request.method == "GET" else AccountForm()
    if request.method == "GET":
        form.business_owner.data = account.business_owner.email if account.business_owner else ""
        form.crisis_contact.data = account.crisis_contact.email if account.crisis_contact else ""
        form.recovery_email_holder.data = account.recovery_email_person.email if account.recovery_email_person else (account.recovery_email_label or "")
        form.recovery_phone_holder.data = account.recovery_phone_person.email if account.recovery_phone_person else (account.recovery_phone_label or "")
    if form.validate_on_submit():
        data, errors = _form_to_input(db, form)
        if errors:
            form_errors(form, InvalidError("Check the form.", errors), default=form.handle, fields=FORM_FIELDS)
            return render_template("accounts/form.html", form=form, account=account), 200
        try:
            changed = services.update_account(db, actor=current_user, account=account, data=data)
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.handle, fields=FORM_FIELDS)
            return render_template("accounts/form.html", form=form, account=account), 200
        db.commit()
        flash("Saved." if changed else "Nothing changed.", "success")
        return redirect(url_for("accounts.detail", account_id=account.id))
    return render_template("accounts/form.html", form=form, account=account)


@bp.route("/<int:account_id>")
@permission("accounts.read")
def detail(account_id: int) -> str:
    db = get_session()
    # The four people the page names come with the account, in the same statement.
    account = _visible_account(account_id, options=[joinedload(Account.business_owner), joinedload(Account.crisis_contact),
                                                    joinedload(Account.recovery_email_person),
                                                    joinedload(Account.recovery_phone_person)])
    stats = services.account_stats(db, [account], with_grant_ids=True)[account.id]
    roles, role_names = services.roles_and_platform_names(db, account.platform)
    # Every live grant, however long the history, and the latest grants for the history table: one
    # query. The latest HISTORY_SIZE ids are all in it and no other row is newer, so they come first.
    # Their account and roles are in the session already (read above): only the people are joined.
    latest = select(Grant.id).where(Grant.account_id == account.id).order_by(Grant.id.desc()).limit(HISTORY_SIZE)
    rows = list(db.scalars(
        select(Grant).options(lazyload(Grant.account), lazyload(Grant.role))
        .where(Grant.account_id == account.id,
               or_(Grant.status.in_(("active", "requested")), Grant.id.in_(latest.scalar_subquery())))
        .order_by(Grant.id.desc())
    ))
    grants = rows[:HISTORY_SIZE]
    live = [g for g in reversed(rows) if g.status in ("active", "requested")]
    active = [g for g in live if g.status == "active"]
    pending = [g for g in live if g.status == "requested"]
    holders = {role.code: [g for g in active if g.role_code == role.code] for role in roles}
    # The stats counted them already: most accounts have none to list.
    removals = list(db.scalars(
        select(PlatformRemoval).where(PlatformRemoval.account_id == account.id, PlatformRemoval.confirmed_at.is_(None))
        .order_by(PlatformRemoval.id)
    )) if stats.unconfirmed_removals else []
    connector = connector_removal.covered_account(db, account.id)
    return render_template(
        "accounts/detail.html", account=account, stats=stats, holders=holders, roles=roles, pending=pending,
        history=grants, history_size=HISTORY_SIZE, removals=removals, role_names=role_names,
        may_manage_account=may_manage_account(current_user, account),
        may_manage=lambda grant: may_manage(current_user, account, grant.person),
        revoke_form=RevokeForm(), removal_form=RemovalForm(), risk_labels=services.RISK_FLAGS,
        **_vault_section(db, account),
        unaccepted=stats.unaccepted_grant_ids,
        connector=connector,
        platform_drift=connector_drift.account_drift(db, account.id)
        if connector is not None or account.platform in ATTESTED_PLATFORMS else None,
    )


def _vault_section(db: Any, account: Account) -> dict[str, Any]:
    """The account's secrets (names, kinds, ages; never values) and who saw them."""
    seen = listing.exposures(db, account_id=account.id, per_page=EXPOSURES_SHOWN)
    exposures, total = seen.items, seen.total or 0
    rows = listing.account_secrets(db, account.id)
    schedules: dict[int, Any] = {}
    if may(current_user, "rotation.read"):
        known = {r.secret.id: (r.version, r.since) for r in rows}
        schedules = {s.secret.id: s for s in rotation_schedules.schedules(db, [r.secret for r in rows], current=known)}
    return {"vault_rows": rows, "vault_exposures": exposures, "vault_exposure_total": total,
            "vault_schedules": schedules}


@bp.route("/roles")
@permission("accounts.read")
def roles() -> str:
    db = get_session()
    mappings = list(db.scalars(select(PlatformRoleName).order_by(PlatformRoleName.platform, PlatformRoleName.system, PlatformRoleName.id)))
    new_form = NewMappingForm()
    catalogue = services.roles(db)
    new_form.role_code.choices = [(r.code, r.name) for r in catalogue]
    return render_template("accounts/roles.html", roles=catalogue, mappings=mappings, platforms=PLATFORM_LABELS,
                           form=MappingForm(), new_form=new_form)


@bp.route("/roles/mappings/<int:mapping_id>", methods=["POST"])
@permission("roles.manage")
def edit_mapping(mapping_id: int) -> Response:
    db = get_session()
    form = MappingForm()
    if not form.validate_on_submit():
        flash("Enter the platform's role name (up to 120 characters).", "error")
        return redirect(url_for("accounts.roles"))
    try:
        services.set_platform_role_name(db, actor=current_user, mapping_id=mapping_id, platform_role=form.platform_role.data or "")
    except NotFoundError:
        abort(404)
    except InvalidError as exc:
        flash(exc.message, "error")
        return redirect(url_for("accounts.roles"))
    db.commit()
    flash("Mapping saved.", "success")
    return redirect(url_for("accounts.roles"))


@bp.route("/roles/mappings", methods=["POST"])
@permission("roles.manage")
def add_mapping() -> Response:
    db = get_session()
    form = NewMappingForm()
    form.role_code.choices = [(r.code, r.name) for r in services.roles(db)]
    if not form.validate_on_submit():
        flash("Fill in every field of the new mapping.", "error")
        return redirect(url_for("accounts.roles"))
    try:
        services.add_platform_role_name(db, actor=current_user, platform=form.platform.data or "", role_code=form.role_code.data or "",
                                        system=form.system.data or "", platform_role=form.platform_role.data or "")
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("accounts.roles"))
    db.commit()
    flash("Mapping added.", "success")
    return redirect(url_for("accounts.roles"))
