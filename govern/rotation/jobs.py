"""The rotation steps of `govern jobs run` (registered in govern.jobs.steps.STEPS)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from govern.jobs.services import JobContext
from govern.rotation import services


def schedule_rotations(session: Session, context: JobContext) -> Mapping[str, int]:
    """Open a scheduled rotation task for every due or overdue secret (idempotent)."""
    return services.schedule_due(session, now=context.now)


def purge_versions(session: Session, context: JobContext) -> Mapping[str, int]:
    """Destroy retired secret versions past the vault's retention (GOVERN_VAULT_RETENTION_DAYS, default 30)."""
    days = int(context.config.get("VAULT_RETENTION_DAYS") or services.DEFAULT_RETENTION_DAYS)
    return services.purge_expired_versions(session, retention_days=days, now=context.now)


def remind_overdue(session: Session, context: JobContext) -> Mapping[str, int]:
    """Email reminders for overdue rotation tasks (once a day) and escalations to admins (once a week)."""
    return services.send_reminders(session, now=context.now)


def weekly_digest(session: Session, context: JobContext) -> Mapping[str, int]:
    """The weekly digest email for IT of due and overdue rotations (once per ISO week)."""
    return services.send_digest(session, now=context.now)
