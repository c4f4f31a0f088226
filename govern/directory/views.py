"""Pages of the directory area: the people list, a person's page, forms, and the CSV import."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from govern import audit
from govern.connectors.connections import identities_of
from govern.csvexport import csv_chunks
from govern.db import get_session
from govern.directory import import_columns, import_mappings, import_parse, import_plan, services
from govern.directory.forms import STATUS_LABELS, ImportForm, PersonForm
from govern.directory.models import PERSON_STATUSES
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.offboarding import lifecycle
from govern.offboarding.reading import offboardings_of, progress_of
from govern.offboarding.settings import settings_from as offboarding_settings
from govern.vault.listing import exposures
from govern.web import form_errors, may, page_arg, permission

bp = Blueprint("directory", __name__, url_prefix="/people")

PAGE_SIZE = 50
FILTER_KEYS = ("q", "department", "status", "manager")
EXPORT_COLUMNS = ("employee_id", "email", "full_name", "department", "title", "manager_email", "start_date",
                  "end_date", "status", "source")
#: Where an uploaded export waits between the preview and the apply (under the instance folder).
STAGING_FOLDER = "imports"
STAGING_MAX_AGE_SECONDS = 24 * 3600
PENDING_KEY = "directory_import"
_TOKEN = re.compile(r"[0-9a-f]{32}")


# --- the list ----------------------------------------------------------------------------------------


def _filter_from(args: MultiDict[str, str]) -> tuple[services.PersonFilter, dict[str, str], str | None]:
    """Parse the list's filters; bad values are ignored, never an error page."""
    db = get_session()
    params = {k: (args.get(k) or "").strip()[:320] for k in FILTER_KEYS if (args.get(k) or "").strip()}
    flt = services.PersonFilter(
        q=params.get("q", "")[:100] or None,
        department=params.get("department", "")[:120] or None,
        status=params["status"] if params.get("status") in PERSON_STATUSES else None,
    )
    note = None
    if params.get("manager"):
        manager = services.find_person_by_reference(db, params["manager"])
        flt.manager_id = manager.id if manager is not None else -1
        if manager is None and services.sees_all_people(current_user.roles):
            note = f"No one has the email or employee id {params['manager'][:100]}."
    return flt, params, note


@bp.route("/")
@permission("directory.read")
def index() -> str:
    """The people list: search, filters, 50 per page, within the viewer's scope."""
    db = get_session()
    flt, params, note = _filter_from(request.args)
    people = services.list_people(db, current_user, flt, page=page_arg(), per_page=PAGE_SIZE)
    return render_template(
        "directory/index.html", people=people, params=params, note=note, departments=services.departments(db, current_user),
        statuses=STATUS_LABELS, sees_all=services.sees_all_people(current_user.roles),
    )


