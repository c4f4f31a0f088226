"""Compromise lockdown: lock an account and rotate all its secrets, the incident's tasks and timeline,
and closing it (which unlocks the account)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.audit.services import lock_chain_head
from govern.auth.models import User
from govern.config import base_url
from govern.db import utcnow
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.incidents.models import Incident
from govern.notifications import services as notifications
from govern.rotation.custody import require_custodian, required_text
from govern.rotation.models import RotationTask
from govern.rotation.tasks import open_task
from govern.vault.models import Secret

#: The most events an incident's timeline shows.
TIMELINE_LIMIT = 500


def lock_down(session: Session, *, actor: User, account: Account, summary: str,
              compromised_since: datetime | None = None) -> Incident:
    """IT marks an account compromised: lock it (only IT may reveal), open an incident and an urgent
    task for every secret, and tell the crisis contact and the business owner."""
    require_custodian(actor)
    text = required_text(summary, "summary", "Say what happened (what was noticed, when, by whom).")
    now = utcnow()
    since = compromised_since or now - timedelta(days=7)
    if since > now:
        raise InvalidError("The compromise cannot start in the future.", {"compromised_since": "Choose a past date."})
    if account.status == "archived":
        raise ConflictError(f"{account.display_name} is archived.")
    if session.scalar(select(Incident.id).where(Incident.account_id == account.id, Incident.status == "open")) is not None:
        raise ConflictError(f"{account.display_name} is locked down already; see its open incident.")
    incident = Incident(account_id=account.id, status="open", summary=text, compromised_since=since,
                        previous_status=account.status, opened_at=now, opened_by_id=actor.id)
    try:
        with session.begin_nested():
            session.add(incident)
            session.flush()
    except IntegrityError:
        raise ConflictError(f"{account.display_name} was locked down by someone else a moment ago.") from None
    account.status = "locked"
    audit.record(session, "rotation.account_locked", actor=actor, target_type="account", target_id=account.id,
                 details={"account_id": account.id, "incident_id": incident.id, "previous_status": incident.previous_status,
                          "compromised_since": since})
    secrets = list(session.scalars(select(Secret).where(Secret.account_id == account.id).order_by(Secret.id)))
    for secret in secrets:
        open_task(session, actor=actor, secret=secret, reason="compromise", due_at=now, urgent=True, incident=incident,
                  note=f"Incident {incident.id}: {account.display_name} compromised.")
    _tell_about_incident(session, incident, len(secrets))
    session.flush()
    return incident


def _tell_about_incident(session: Session, incident: Incident, secrets: int) -> None:
    account = incident.account
    people = [p for p in (account.crisis_contact, account.business_owner) if p is not None]
    title = f"{account.display_name} is locked down: suspected compromise"
    body = (f"IT marked {account.display_name} ({account.platform_label}) compromised and locked it: only IT can reveal "
            f"its credentials until the incident is closed. {secrets} credential(s) are being rotated.\n\n"
            f"What happened: {incident.summary}")
    link = f"/rotation/incidents/{incident.id}"
    users_by_person = {u.person_id: u for u in session.scalars(
        select(User).where(User.person_id.in_([p.id for p in people]), User.is_active.is_(True)))} if people else {}
    for person in {p.id: p for p in people}.values():
        user = users_by_person.get(person.id)
        if user is not None:
            notifications.notify(session, user=user, kind="rotation.incident", title=title, link=link, body=incident.summary)
        lines = [f"Hello {person.full_name},", "", body]
        if user is not None:
            lines += ["", f"Open it in govern: {base_url()}{link}"]
        lines += ["", "-- ", "govern: official social media accounts under control"]
        notifications.queue_email(session, to=person.email, subject=f"[govern] {title}", body_text="\n".join(lines),
                                  kind="rotation.incident", dedupe_key=f"rotation.incident:{incident.id}:{person.id}")
    audit.record(session, "rotation.incident_notified", target_type="incident", target_id=incident.id,
                 details={"account_id": account.id, "people": [p.id for p in people]})


def get_incident(session: Session, incident_id: int) -> Incident:
    """The incident or NotFoundError."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError("No such incident.")
    return incident


def incident_tasks(session: Session, incident: Incident) -> list[RotationTask]:
    """The rotation tasks opened or joined by an incident."""
    return list(session.scalars(select(RotationTask).where(RotationTask.incident_id == incident.id).order_by(RotationTask.id)))


def close_incident(session: Session, *, actor: User, incident: Incident, note: str) -> Incident:
    """IT closes the incident once every task is done (or cancelled with a reason); the account is unlocked."""
    require_custodian(actor)
    text = required_text(note, "note", "Write what was found and done; it closes the incident.")
    lock_chain_head(session)  # the audit head before the incident: one lock order for every writer
    session.refresh(incident, with_for_update={"of": Incident})
    if incident.status != "open":
        raise ConflictError("This incident is closed already.")
    live = [t for t in incident_tasks(session, incident) if t.is_live]
    if live:
        raise ConflictError(f"{len(live)} rotation task(s) of this incident are not done yet.")
    account = incident.account
    incident.status, incident.closed_at, incident.closed_by_id, incident.close_note = "closed", utcnow(), actor.id, text
    account.status = incident.previous_status if incident.previous_status != "locked" else "active"
    audit.record(session, "rotation.incident_closed", actor=actor, target_type="incident", target_id=incident.id,
                 details={"account_id": account.id, "status": account.status, "note": text})
    audit.record(session, "rotation.account_unlocked", actor=actor, target_type="account", target_id=account.id,
                 details={"account_id": account.id, "incident_id": incident.id, "status": account.status})
    session.flush()
    return incident


def timeline(session: Session, incident: Incident, *, limit: int = TIMELINE_LIMIT) -> list[AuditEvent]:
    """Everything recorded on the account since the compromise may have started, oldest first."""
    account_id = incident.account_id
    secret_ids = [str(i) for i in session.scalars(select(Secret.id).where(Secret.account_id == account_id))]
    conditions = [
        (AuditEvent.target_type == "account") & (AuditEvent.target_id == str(account_id)),
        AuditEvent.details_json.like(f'%"account_id":{account_id},%'),
        AuditEvent.details_json.like(f'%"account_id":{account_id}}}%'),
    ]
    if secret_ids:
        conditions.append((AuditEvent.target_type == "secret") & AuditEvent.target_id.in_(secret_ids))
    until = incident.closed_at
    query = select(AuditEvent).where(AuditEvent.occurred_at >= incident.compromised_since, or_(*conditions))
    if until is not None:
        query = query.where(AuditEvent.occurred_at <= until)
    return list(session.scalars(query.order_by(AuditEvent.id).limit(limit)))


def open_incidents(session: Session) -> list[Incident]:
    """Incidents not closed yet, newest first."""
    return list(session.scalars(select(Incident).where(Incident.status == "open").order_by(Incident.id.desc()).limit(100)))

