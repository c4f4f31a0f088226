"""Pages of the connectors: connections and their sync runs, the company's drift, one account's drift with
what the platform says, removal on the platform, and attestations of accounts without an API."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from govern.accounts.models import Account
from govern.accounts.services import can_see_account
from govern.connectors import attestations, connections, drift, history, removal, sync
from govern.connectors.forms import AttestForm, ConnectionForm, CoverForm, IdentityForm, OwnIdentityForm
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
from govern.paging import count_of, page_of, read_page
from govern.vault.models import Secret
from govern.web import STAFF, act, end_of_local_day, ensure_visible, page_arg, permission, safe_next, success, to_local

bp = Blueprint("connectors", __name__, url_prefix="/connectors")
PER_PAGE = 100


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
    form, cover, identity = _forms()
    due = attestations.due_attestations(db)
    # The drift as the last sync left it: computing the whole company's on each view is too slow (docs/performance.md).
    return render_template("connectors/index.html", connections=rows, counts=connections.covered_counts(db),
                           runs=sync.latest_runs(db), summary=sync.drift_summary(db), form=form, cover=cover,
                           identity=identity, due=due)


@bp.route("/connections/<int:connection_id>")
@permission("connectors.read")
def connection(connection_id: int) -> str:
    db = get_session()
    row = connections.get_connection(db, connection_id)
    query = select(ConnectedAccount).join(Account, Account.id == ConnectedAccount.account_id).where(
        ConnectedAccount.connection_id == row.id)
    listing = read_page(db, query.order_by(Account.display_name, ConnectedAccount.id), page_arg(), PER_PAGE,
                        count=count_of(query), scalars=True, unique=True)
    seen = sync.latest_seen(db, [c.account_id for c in listing.items])
    return render_template("connectors/connection.html", connection=row, listing=listing, seen=seen)


@bp.route("/drift")
@permission("connectors.read")
def company_drift() -> str:
    everything = drift.company_drift(get_session())
    kind = request.args.get("kind") if request.args.get("kind") in drift.KIND_LABELS else None
    severity = request.args.get("severity") if request.args.get("severity") in drift.SEVERITY_ORDER else None
    items = [i for i in everything if (kind is None or i.kind == kind) and (severity is None or i.severity == severity)]
    return render_template("connectors/drift.html", listing=page_of(items, page_arg(), PER_PAGE), total=len(everything),
                           kind=kind, severity=severity, kinds=drift.KIND_LABELS, severities=list(drift.SEVERITY_ORDER))


@bp.route("/sync", methods=["POST"])
@permission("connectors.manage")
def sync_now() -> WerkzeugResponse:
    db = get_session()
    # A page may not wait for thousands of accounts: past the budget the run stops where it is and stays
    # "running"; the next jobs run (or the next press) carries it on.
    deadline = time.monotonic() + float(current_app.config.get("CONNECTORS_WEB_SYNC_SECONDS") or 20)
    try:
        run = sync.run_sync(db, actor=current_user, settings=_settings(), trigger="web", checkpoint=db.commit,
                            should_stop=lambda: time.monotonic() > deadline)
    except sync.SyncBusy as exc:
        flash(str(exc), "error")
        return redirect(url_for("connectors.index"))
    progress = run.progress
    if run.status == "running":
        flash(f"Sync run #{run.id}: {len(progress['done']) + len(progress['failed'])} of {len(progress['accounts'])} "
              "account(s) read so far; the next jobs run carries on with the rest (or press Sync now again).", "success")
        return redirect(url_for("connectors.index"))
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


@bp.route("/identities/mine")
@permission(STAFF)
def my_identities() -> str:
    db = get_session()
    rows = connections.identities_of(db, current_user.person_id) if current_user.person_id else []
    return render_template("connectors/identities_mine.html", identities=rows, form=OwnIdentityForm())


@bp.route("/identities/mine", methods=["POST"])
@permission(STAFF)
def link_my_identity() -> Any:
    db = get_session()
    form = OwnIdentityForm()
    back = url_for("connectors.my_identities")

    def change() -> PlatformIdentity:
        person = db.get(Person, current_user.person_id or 0)
        if person is None:
            raise NotFoundError("Your login is not linked to a person in the directory.")
        return connections.link_identity(db, actor=current_user, person=person, platform=form.platform.data or "",
                                         external_id=form.external_id.data or "")

    return act(change, back=back, valid=form.validate_on_submit(), refused="Choose the platform and give your id.",
               done=lambda row: success("Your platform identity is linked.", back))


@bp.route("/identities/<int:identity_id>/unlink", methods=["POST"])
@permission("connectors.manage")
def unlink_identity(identity_id: int) -> Any:
    db = get_session()
    row = get_or_raise(db, PlatformIdentity, identity_id, "No such platform identity.")
    back = url_for("directory.detail", person_id=row.person_id)

    def change() -> None:
        connections.unlink_identity(db, actor=current_user, identity=row)

    return act(change, back=back, done=lambda _: success("The platform identity is unlinked.", back))


@bp.route("/accounts/<int:account_id>")
@permission("accounts.read")
def account(account_id: int) -> str:
    db = get_session()
    row = db.get(Account, account_id)
    # The account page's own rule: a manager sees the accounts they own or are crisis contact of.
    ensure_visible(row is not None and can_see_account(current_user, row))
    assert row is not None
    covered = removal.covered_account(db, account_id)
    asked, at_error = _asked_day()
    # "Who held it on 3 March": the set seen last by the end of that day, in the reader's zone.
    found = history.members_at(db, row, end_of_local_day(asked) if asked is not None else None)
    latest = attestations.latest_attestations(db, [account_id]).get(account_id)
    open_removals = list(db.scalars(select(PlatformRemoval).where(
        PlatformRemoval.account_id == account_id, PlatformRemoval.confirmed_at.is_(None)).order_by(PlatformRemoval.id)).unique())
    return render_template("connectors/account.html", account=row, covered=covered, found=found,
                           items=drift.account_drift(db, account_id), attestation=latest, removals=open_removals,
                           attested=row.platform in ATTESTED_PLATFORMS, form=AttestForm(), asked=asked,
                           at_error=at_error, history=_history(db, account_id) if covered else [])


def _history(db: Any, account_id: int) -> list[dict[str, Any]]:
    rows = []
    for _, taken, seen, count in sync.snapshot_history(db, account_id):
        local = to_local(taken)
        rows.append({"taken": taken, "seen": seen, "count": count, "day": local.date().isoformat() if local else ""})
    return rows


def _asked_day() -> tuple[date | None, str | None]:
    """The day of ``?at=YYYY-MM-DD`` (None when absent), or an error sentence for a bad one."""
    text = (request.args.get("at") or "").strip()
    if not text:
        return None, None
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return None, "Give the day as YYYY-MM-DD, for example 2026-03-03."


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


@bp.route("/accounts/<int:account_id>/remove-member", methods=["POST"])
@permission("connectors.manage")
def remove_member(account_id: int) -> Any:
    db = get_session()
    back = url_for("connectors.account", account_id=account_id)
    member_id = (request.form.get("member_id") or "").strip()[:200]

    def done(outcome: removal.Outcome) -> WerkzeugResponse:
        flash(outcome.message, "success" if outcome.ok else "error")
        return redirect(back)

    if not member_id:
        flash("Choose the member to remove.", "error")
        return redirect(back)
    return act(lambda: removal.remove_unmanaged(db, actor=current_user, settings=_settings(), account_id=account_id,
                                                member_id=member_id), back=back, done=done)


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