@bp.route("/export.csv", methods=["POST"])
@permission("directory.read")
def export() -> Response:
    """The filtered list as CSV (the import's columns), audited before it streams."""
    db = get_session()
    flt, _params, _note = _filter_from(request.form)
    audit.record(db, "directory.exported", actor=current_user, details={"filter": flt.as_params()})
    db.commit()
    user = current_user._get_current_object()

    def rows() -> Iterator[list[Any]]:
        for person in services.iter_people(get_session(), user, flt):
            values = {name: getattr(person, name, None) for name in EXPORT_COLUMNS}
            values["manager_email"] = person.manager.email if person.manager else None
            yield [values[name] for name in EXPORT_COLUMNS]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(stream_with_context(csv_chunks(EXPORT_COLUMNS, rows())), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="govern-people-{stamp}.csv"'})


# --- one person ----------------------------------------------------------------------------------------


@bp.route("/pick")
@permission("directory.pick")
def pick() -> Response:
    """Active people matching ?q= for a form's person picker, as JSON (static/govern.js asks it as one types)."""
    rows, more = services.pick_people(get_session(), request.args.get("q", ""))
    return jsonify({"people": [{"id": r.id, "name": r.full_name, "email": r.email, "employee_id": r.employee_id,
                                "department": r.department} for r in rows], "more": more})


@bp.route("/<int:person_id>")
@permission("directory.read")
def detail(person_id: int) -> str:
    """A person's details, login, every grant and direct reports."""
    db = get_session()
    person = services.get_visible_person(db, current_user, person_id)
    record = services.person_record(db, person)
    offboardings = offboardings_of(db, person.id)
    exposed = exposures(db, person_id=person.id, per_page=100)
    seen, seen_total = exposed.items, exposed.total or 0
    return render_template("directory/detail.html", person=person, record=record, statuses=STATUS_LABELS,
                           offboardings=offboardings,
                           offboarding_progress=progress_of(db, [o.id for o in offboardings]),
                           exposures=seen, exposure_total=seen_total,
                           identities=identities_of(db, person.id) if may(current_user, "connectors.read") else [])


def _input_from(form: PersonForm) -> services.PersonInput:
    return services.PersonInput(
        full_name=form.full_name.data or "", email=form.email.data or "", employee_id=form.employee_id.data or "",
        department=form.department.data or "", title=form.title.data or "", manager=form.manager.data or "",
        status=form.status.data or "active", start_date=form.start_date.data, end_date=form.end_date.data,
    )


def _flash_offboarding(person: Any, outcome: lifecycle.Outcome) -> None:
    """Say what the status or end date did: leaving happens through an offboarding."""
    started = outcome.offboardings.get(person.id)
    if started is not None and started.status in ("in_progress", "completed"):
        then = ("it is complete: nothing was left to take away" if started.status == "completed"
                else "they become departed when its checklist is complete")
        flash(f"Offboarding #{started.id} started: {person.full_name}'s login is blocked and every grant revoked; "
              f"{then}.", "success")
    elif started is not None:
        flash(f"Offboarding #{started.id} scheduled for {started.effective_at:%Y-%m-%d %H:%M} UTC.", "success")
    if outcome.moved:
        flash("The scheduled offboarding moved to the new end date.", "success")
    if outcome.cancelled:
        flash("The scheduled offboarding was cancelled: the end date is gone.", "success")
    if outcome.rehired:
        flash(f"{person.full_name} is rehired: active again, with no access until someone grants it.", "success")


@bp.route("/new", methods=["GET", "POST"])
@permission("directory.manage")
def new() -> Any:
    """Add a person by hand (HR, admins)."""
    form = PersonForm()
    if form.validate_on_submit():
        db = get_session()
        data = _input_from(form)
        try:
            person, outcome = lifecycle.create_person(db, actor=current_user, data=data,
                                                      settings=offboarding_settings(current_app.config))
        except (InvalidError, ConflictError, ForbiddenError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.full_name)
            return render_template("directory/form.html", form=form, person=None), 200
        db.commit()
        flash(f"{person.full_name} is in the directory.", "success")
        _flash_offboarding(person, outcome)
        return redirect(url_for("directory.detail", person_id=person.id))
    return render_template("directory/form.html", form=form, person=None)


@bp.route("/<int:person_id>/edit", methods=["GET", "POST"])
@permission("directory.manage")
def edit(person_id: int) -> Any:
    """Edit a person (HR, admins); the audit event lists old and new values."""
    db = get_session()
    person = services.get_visible_person(db, current_user, person_id)
    form = PersonForm(obj=person) if request.method == "GET" else PersonForm()
    if request.method == "GET":
        form.manager.data = person.manager.email if person.manager else ""
        form.employee_id.data = person.employee_id or ""
    if form.validate_on_submit():
        try:
            changes, outcome = lifecycle.update_person(db, actor=current_user, person=person, data=_input_from(form),
                                                       settings=offboarding_settings(current_app.config))
        except (InvalidError, ConflictError, ForbiddenError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.full_name)
            return render_template("directory/form.html", form=form, person=person), 200
        db.commit()
        flash("Saved." if changes or outcome.offboardings or outcome.rehired or outcome.cancelled or outcome.moved
              else "Nothing changed.", "success")
        _flash_offboarding(person, outcome)
        return redirect(url_for("directory.detail", person_id=person.id))
    return render_template("directory/form.html", form=form, person=person)


# --- CSV import ------------------------------------------------------------------------------------------


def _staging_folder() -> Path:
    folder = Path(current_app.instance_path) / STAGING_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _drop_stale_uploads(folder: Path) -> None:
    cutoff = time.time() - STAGING_MAX_AGE_SECONDS
    for path in folder.glob("*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue


def _stage(content: bytes) -> str:
    """Keep an upload on the server (mode 0600, random name) until it is applied or cancelled."""
    folder = _staging_folder()
    _drop_stale_uploads(folder)
    token = secrets.token_hex(16)
    fd = os.open(folder / f"{token}.csv", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return token


def _pending() -> tuple[dict[str, str], Path] | None:
    """The upload waiting in this session, if its file is still there."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or not _TOKEN.fullmatch(str(pending.get("token", ""))):
        return None
    path = Path(current_app.instance_path) / STAGING_FOLDER / f"{pending['token']}.csv"
    return (pending, path) if path.is_file() else None


def _discard_pending() -> None:
    found = _pending()
    session.pop(PENDING_KEY, None)
    if found is not None:
        found[1].unlink(missing_ok=True)


def _posted_pending(form: ImportForm) -> tuple[dict[str, str], bytes] | WerkzeugResponse:
    """The upload a mapping or apply form refers to, or the redirect back to the upload page."""
    if not form.validate_on_submit():
        return redirect(url_for("directory.import_file"))
    found = _pending()
    if found is None:
        flash("There is no previewed file waiting (it may have expired). Upload it again.", "error")
        return redirect(url_for("directory.import_file"))
    pending, path = found
    return pending, path.read_bytes()


def _import_page(form: ImportForm, report: import_plan.ImportReport | None = None, status: int = 200, *,
                 parsed: import_parse.ParsedFile | None = None, remembered: bool = False,
                 chosen: dict[int, str] | None = None, mapping_errors: list[str] | None = None) -> tuple[str, int]:
    return render_template(
        "directory/import.html", form=form, report=report, aliases=import_columns.HEADER_ALIASES,
        fallbacks=import_columns.FALLBACK_ALIASES, statuses=import_columns.STATUS_VALUES,
        date_formats=import_columns.DATE_FORMATS_TEXT, columns=import_columns.COLUMNS, parsed=parsed, remembered=remembered,
        fields=import_columns.FIELD_LABELS, ignore=import_columns.IGNORE, chosen=chosen or {}, mapping_errors=mapping_errors or [],
    ), status


def _preview(content: bytes, filename: str, mapping: dict[str, str] | None, *, remembered: bool,
             form: ImportForm) -> tuple[str, int]:
    """Preview ``content`` read with ``mapping`` and keep it on the server for the mapping step and the import."""
    parsed = import_parse.parse_file(content, filename=filename, mapping=mapping)
    report = import_plan.preview_import(get_session(), parsed)
    get_session().rollback()
    # Kept for the mapping step too (a mapping may fix the file), unless there is nothing to map or import.
    if parsed.header and import_parse.count_data_lines(content) > 0:
        session[PENDING_KEY] = {"token": _stage(content), "filename": parsed.filename, "sha256": parsed.sha256,
                                "mapping": import_mappings.digest(mapping)}
    return _import_page(form, report, parsed=parsed, remembered=remembered)


@bp.route("/import", methods=["GET", "POST"])
@permission("directory.manage")
def import_file() -> Any:
    """The import page; an upload is only previewed and kept on the server until confirmed."""
    form = ImportForm()
    if request.method == "GET":
        return _import_page(form)
    if not form.validate_on_submit():
        return _import_page(form, status=400)
    upload = form.file.data
    if upload is None or not getattr(upload, "filename", ""):
        form.file.errors = ["Choose the CSV file to import."]
        return _import_page(form)
    content = upload.read()
    if not content.strip():
        form.file.errors = ["The file is empty."]
        return _import_page(form)
    _discard_pending()
    mapping = import_mappings.remembered_mapping(get_session(), import_parse.read_header(content))
    return _preview(content, upload.filename, mapping, remembered=mapping is not None, form=form)


@bp.route("/import/mapping", methods=["POST"])
@permission("directory.manage")
def import_mapping() -> Any:
    """Read the previewed upload's columns as HR mapped them; a valid mapping is remembered (audited)."""
    form = ImportForm()
    waiting = _posted_pending(form)
    if isinstance(waiting, WerkzeugResponse):
        return waiting
    pending, content = waiting
    header = import_parse.read_header(content)
    choices = {*import_columns.FIELDS, import_columns.IGNORE}
    chosen = {index: (request.form.get(f"column-{index}") or "").strip() for index in range(len(header))}
    problems = [f"choose what the column {header[index]!r} is" for index, value in chosen.items()
                if header[index] and value not in choices]
    mapping = {header[index]: value for index, value in chosen.items() if header[index] and value in choices}
    taken: dict[str, str] = {}
    for column, value in mapping.items():
        if value != import_columns.IGNORE and value in taken:
            problems.append(f"the columns {taken[value]!r} and {column!r} are both mapped to {import_columns.FIELD_LABELS[value]}; "
                            "map one of them to Ignore")
        taken.setdefault(value, column)
    if not problems:
        parsed = import_parse.parse_file(content, filename=pending.get("filename", "import.csv"), mapping=mapping)
        problems = [e.reason for e in parsed.errors if e.line <= parsed.header_line and e.column != "file"]
    if problems:
        parsed = import_parse.parse_file(content, filename=pending.get("filename", "import.csv"))
        return _import_page(form, None, 400, parsed=parsed, chosen=chosen, mapping_errors=problems)
    db = get_session()
    saved = import_mappings.remember_mapping(db, actor=current_user, header=header, mapping=mapping)
    db.commit()
    _discard_pending()
    if saved:
        flash("The mapping is saved: the next file with these columns is read the same way.", "success")
    return _preview(content, pending.get("filename", "import.csv"), mapping, remembered=True, form=form)


@bp.route("/import/apply", methods=["POST"])
@permission("directory.manage")
def import_apply() -> Any:
    """Apply the previewed upload of this session, re-checked against the directory."""
    form = ImportForm()
    waiting = _posted_pending(form)
    if isinstance(waiting, WerkzeugResponse):
        return waiting
    pending, content = waiting
    mapping = import_mappings.remembered_mapping(get_session(), import_parse.read_header(content))
    if import_mappings.digest(mapping) != pending.get("mapping", import_mappings.digest(None)):
        _discard_pending()
        flash("The column mapping of these columns changed since the preview. Upload the file again.", "error")
        return redirect(url_for("directory.import_file"))
    parsed = import_parse.parse_file(content, filename=pending.get("filename", "import.csv"), mapping=mapping)
    if parsed.sha256 != pending.get("sha256"):
        _discard_pending()
        flash("The previewed file could not be read back. Upload it again.", "error")
        return redirect(url_for("directory.import_file"))
    db = get_session()
    try:
        report = lifecycle.import_people(db, parsed, actor=current_user,
                                         settings=offboarding_settings(current_app.config))
        db.commit()
    except import_plan.ImportInvalidError as exc:
        db.rollback()
        _discard_pending()
        flash("The directory changed since the preview and the file now has errors. Nothing was imported.", "error")
        return _import_page(form, exc.report)
    except IntegrityError:
        db.rollback()
        flash("The directory changed while importing. Nothing was imported; preview the file again.", "error")
        return redirect(url_for("directory.import_file"))
    _discard_pending()
    flash(f"Imported {parsed.filename}: {report.new} new, {report.updated} updated, {report.unchanged} unchanged.", "success")
    if report.offboardings_started:
        flash(f"Leavers: {report.offboardings_started} offboarding(s) started; their access ends now. "
              "Follow them under Offboarding.", "success")
    if report.offboardings_scheduled or report.offboardings_moved or report.offboardings_cancelled:
        flash(f"End dates: {report.offboardings_scheduled} offboarding(s) scheduled, {report.offboardings_moved} moved, "
              f"{report.offboardings_cancelled} cancelled. Review them under Offboarding.", "success")
    for problem in report.offboarding_problems[:10]:
        flash(f"Offboarding not started or scheduled for {problem}", "error")
    return redirect(url_for("directory.index"))


@bp.route("/import/cancel", methods=["POST"])
@permission("directory.manage")
def import_cancel() -> Any:
    """Discard the previewed upload."""
    if ImportForm().validate_on_submit():
        _discard_pending()
        flash("The previewed file was discarded.", "success")
    return redirect(url_for("directory.import_file"))
