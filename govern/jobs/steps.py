"""The ordered registry of time-based steps that `govern jobs run` runs.

A later area adds its step with one line in STEPS (before "email.send", so the emails it queues
go out in the same run). A step takes the run's session and a JobContext, does its work through
its area's services (idempotently: running it twice in a row changes nothing the second time),
never commits (unless it is marked ``own_transactions``) and returns counts for the Jobs page.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.api import housekeeping as api_housekeeping
from govern.audit.services import record_keying, write_checkpoint
from govern.auth.sessions import purge_stale_sessions
from govern.backup import schedule as backups
from govern.connectors import attestations as connector_attestations
from govern.connectors import removal as connector_removal
from govern.connectors import sync as connector_sync
from govern.connectors.connections import Settings as ConnectorSettings
from govern.grants import services as grants
from govern.jobs.services import JobContext, Step, prune_runs
from govern.notifications import services as notifications
from govern.notifications.models import OutboxMessage
from govern.offboarding import start as offboarding_start
from govern.offboarding.escalation import escalate_overdue
from govern.offboarding.invariants import check_and_notify
from govern.offboarding.settings import settings_from
from govern.rotation import reminders, schedules, versions
from govern.shipping import shipper
from govern.shipping.sinks import secret_box
from govern.webhooks import chat as webhook_chat
from govern.webhooks import delivery as webhook_delivery
from govern.webhooks.subscriptions import webhook_box

log = logging.getLogger("govern.jobs")


def expire_grants(session: Session, context: JobContext) -> Mapping[str, int]:
    """End time-bound grants whose end has come; their holders are notified."""
    return grants.expire_grants(session, now=context.now)


def purge_sessions(session: Session, context: JobContext) -> Mapping[str, int]:
    """Delete web sessions past their idle or absolute limit."""
    return purge_stale_sessions(session, idle_timeout=context.config["SESSION_IDLE_TIMEOUT"],
                                absolute_timeout=context.config["SESSION_ABSOLUTE_TIMEOUT"], now=context.now)


def prune_job_runs(session: Session, context: JobContext) -> Mapping[str, int]:
    """Delete job runs older than 90 days."""
    return prune_runs(session, now=context.now)


def prune_api(session: Session, context: JobContext) -> Mapping[str, int]:
    """Forget the API's idempotent answers after a day and the rate counters of past windows."""
    return api_housekeeping.prune(session, now=context.now)


def _ssl_context(config: Mapping[str, object]) -> ssl.SSLContext | None:
    ca_file = config.get("SMTP_CA_FILE")
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else None


def send_email(session: Session, context: JobContext) -> Mapping[str, int]:
    """Send due outbox messages over SMTP, one claim-send-record cycle (and commit) per message."""
    settings = notifications.SmtpSettings.from_config(context.config)
    if not settings.host:
        waiting = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")) or 0
        return {"sent": 0, "not_configured_waiting": waiting}
    counts = {"sent": 0, "failed": 0, "gave_up": 0}
    lease = timedelta(seconds=int(context.config.get("OUTBOX_CLAIM_SECONDS", 600)))
    with notifications.SmtpMailer(settings, ssl_context=_ssl_context(context.config)) as mailer:
        for _ in range(notifications.SEND_BATCH):
            if context.should_stop():
                break
            message = notifications.claim_due_email(session, lease=lease)
            session.commit()  # the claim is visible to other senders before we talk to the server
            if message is None:
                break
            try:
                mailer.send(message)
            except notifications.SendError as exc:
                flagged = notifications.record_failure(session, message, str(exc))
                session.commit()
                counts["gave_up" if flagged else "failed"] += 1
                if exc.connection_lost:
                    break  # the server is unreachable: the rest waits for the next run
                continue
            notifications.record_sent(session, message)
            session.commit()
            counts["sent"] += 1
    return counts


def schedule_rotations(session: Session, context: JobContext) -> Mapping[str, int]:
    """Open a scheduled rotation task for every due or overdue secret (idempotent)."""
    return schedules.schedule_due(session, now=context.now)


def purge_versions(session: Session, context: JobContext) -> Mapping[str, int]:
    """Destroy retired secret versions past the vault's retention (GOVERN_VAULT_RETENTION_DAYS, default 30)."""
    days = int(context.config.get("VAULT_RETENTION_DAYS") or versions.DEFAULT_RETENTION_DAYS)
    return versions.purge_expired_versions(session, retention_days=days, now=context.now)


def remind_overdue(session: Session, context: JobContext) -> Mapping[str, int]:
    """Email reminders for overdue rotation tasks (once a day) and escalations to admins (once a week)."""
    return reminders.send_reminders(session, now=context.now)


def weekly_digest(session: Session, context: JobContext) -> Mapping[str, int]:
    """The weekly digest email for IT of due and overdue rotations (once per ISO week)."""
    return reminders.send_digest(session, now=context.now)


ROTATION_STEPS = [
    Step("rotation.schedule", "Open rotation tasks for due and overdue credentials", schedule_rotations),
    Step("vault.purge", "Destroy retired secret versions past retention", purge_versions),
    Step("rotation.remind", "Remind and escalate overdue rotations", remind_overdue),
    Step("rotation.digest", "Weekly rotation digest for IT", weekly_digest),
]


def start_due_offboardings(session: Session, context: JobContext) -> Mapping[str, int]:
    """Start scheduled offboardings whose time has come, and close items whose work was done elsewhere."""
    result = offboarding_start.start_due_offboardings(session, now=context.now)
    return {"started": result["started"], "failed": len(result["failed"]), "synced": result["synced"]}


