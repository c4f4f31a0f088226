"""Pages of incidents: locking an account down, the incident with its tasks and timeline, closing it.

They keep rotation's URLs (/rotation/accounts/<id>/lockdown, /rotation/incidents/<id>).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from govern import activity
from govern.accounts.models import Account
from govern.db import get_session
from govern.errors import GovernError, InvalidError
from govern.incidents import services as incidents
from govern.incidents.forms import CloseIncidentForm, LockdownForm
from govern.incidents.models import Incident
from govern.rotation.models import REASON_LABELS
from govern.vault.models import Secret
from govern.web import act, ensure_visible, from_local, permission, success

bp = Blueprint("incidents", __name__, url_prefix="/rotation")


def _incident(incident_id: int) -> Incident:
    try:
        return incidents.get_incident(get_session(), incident_id)
    except GovernError:
        ensure_visible(False)
        raise


@bp.route("/accounts/<int:account_id>/lockdown", methods=["GET", "POST"])
@permission("incidents.manage")
def lockdown(account_id: int) -> Any:
    db = get_session()
    account = db.get(Account, account_id)
    ensure_visible(account is not None)
    assert account is not None
    form = LockdownForm()
    secrets_count = db.scalar(select(func.count()).select_from(Secret).where(Secret.account_id == account.id)) or 0

    def page(status: int) -> Any:
        return render_template("incidents/lockdown.html", account=account, form=form, secrets_count=secrets_count), status

    def shown_again(exc: InvalidError) -> Any:
        flash(exc.message, "error")
        return page(400)

    if form.validate_on_submit():
        since = from_local(form.compromised_since.data)
        return act(lambda: incidents.lock_down(db, actor=current_user, account=account, summary=form.summary.data or "",
                                               compromised_since=since),
                   back=url_for("incidents.lockdown", account_id=account_id), invalid=shown_again,
                   done=lambda incident: success(
                       f"{account.display_name} is locked down; {secrets_count} urgent rotation task(s) are open.",
                       url_for("incidents.detail", incident_id=incident.id)))
    return page(400 if request.method == "POST" else 200)


@bp.route("/incidents/<int:incident_id>")
@permission("incidents.read")
def detail(incident_id: int) -> str:
    db = get_session()
    row = _incident(incident_id)
    tasks = incidents.incident_tasks(db, row)
    events = incidents.timeline(db, row)
    return render_template("incidents/detail.html", incident=row, tasks=tasks, events=events,
                           sentences=activity.describe(db, events),
                           reasons=REASON_LABELS, form=CloseIncidentForm(),
                           live=sum(1 for t in tasks if t.is_live))


@bp.route("/incidents/<int:incident_id>/close", methods=["POST"])
@permission("incidents.manage")
def close(incident_id: int) -> Any:
    row = _incident(incident_id)
    form = CloseIncidentForm()
    back = url_for("incidents.detail", incident_id=incident_id)
    return act(lambda: incidents.close_incident(get_session(), actor=current_user, incident=row, note=form.note.data or ""),
               valid=form.validate_on_submit(), refused="Write what was found and done; it closes the incident.", back=back,
               done=lambda _: success(f"Incident closed; {row.account.display_name} is {row.account.status} again.", back))
