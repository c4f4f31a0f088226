"""Offboarding pages: the list, starting one, the checklist, successors, items, evidence downloads."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from govern.auth.models import User
from govern.connectors.connections import connected_labels
from govern.csvexport import safe_cell
from govern.db import get_session, utcnow
from govern.directory import services as directory
from govern.errors import ConflictError, ForbiddenError, GovernError, InvalidError, NotFoundError
from govern.offboarding import evidence as offboarding_evidence
from govern.offboarding import reading as offboarding_reading
from govern.offboarding.checklist import (
    add_manual_item,
    choose_successor,
    complete_item,
    get_item,
    get_offboarding,
    skip_item,
    sync_offboarding,
)
from govern.offboarding.duties import accounts_with_duties
from govern.offboarding.evidence import EVIDENCE_COLUMNS, EXPOSURE_COLUMNS, ROTATION_COLUMNS, Evidence
from govern.offboarding.forms import CancelForm, DoneForm, EditForm, ItemForm, SkipForm, StartForm, SuccessorForm
from govern.offboarding.models import Offboarding
from govern.offboarding.permissions import may_choose_successor, may_view, may_work_item
from govern.offboarding.reading import (
    blockers_of,
    flags_of,
    items_of,
    linked_tasks,
    list_offboardings,
    progress_of,
    successors_of,
)
from govern.offboarding.scheduling import cancel_offboarding, rehire_person, schedule_offboarding, update_offboarding
from govern.offboarding.settings import OWNER_LABELS, Settings, settings_from
from govern.web import ensure_visible, form_errors, from_local, page_arg, permission, to_local

bp = Blueprint("offboarding", __name__, url_prefix="/offboarding")

PAGE_SIZE = 50


def _settings() -> Settings:
    return settings_from(current_app.config)


def _visible(offboarding_id: int) -> Offboarding:
    db = get_session()
    try:
        offboarding = get_offboarding(db, offboarding_id)
    except NotFoundError:
        ensure_visible(False)
        raise
    ensure_visible(may_view(db, current_user, offboarding))
    return offboarding


def _back(offboarding_id: int) -> WerkzeugResponse:
    return redirect(url_for("offboarding.detail", offboarding_id=offboarding_id))


def _flash_error(exc: GovernError) -> None:
    reasons = getattr(exc, "reasons", None) or {}
    flash(" ".join(dict.fromkeys([exc.message, *reasons.values()])) if reasons else exc.message, "error")


@bp.route("/")
@permission("offboarding.read")
def index() -> str:
    db = get_session()
    status = "closed" if request.args.get("status") == "closed" else "open"
    page = page_arg()
    listing = list_offboardings(db, current_user, status=status, page=page, per_page=PAGE_SIZE)
    return render_template("offboarding/index.html", rows=listing.items, listing=listing, status=status,
                           progress=progress_of(db, [o.id for o in listing.items]), blockers=blockers_of, now=utcnow())


@bp.route("/new", methods=["GET", "POST"])
@permission("offboarding.manage")
def new() -> Any:
    form = StartForm()
    if request.method == "GET" and request.args.get("person"):
        form.person.data = request.args.get("person", "")[:320]
    if form.validate_on_submit():
        db = get_session()
        person = directory.find_person_by_reference(db, form.person.data or "")
        if person is None:
            form.person.errors = ["No one in the directory has that email or employee id."]
            return render_template("offboarding/new.html", form=form), 200
        effective_at = None if form.immediate.data else from_local(form.effective_at.data)
        if not form.immediate.data and effective_at is None:
            form.effective_at.errors = ["Choose when it takes effect, or tick Immediately."]
            return render_template("offboarding/new.html", form=form), 200
        try:
            offboarding = schedule_offboarding(
                db, actor=current_user, person=person, effective_at=effective_at, settings=_settings(),
                deadline_hours=form.deadline_hours.data, note=form.note.data)
        except (InvalidError, ConflictError, ForbiddenError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.person)
            return render_template("offboarding/new.html", form=form), 200
        db.commit()
        flash(f"Offboarding of {person.full_name} {'started' if offboarding.status != 'scheduled' else 'scheduled'}.", "success")
        return _back(offboarding.id)
    return render_template("offboarding/new.html", form=form)


@bp.route("/<int:offboarding_id>")
@permission("offboarding.read")
def detail(offboarding_id: int) -> str:
    db = get_session()
    offboarding = _visible(offboarding_id)
    if offboarding.status == "in_progress" and sync_offboarding(db, offboarding):
        db.commit()
    items = items_of(db, offboarding)
    preview = offboarding_reading.preview(db, offboarding) if offboarding.status == "scheduled" else None
    flags = flags_of(db, offboarding) if offboarding.status != "scheduled" else (preview.flags if preview else [])
    user_ids = {i.done_by_id for i in items if i.done_by_id} | {offboarding.created_by_id or 0}
    users = {u.id: u for u in db.scalars(select(User).where(User.id.in_(user_ids)))}
    return render_template(
        "offboarding/detail.html", offboarding=offboarding, items=items, preview=preview, flags=flags, users=users,
        progress=progress_of(db, [offboarding.id])[offboarding.id], now=utcnow(),
        successors=successors_of(db, offboarding), linked_tasks=linked_tasks(db, items),
        duty_accounts=accounts_with_duties(db, offboarding.person_id) if offboarding.status in ("scheduled", "in_progress") else [],
        may_work=lambda item: may_work_item(current_user, item),
        may_choose=may_choose_successor(current_user, offboarding),
        owner_labels=OWNER_LABELS,
        done_form=DoneForm(), skip_form=SkipForm(), item_form=ItemForm(), successor_form=SuccessorForm(),
        cancel_form=CancelForm(),
        connected=connected_labels(db, {i.account_id for i in items if i.kind == "platform_removal" and i.account_id}),
    )


@bp.route("/<int:offboarding_id>/edit", methods=["GET", "POST"])
@permission("offboarding.manage")
def edit(offboarding_id: int) -> Any:
    offboarding = _visible(offboarding_id)
    form = EditForm(obj=None if request.method == "POST" else offboarding)
    if request.method != "POST":
        form.effective_at.data = to_local(offboarding.effective_at)
    if form.validate_on_submit():
        db = get_session()
        try:
            update_offboarding(db, actor=current_user, offboarding=offboarding, effective_at=from_local(form.effective_at.data),
                                        deadline_hours=form.deadline_hours.data, note=form.note.data)
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.effective_at)
            return render_template("offboarding/edit.html", form=form, offboarding=offboarding), 200
        db.commit()
        flash("Offboarding updated.", "success")
        return _back(offboarding.id)
    return render_template("offboarding/edit.html", form=form, offboarding=offboarding)


@bp.route("/<int:offboarding_id>/cancel", methods=["POST"])
@permission("offboarding.manage")
def cancel(offboarding_id: int) -> WerkzeugResponse:
    offboarding = _visible(offboarding_id)
    form = CancelForm()
    db = get_session()
    try:
        cancel_offboarding(db, actor=current_user, offboarding=offboarding, reason=form.reason.data or "")
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        _flash_error(exc)
        return _back(offboarding.id)
    db.commit()
    flash("Offboarding cancelled.", "success")
    return _back(offboarding.id)


@bp.route("/<int:offboarding_id>/successor", methods=["POST"])
@permission("offboarding.work")
def successor(offboarding_id: int) -> WerkzeugResponse:
    offboarding = _visible(offboarding_id)
    form = SuccessorForm()
    db = get_session()
    person = directory.find_person_by_reference(db, form.successor.data or "")
    account_id = form.account_id.data or ""
    try:
        if person is None:
            raise InvalidError("No one in the directory has that email or employee id.")
        if not account_id.isdecimal() or len(account_id) > 9:
            raise NotFoundError("No such account.")
        choose_successor(db, actor=current_user, offboarding=offboarding, account_id=int(account_id),
                                  successor_id=person.id)
    except (InvalidError, ConflictError, ForbiddenError, NotFoundError) as exc:
        db.rollback()
        _flash_error(exc)
        return _back(offboarding.id)
    db.commit()
    flash(f"{person.full_name} is the successor.", "success")
    return _back(offboarding.id)


@bp.route("/<int:offboarding_id>/items", methods=["POST"])
@permission("offboarding.manage")
def add_item(offboarding_id: int) -> WerkzeugResponse:
    offboarding = _visible(offboarding_id)
    form = ItemForm()
    db = get_session()
    try:
        add_manual_item(db, actor=current_user, offboarding=offboarding, title=form.title.data or "",
                                 owner=form.owner.data or "")
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        _flash_error(exc)
        return _back(offboarding.id)
    db.commit()
    flash("Item added.", "success")
    return _back(offboarding.id)


def _item_action(item_id: int, action: str) -> WerkzeugResponse:
    db = get_session()
    try:
        item = get_item(db, item_id)
    except NotFoundError:
        ensure_visible(False)
        raise
    offboarding = _visible(item.offboarding_id)
    try:
        if action == "done":
            complete_item(db, actor=current_user, item=item, note=DoneForm().note.data or "")
        else:
            skip_item(db, actor=current_user, item=item, reason=SkipForm().reason.data or "")
    except (InvalidError, ConflictError, ForbiddenError) as exc:
        db.rollback()
        _flash_error(exc)
        return _back(offboarding.id)
    db.commit()
    flash("Item done." if action == "done" else "Item skipped.", "success")
    if offboarding.status == "completed":
        flash(f"Every item is closed: the offboarding of {offboarding.person.full_name} is complete.", "success")
    return _back(offboarding.id)


@bp.route("/items/<int:item_id>/done", methods=["POST"])
@permission("offboarding.work")
def item_done(item_id: int) -> WerkzeugResponse:
    return _item_action(item_id, "done")


@bp.route("/items/<int:item_id>/skip", methods=["POST"])
@permission("offboarding.skip")
def item_skip(item_id: int) -> WerkzeugResponse:
    return _item_action(item_id, "skip")


@bp.route("/rehire/<int:person_id>", methods=["POST"])
@permission("offboarding.manage")
def rehire(person_id: int) -> WerkzeugResponse:
    db = get_session()
    try:
        person = directory.get_person(db, person_id)
        rehire_person(db, actor=current_user, person=person)
    except NotFoundError:
        ensure_visible(False)
        raise
    except ConflictError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("directory.detail", person_id=person_id))
    db.commit()
    flash(f"{person.full_name} is active again. No access was restored: grant roles afresh if needed.", "success")
    return redirect(url_for("directory.detail", person_id=person_id))


# --- evidence --------------------------------------------------------------------------------------------


def _evidence(offboarding_id: int) -> Evidence:
    offboarding = _visible(offboarding_id)
    return offboarding_evidence.evidence(get_session(), offboarding)


def _download(body: str, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/<int:offboarding_id>/evidence")
@permission("offboarding.evidence")
def evidence(offboarding_id: int) -> str:
    return render_template("offboarding/evidence.html", report=_evidence(offboarding_id), owner_labels=OWNER_LABELS)


@bp.route("/<int:offboarding_id>/evidence.csv")
@permission("offboarding.evidence")
def evidence_csv(offboarding_id: int) -> Response:
    report = _evidence(offboarding_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EVIDENCE_COLUMNS)
    for row in report.items:
        writer.writerow([safe_cell(v) for v in row.row()])
    writer.writerow([])
    writer.writerow(["grants", "grant_id", "account", "platform", "handle", "role", "status"])
    for label, grants in (("before", report.grants_before), ("after", report.grants_after)):
        for g in grants:
            writer.writerow([label, g["grant_id"], safe_cell(g["account"]), g["platform"], safe_cell(g["handle"]), g["role"], g["status"]])
    writer.writerow([])
    writer.writerow(["exposures", *EXPOSURE_COLUMNS])
    for exposure in report.exposures:
        writer.writerow(["exposure", *(safe_cell(v) if isinstance(v, str) else v for v in exposure.values())])
    writer.writerow([])
    writer.writerow(["rotations", *ROTATION_COLUMNS])
    for rotation in report.rotations:
        writer.writerow(["rotation", *(safe_cell(v) if isinstance(v, str) else ("" if v is None else v) for v in rotation.values())])
    return _download(out.getvalue(), "text/csv", f"offboarding-{offboarding_id}-evidence.csv")


@bp.route("/<int:offboarding_id>/evidence.json")
@permission("offboarding.evidence")
def evidence_json(offboarding_id: int) -> Response:
    report = _evidence(offboarding_id)
    return _download(json.dumps(report.as_json(), indent=2), "application/json", f"offboarding-{offboarding_id}-evidence.json")
