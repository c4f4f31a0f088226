"""Pages of rotation: IT's dashboard, the task queue and task pages, credentials and their
intervals, compromise lockdown and incidents."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from govern import activity
from govern.accounts.models import Account
from govern.db import get_session, utcnow
from govern.errors import ConflictError, GovernError, InvalidError
from govern.rotation import charts
from govern.rotation import services as rotation
from govern.rotation.forms import (
    AssignForm,
    CancelForm,
    CloseIncidentForm,
    ConfirmForm,
    IntervalForm,
    LockdownForm,
    NoteForm,
    RollbackForm,
    StageForm,
)
from govern.rotation.models import REASON_LABELS, RotationTask
from govern.vault.models import Secret
from govern.vault.services import get_secret
from govern.web import (
    ensure_visible,
    fresh_mfa_required,
    from_local,
    mfa_is_fresh,
    page_arg,
    permission,
)

bp = Blueprint("rotation", __name__, url_prefix="/rotation")

QUEUE_SIZE = 25
SECRETS_SIZE = 50
STATES = ("overdue", "due", "fine", "never", "no_value")


def _keyring() -> Any:
    return current_app.extensions.get("govern.keyring")


def _retention() -> int:
    return int(current_app.config.get("VAULT_RETENTION_DAYS") or rotation.DEFAULT_RETENTION_DAYS)


def _task(task_id: int) -> RotationTask:
    task = get_session().get(RotationTask, task_id)
    ensure_visible(task is not None)
    assert task is not None
    return task


def _secret(secret_id: int) -> Secret:
    try:
        return get_secret(get_session(), secret_id)
    except GovernError:
        ensure_visible(False)
        raise


def _fail(exc: GovernError, target: str) -> Response:
    get_session().rollback()
    flash(exc.message, "error")
    return redirect(target)


@bp.route("/")
@permission("rotation.read")
def dashboard() -> str:
    db = get_session()
    now = utcnow()
    rows = rotation.all_schedules(db, now=now)
    queue = rotation.task_queue(db, page=page_arg(), per_page=QUEUE_SIZE)
    return render_template(
        "rotation/dashboard.html", counts=rotation.counts_by_platform(rows), queue=queue, reasons=REASON_LABELS,
        age_chart=charts.age_chart(rotation.age_distribution(rows, now=now)),
        compliance_chart=charts.compliance_chart(rotation.compliance_history(db, rows, now=now)),
        incidents=rotation.open_incidents(db), now=now,
        totals={"due": sum(1 for r in rows if r.state == "due"), "overdue": sum(1 for r in rows if r.state == "overdue"),
                "rotate_now": sum(1 for r in rows if r.rotate_now), "all": len(rows)},
    )


@bp.route("/secrets")
@permission("rotation.read")
def secrets() -> str:
    db = get_session()
    state = request.args.get("state") if request.args.get("state") in STATES else None
    page = page_arg()
    if state is None:
        query = select(Secret).join(Account, Account.id == Secret.account_id).where(Account.status != "archived")
        total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
        chosen = list(db.scalars(query.order_by(Account.display_name, Secret.label)
                                 .offset((page - 1) * SECRETS_SIZE).limit(SECRETS_SIZE)).unique())
        rows = rotation.schedules(db, chosen)
    else:
        every = [r for r in rotation.all_schedules(db) if r.state == state]
        every.sort(key=lambda r: (r.due_at is None, r.due_at or utcnow()))
        total = len(every)
        rows = every[(page - 1) * SECRETS_SIZE: page * SECRETS_SIZE]
    return render_template("rotation/secrets.html", rows=rows, total=total, page=page, state=state, states=STATES,
                           has_next=page * SECRETS_SIZE < total, interval_form=IntervalForm(), note_form=NoteForm())


@bp.route("/tasks/<int:task_id>")
@permission("rotation.read")
def task(task_id: int) -> str:
    return _render_task(_task(task_id))


def _render_task(task: RotationTask, *, revealed: dict[str, Any] | None = None, generated: str | None = None,
                 stage_form: StageForm | None = None, status: int = 200) -> Any:
    db = get_session()
    view = rotation.task_view(db, task, retention_days=_retention())
    body = render_template(
        "rotation/task.html", task=task, view=view, reasons=REASON_LABELS, stage_form=stage_form or StageForm(),
        confirm_form=ConfirmForm(), cancel_form=CancelForm(), rollback_form=RollbackForm(), assign_form=AssignForm(),
        revealed=revealed, generated=generated, retention_days=_retention(), mfa_fresh=mfa_is_fresh(),
    )
    return body if status == 200 else (body, status)


@bp.route("/tasks/<int:task_id>/stage", methods=["POST"])
@permission("rotation.manage")
@fresh_mfa_required
def stage(task_id: int) -> Any:
    db = get_session()
    task = _task(task_id)
    form = StageForm()
    if not form.validate_on_submit():
        flash("Check the form: " + "; ".join(e for errs in form.errors.values() for e in errs), "error")
        return redirect(url_for("rotation.task", task_id=task.id))
    try:
        generated = rotation.stage_task(
            db, actor=current_user, keyring=_keyring(), task=task, generate=form.mode.data == "generate",
            value=None if form.mode.data == "generate" else (form.value.data or ""), totp_code=form.totp_code.data or "",
            token_expires_at=form.token_expires_at.data)
    except InvalidError as exc:
        db.rollback()
        form.value.data = ""  # never echo a typed secret back into the page
        for name, message in exc.reasons.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [message]
        flash(exc.message, "error")
        return _render_task(_task(task_id), stage_form=form, status=400)
    except GovernError as exc:
        return _fail(exc, url_for("rotation.task", task_id=task_id))
    db.commit()
    if generated is not None:
        flash("A new password is staged. Copy it now, change it on the platform, then confirm below.", "success")
        return _render_task(task, generated=generated)
    flash("The new value is staged as a pending version. Change it on the platform, then confirm below.", "success")
    return redirect(url_for("rotation.task", task_id=task.id))


@bp.route("/tasks/<int:task_id>/staged", methods=["POST"])
@permission("rotation.manage")
@fresh_mfa_required
def show_staged(task_id: int) -> Any:
    db = get_session()
    task = _task(task_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("rotation.task", task_id=task.id))
    try:
        payload = rotation.reveal_staged(db, actor=current_user, keyring=_keyring(), task=task, mfa_fresh=mfa_is_fresh())
    except GovernError as exc:
        return _fail(exc, url_for("rotation.task", task_id=task_id))
    db.commit()
    return _render_task(task, revealed=payload)


@bp.route("/tasks/<int:task_id>/confirm", methods=["POST"])
@permission("rotation.manage")
def confirm(task_id: int) -> Response:
    db = get_session()
    task = _task(task_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("rotation.task", task_id=task.id))
    try:
        rotation.confirm_task(db, actor=current_user, task=task, ticked=request.form.getlist("checklist"))
    except ConflictError as exc:
        db.rollback()
        flash("Conflict: " + exc.message, "error")
        return redirect(url_for("rotation.task", task_id=task_id))
    except GovernError as exc:
        return _fail(exc, url_for("rotation.task", task_id=task_id))
    db.commit()
    flash(f"Rotation of {task.secret.label} confirmed: the new value is current, the old one retired.", "success")
    return redirect(url_for("rotation.task", task_id=task.id))


@bp.route("/tasks/<int:task_id>/cancel", methods=["POST"])
@permission("rotation.manage")
def cancel(task_id: int) -> Response:
    db = get_session()
    task = _task(task_id)
    form = CancelForm()
    if not form.validate_on_submit():
        flash("Say why this rotation is cancelled.", "error")
        return redirect(url_for("rotation.task", task_id=task.id))
    try:
        rotation.cancel_task(db, actor=current_user, task=task, reason=form.reason.data or "")
    except GovernError as exc:
        return _fail(exc, url_for("rotation.task", task_id=task_id))
    db.commit()
    flash("Rotation cancelled; a staged value was destroyed.", "success")
    return redirect(url_for("rotation.task", task_id=task.id))


@bp.route("/tasks/<int:task_id>/assign", methods=["POST"])
@permission("rotation.manage")
def assign(task_id: int) -> Response:
    db = get_session()
    task = _task(task_id)
    form = AssignForm()
    if not form.validate_on_submit():
        return redirect(url_for("rotation.task", task_id=task.id))
    try:
        rotation.assign_task(db, actor=current_user, task=task, assignee=current_user if form.to_me.data else None)  # type: ignore[arg-type]
    except GovernError as exc:
        return _fail(exc, url_for("rotation.task", task_id=task_id))
    db.commit()
    flash("Assigned to you." if form.to_me.data else "Back to the IT team.", "success")
    return redirect(url_for("rotation.task", task_id=task.id))


@bp.route("/secrets/<int:secret_id>/rollback", methods=["POST"])
@permission("rotation.manage")
def rollback(secret_id: int) -> Response:
    db = get_session()
    secret = _secret(secret_id)
    form = RollbackForm()
    back = request.form.get("task_id", type=int)
    target = url_for("rotation.task", task_id=back) if back else url_for("rotation.secrets")
    if not form.validate_on_submit():
        flash("Say why you roll back.", "error")
        return redirect(target)
    try:
        version = rotation.rollback(db, actor=current_user, secret=secret, reason=form.reason.data or "",
                                    retention_days=_retention())
    except GovernError as exc:
        return _fail(exc, target)
    db.commit()
    flash(f"Version {version.version} of {secret.label} is current again; a new task asks to rotate it again.", "success")
    return redirect(target)


@bp.route("/secrets/<int:secret_id>/rotate", methods=["POST"])
@permission("rotation.manage")
def rotate(secret_id: int) -> Response:
    db = get_session()
    secret = _secret(secret_id)
    form = NoteForm()
    # "Rotate now" is offered on the rotation list and on the vault's secret page; a refusal returns there.
    back = url_for("vault.detail", secret_id=secret.id) if request.form.get("from") == "vault" else url_for("rotation.secrets")
    if not form.validate_on_submit():
        flash("Say why this secret should rotate.", "error")
        return redirect(back)
    try:
        opened = rotation.request_rotation(db, actor=current_user, secret=secret, note=form.note.data or "")
    except GovernError as exc:
        return _fail(exc, back)
    db.commit()
    flash("Rotation task opened." if opened.created else "Added to the open rotation task.", "success")
    return redirect(url_for("rotation.task", task_id=opened.task.id))


@bp.route("/secrets/<int:secret_id>/interval", methods=["POST"])
@permission("rotation.manage")
def interval(secret_id: int) -> Response:
    db = get_session()
    secret = _secret(secret_id)
    form = IntervalForm()
    back = url_for("rotation.secrets", page=request.form.get("page", 1, type=int))
    if not form.validate_on_submit() or (form.choice.data == "days" and not form.interval_days.data):
        flash("Choose the default, never, or a number of days between 1 and 3650.", "error")
        return redirect(back)
    try:
        rotation.set_interval(db, actor=current_user, secret=secret, inherit=form.choice.data == "inherit",
                              days=form.interval_days.data if form.choice.data == "days" else None)
    except GovernError as exc:
        return _fail(exc, back)
    db.commit()
    flash(f"Interval of {secret.label} saved.", "success")
    return redirect(back)


@bp.route("/accounts/<int:account_id>/lockdown", methods=["GET", "POST"])
@permission("rotation.manage")
def lockdown(account_id: int) -> Any:
    db = get_session()
    account = db.get(Account, account_id)
    ensure_visible(account is not None)
    assert account is not None
    form = LockdownForm()
    secrets_count = db.scalar(select(func.count()).select_from(Secret).where(Secret.account_id == account.id)) or 0
    if form.validate_on_submit():
        since = from_local(form.compromised_since.data)
        try:
            incident = rotation.lock_down(db, actor=current_user, account=account, summary=form.summary.data or "",
                                          compromised_since=since)
        except InvalidError as exc:
            db.rollback()
            flash(exc.message, "error")
            return render_template("rotation/lockdown.html", account=account, form=form, secrets_count=secrets_count), 400
        except GovernError as exc:
            return _fail(exc, url_for("rotation.lockdown", account_id=account_id))
        db.commit()
        flash(f"{account.display_name} is locked down; {secrets_count} urgent rotation task(s) are open.", "success")
        return redirect(url_for("rotation.incident", incident_id=incident.id))
    status = 400 if request.method == "POST" else 200
    return render_template("rotation/lockdown.html", account=account, form=form, secrets_count=secrets_count), status


@bp.route("/incidents/<int:incident_id>")
@permission("rotation.read")
def incident(incident_id: int) -> str:
    db = get_session()
    try:
        row = rotation.get_incident(db, incident_id)
    except GovernError:
        ensure_visible(False)
        raise
    tasks = rotation.incident_tasks(db, row)
    events = rotation.timeline(db, row)
    return render_template("rotation/incident.html", incident=row, tasks=tasks, events=events,
                           sentences=activity.describe(db, events),
                           reasons=REASON_LABELS, form=CloseIncidentForm(),
                           live=sum(1 for t in tasks if t.is_live))


@bp.route("/incidents/<int:incident_id>/close", methods=["POST"])
@permission("rotation.manage")
def close_incident(incident_id: int) -> Response:
    db = get_session()
    try:
        row = rotation.get_incident(db, incident_id)
    except GovernError:
        ensure_visible(False)
        raise
    form = CloseIncidentForm()
    back = url_for("rotation.incident", incident_id=incident_id)
    if not form.validate_on_submit():
        flash("Write what was found and done; it closes the incident.", "error")
        return redirect(back)
    try:
        rotation.close_incident(db, actor=current_user, incident=row, note=form.note.data or "")
    except GovernError as exc:
        return _fail(exc, back)
    db.commit()
    flash(f"Incident closed; {row.account.display_name} is {row.account.status} again.", "success")
    return redirect(back)
