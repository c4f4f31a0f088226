"""Pages of the connectors: connections and their sync runs, the company's drift, one account's drift with
what the platform says, removal on the platform, and attestations of accounts without an API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from govern.accounts.models import Account
from govern.accounts.services import can_see_account
from govern.connectors import attestations, connections, drift, removal, sync
from govern.connectors.forms import AttestForm, ConnectionForm, CoverForm, IdentityForm
from govern.connectors.models import (
    ATTESTED_PLATFORMS,
    COVERS,
    Attestation,
    ConnectedAccount,
    Connection,
    PlatformIdentity,
)
from govern.db import get_session
from govern.directory.models import Person
from govern.errors import InvalidError, NotFoundError, get_or_raise
from govern.grants.models import PlatformRemoval
from govern.vault.models import Secret
from govern.web import act, ensure_visible, permission, safe_next, success

bp = Blueprint("connectors", __name__, url_prefix="/connectors")


def _screenshots() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / "attestations"


@bp.route("/attestations/<int:attestation_id>/screenshot")
@permission("accounts.read")
def screenshot(attestation_id: int) -> Any:
    row = get_or_raise(get_session(), Attestation, attestation_id, "No such attestation.")
    account = get_session().get(Account, row.account_id)
    path = attestations.screenshot_path(_screenshots(), row)
    ensure_visible(path is not None and account is not None and can_see_account(current_user, account))
    assert path is not None
    response = send_file(path, mimetype=attestations.IMAGE_TYPES[path.suffix.lstrip(".")], max_age=0)
    response.headers["Content-Disposition"] = "inline"
    return response


def _settings() -> connections.Settings:
    return connections.Settings.from_config(current_app.config, current_app.extensions.get("govern.keyring"))


def _forms() -> tuple[ConnectionForm, CoverForm, IdentityForm]:
    db = get_session()
    form = ConnectionForm()
    form.secret_id.choices = [(s.id, f"{s.account.display_name}: {s.label}") for s in db.scalars(
        select(Secret).where(Secret.kind == "api_token").order_by(Secret.label)).unique()]
    cover = CoverForm()
    platforms = sorted({p for covered in COVERS.values() for p in covered})
    taken = select(ConnectedAccount.account_id)
    cover.connection_id.choices = [(c.id, f"{c.name} ({c.label})") for c in db.scalars(
        select(Connection).order_by(Connection.name))]
    cover.account_id.choices = [(a.id, f"{a.display_name} ({a.platform_label})") for a in db.scalars(
        select(Account).where(Account.platform.in_(platforms), Account.id.not_in(taken)).order_by(Account.display_name))]
    return form, cover, IdentityForm()


@bp.route("/")
@permission("connectors.read")
def index() -> str:
    db = get_session()
    rows = list(db.scalars(select(Connection).order_by(Connection.platform, Connection.name)))
    covered = connections.connected_accounts(db)
    items = drift.company_drift(db)
    form, cover, identity = _forms()
    due = attestations.due_attestations(db)
    return render_template("connectors/index.html", connections=rows, covered=covered, runs=sync.latest_runs(db),
                           items=items, form=form, cover=cover, identity=identity, due=due)


@bp.route("/drift")
@permission("connectors.read")
def company_drift() -> str:
    items = drift.company_drift(get_session())
    return render_template("connectors/drift.html", items=items)


@bp.route("/sync", methods=["POST"])
@permission("connectors.manage")
def sync_now() -> WerkzeugResponse:
    db = get_session()
    run = sync.run_sync(db, actor=current_user, settings=_settings(), trigger="web", checkpoint=db.commit)
    progress = run.progress
    flash(f"Sync run #{run.id}: {len(progress['done'])} account(s) read, {len(progress['failed'])} failed, "
          f"{run.requests} request(s).", "success" if not progress["failed"] else "error")
    for account_id, error in progress["failed"].items():
        account = db.get(Account, int(account_id))
        flash(f"{account.display_name if account else account_id}: {error}", "error")
    return redirect(url_for("connectors.index"))


@bp.route("/connections", methods=["POST"])
@permission("connectors.manage")
def create() -> Any:
    db = get_session()
    form, _, _ = _forms()
    back = url_for("connectors.index")

    def change() -> Connection:
        secret = get_or_raise(db, Secret, form.secret_id.data or 0, "No such secret.")
        return connections.create_connection(db, actor=current_user, platform=form.platform.data or "",
                                             external_id=form.external_id.data or "", name=form.name.data or "",
                                             secret=secret, auto_remove=bool(form.auto_remove.data))

    return act(change, back=back, valid=form.validate_on_submit(), refused="Fill in the platform id and the token.",
               done=lambda c: success(f"{c.name} is connected; add the accounts it covers.", back))


@bp.route("/connections/accounts", methods=["POST"])
@permission("connectors.manage")
def cover() -> Any:
    db = get_session()
    _, form, _ = _forms()
    back = url_for("connectors.index")

    def change() -> ConnectedAccount:
        connection = connections.get_connection(db, form.connection_id.data or 0)
        account = get_or_raise(db, Account, form.account_id.data or 0, "No such account.")
        return connections.cover_account(db, actor=current_user, connection=connection, account=account,
                                         platform_id=form.platform_id.data or "")

    return act(change, back=back, valid=form.validate_on_submit(), refused="Choose an account and its platform id.",
               done=lambda row: success(f"{row.account.display_name} is covered; the next sync reads it.", back))


@bp.route("/connections/<int:connection_id>/auto-remove", methods=["POST"])
@permission("connectors.manage")
def auto_remove(connection_id: int) -> Any:
    db = get_session()
    back = url_for("connectors.index")

    def change() -> Connection:
        connection = connections.get_connection(db, connection_id)
        return connections.set_auto_remove(db, actor=current_user, connection=connection, allowed=not connection.auto_remove)

    return act(change, back=back, done=lambda c: success(
        f"Automatic removal on {c.name} is {'on' if c.auto_remove else 'off'}.", back))


@bp.route("/identities", methods=["POST"])
@permission("connectors.manage")
def link_identity() -> Any:
    db = get_session()
    _, _, form = _forms()
    back = url_for("connectors.index")

    def change() -> PlatformIdentity:
        person = db.scalar(select(Person).where(Person.email == (form.person.data or "").strip().lower()))
        if person is None:
            raise NotFoundError("No one in the directory has that email.")
        return connections.link_identity(db, actor=current_user, person=person, platform=form.platform.data or "",
                                         external_id=form.external_id.data or "")

    return act(change, back=back, valid=form.validate_on_submit(), refused="Name the person and their platform id.",
               done=lambda row: success("The platform identity is linked.", back))


@bp.route("/accounts/<int:account_id>")
@permission("accounts.read")
def account(account_id: int) -> str:
    db = get_session()
    row = db.get(Account, account_id)
    # The account page's own rule: a manager sees the accounts they own or are crisis contact of.
    ensure_visible(row is not None and can_see_account(current_user, row))
    assert row is not None
    covered = removal.covered_account(db, account_id)
    snapshot = sync.latest_snapshot(db, account_id)
    latest = attestations.latest_attestations(db, [account_id]).get(account_id)
    open_removals = list(db.scalars(select(PlatformRemoval).where(
        PlatformRemoval.account_id == account_id, PlatformRemoval.confirmed_at.is_(None)).order_by(PlatformRemoval.id)).unique())
    return render_template("connectors/account.html", account=row, covered=covered, snapshot=snapshot,
                           items=drift.account_drift(db, account_id), attestation=latest, removals=open_removals,
                           attested=row.platform in ATTESTED_PLATFORMS, form=AttestForm())


@bp.route("/removals/<int:removal_id>/remove", methods=["POST"])
@permission("connectors.manage")
def remove(removal_id: int) -> Any:
    db = get_session()
    row = get_or_raise(db, PlatformRemoval, removal_id, "No such removal.")
    back = safe_next(request.form.get("next"), url_for("connectors.account", account_id=row.account_id))

    def done(outcome: removal.Outcome) -> WerkzeugResponse:
        flash(outcome.message, "success" if outcome.ok else "error")
        return redirect(back)

    return act(lambda: removal.remove_on_platform(db, actor=current_user, settings=_settings(), removal=row),
               back=back, done=done)


@bp.route("/accounts/<int:account_id>/attest", methods=["POST"])
@permission("connectors.attest")
def attest(account_id: int) -> Any:
    db = get_session()
    row = db.get(Account, account_id)
    # The account page's own rule: a manager sees the accounts they own or are crisis contact of.
    ensure_visible(row is not None and can_see_account(current_user, row))
    assert row is not None
    form = AttestForm()
    back = url_for("connectors.account", account_id=account_id)

    def shown_again(exc: InvalidError) -> Any:
        flash(exc.message, "error")
        return redirect(back)

    def change() -> Any:
        upload = request.files.get("screenshot")
        data = upload.read() if upload is not None and upload.filename else b""
        name = attestations.screenshot_name(data) if data else None  # validated before anything is written
        attestation = attestations.attest(db, actor=current_user, account=row, members_text=form.members.data or "",
                                          note=form.note.data or "", screenshot=name)
        if data and name:
            attestations.write_screenshot(_screenshots(), name, data)
        return attestation

    return act(change,
               back=back, valid=form.validate_on_submit(), refused="Check the list.", invalid=shown_again,
               done=lambda a: success(f"Attested {len(a.members)} member(s) of {row.display_name}.", back))