def escalate_offboardings(session: Session, context: JobContext) -> Mapping[str, int]:
    """Email and notify owners and HR about overdue checklist items (once per item per period)."""
    return escalate_overdue(session, settings=settings_from(context.config), now=context.now)


def check_leavers(session: Session, context: JobContext) -> Mapping[str, int]:
    """Check the leaver invariants; tell the admins about violations (once per distinct set)."""
    report = check_and_notify(session, now=context.now, base_url=str(context.config.get("BASE_URL") or ""))
    counts = report.counts()
    if report.violations:  # counts only: `govern check` names the people
        log.warning("leaver invariants violated: %s", {k: v for k, v in counts.items() if k != "admins_notified"})
    return counts


def sync_connectors(session: Session, context: JobContext) -> Mapping[str, int]:
    """Read who holds which role on every connected account (resuming a run that died), then carry out
    the removals an admin allowed to run automatically. Commits after each account."""
    keyring = current_app.extensions.get("govern.keyring") if has_app_context() else None
    settings = ConnectorSettings.from_config(context.config, keyring)
    try:
        run = connector_sync.run_sync(session, actor=None, settings=settings, trigger="job", checkpoint=session.commit,
                                      now=context.now, should_stop=context.should_stop)
    except connector_sync.SyncBusy:
        return {"busy": 1}
    removed = connector_removal.remove_automatically(session, settings=settings)
    session.commit()
    reminded = connector_attestations.remind_due(session, now=context.now)
    session.commit()
    progress = run.progress
    return {"accounts": len(progress.get("done", {})), "failed": len(progress.get("failed", {})),
            "requests": run.requests, "attestations_reminded": reminded, **removed}


def _audit_keys() -> Any:
    return current_app.extensions.get("govern.audit_keys") if has_app_context() else None


def sign_checkpoint(session: Session, context: JobContext) -> Mapping[str, int]:
    """Sign the audit chain's head with the audit signing key, when it moved since the last checkpoint."""
    keys = _audit_keys()
    if keys is None:
        return {"signed": 0, "no_keys": 1}
    keyed = record_keying(session, keys)  # once: the change to a keyed chain is an event of the chain
    return {"signed": 1 if write_checkpoint(session, keys, now=context.now) else 0, "keying_recorded": 1 if keyed else 0}


def ship_audit(session: Session, context: JobContext) -> Mapping[str, int]:
    """Send the audit trail to every sink from its cursor; tell the admins about a sink that lags."""
    config = context.config
    box = secret_box([config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", [])])
    results = shipper.ship_all(session, box=box, keys=_audit_keys(), now=context.now, should_stop=context.should_stop)
    lag = shipper.alert_on_lag(session, max_lag=timedelta(minutes=int(config.get("AUDIT_SINK_MAX_LAG_MINUTES") or 30)),
                               now=context.now)
    session.commit()
    return shipper.result_counts(results, lag)


def _webhook_box(config: Mapping[str, Any]) -> Any:
    return webhook_box([config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", [])])


def deliver_webhooks(session: Session, context: JobContext) -> Mapping[str, int]:
    """Send every webhook endpoint its events in order; turn off one that failed for a day and tell the admins."""
    results = webhook_delivery.deliver_all(session, box=_webhook_box(context.config),
                                           base_url=str(context.config.get("BASE_URL") or ""), now=context.now,
                                           should_stop=context.should_stop)
    return webhook_delivery.counts(results)


def send_chat(session: Session, context: JobContext) -> Mapping[str, int]:
    """Post people's notifications to their own chat (Slack or Teams), with retries."""
    return webhook_chat.send_chat(session, box=_webhook_box(context.config), now=context.now)


def make_backup(session: Session, context: JobContext) -> Mapping[str, int]:
    """Back up the database to GOVERN_BACKUP_DIR when the last good backup is old enough; prune the oldest."""
    return backups.run_scheduled(session, url=str(context.config["DATABASE_URL"]),
                                 keyring=current_app.extensions.get("govern.keyring") if has_app_context() else None,
                                 config=context.config,
                                 now=context.now)


#: Every time-based step, in the order they run. Later areas add theirs here, one line each.
STEPS: list[Step] = [
    Step("grants.expire", "Expire time-bound grants", expire_grants),
    Step("sessions.purge", "Purge stale web sessions", purge_sessions),
    Step("jobs.prune", "Delete job runs older than 90 days", prune_job_runs),
    Step("api.prune", "Forget the API's idempotent answers after a day and past rate counters", prune_api),
    *ROTATION_STEPS,
    Step("offboarding.start_due", "Start due offboardings and close items done elsewhere", start_due_offboardings),
    Step("offboarding.escalate", "Escalate overdue offboarding items", escalate_offboardings),
    Step("connectors.sync", "Sync platform members (Meta, LinkedIn, TikTok), report drift, remove leavers where allowed",
         sync_connectors, own_transactions=True),
    # After the starts above, so a leaver whose offboarding just started is no violation.
    Step("offboarding.check", "Check that no leaver keeps access (the leaver invariants)", check_leavers),
    Step("audit.checkpoint", "Sign a checkpoint of the audit chain", sign_checkpoint),
    # Before the email: a lag alert it queues goes out in the same run.
    Step("audit.ship", "Ship the audit trail to its sinks", ship_audit, own_transactions=True),
    Step("webhooks.deliver", "Deliver events to webhook endpoints (Slack, Teams, signed JSON)", deliver_webhooks,
         own_transactions=True),
    Step("chat.send", "Post people's notifications to their own chat", send_chat, own_transactions=True),
    Step("email.send", "Send queued email", send_email, own_transactions=True),
    # Last: the snapshot then holds what the steps above did.
    Step("backup.make", "Back up the database and prune old backups", make_backup, own_transactions=True),
]
