"""Scheduled backups: the jobs step that makes one when the last good one is old enough and prunes
the oldest beyond GOVERN_BACKUP_KEEP, and the admin home page's word on the last good backup."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.backup.archive import BackupError, Encryption
from govern.backup.make import ARCHIVE_PREFIX, make_backup, record_backup, record_failure
from govern.backup.models import BackupRecord
from govern.crypto.keyring import Keyring
from govern.db import utcnow

#: The admin home page warns when no good backup is younger than this.
STALE_AFTER = timedelta(days=1)
#: A backup is due this much before the interval is over: with jobs every few minutes, the daily
#: backup does not drift later by a run each day.
DUE_SLACK = timedelta(minutes=10)
#: A .partial file older than this was left by a backup that was killed; the next run removes it.
PARTIAL_MAX_AGE = timedelta(hours=6)


def last_good(session: Session) -> BackupRecord | None:
    """The newest backup that was written and checked."""
    return session.scalar(select(BackupRecord).where(BackupRecord.outcome == "ok")
                          .order_by(BackupRecord.finished_at.desc(), BackupRecord.id.desc()).limit(1))


def staleness(session: Session, *, now: datetime | None = None) -> str | None:
    """A sentence for admins when no good backup is younger than a day (None when all is well)."""
    now = now or utcnow()
    last = last_good(session)
    if last is None:
        return ("No backup of govern has been made yet: set GOVERN_BACKUP_DIR so the jobs make one every day, "
                "or run \u201cgovern backup DIR\u201d.")
    if now - last.finished_at > STALE_AFTER:
        hours = int((now - last.finished_at).total_seconds() // 3600)
        return (f"The last good backup is {hours} hours old: check GOVERN_BACKUP_DIR and the jobs "
                "(\u201cgovern jobs run\u201d), or run \u201cgovern backup DIR\u201d.")
    return None


def scheduled_encryption(config: Mapping[str, Any]) -> Encryption:
    """The encryption the operator configured for scheduled backups (recipients, else a passphrase file)."""
    recipients = tuple(config.get("BACKUP_RECIPIENTS") or ())
    if recipients:
        return Encryption(recipients=recipients)
    passphrase_file = config.get("BACKUP_PASSPHRASE_FILE")
    if passphrase_file:
        try:
            passphrase = Path(passphrase_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BackupError(f"cannot read GOVERN_BACKUP_PASSPHRASE_FILE: {exc.strerror}") from None
        if not passphrase:
            raise BackupError("GOVERN_BACKUP_PASSPHRASE_FILE is empty")
        return Encryption(passphrase=passphrase)
    return Encryption()


def remove_stale_partials(folder: Path, *, now: float | None = None) -> int:
    """Delete .partial files a killed backup left behind (old enough that no backup is still writing them)."""
    now = now if now is not None else time.time()
    removed = 0
    for partial in folder.glob(f".{ARCHIVE_PREFIX}*.partial*"):
        if now - partial.stat().st_mtime > PARTIAL_MAX_AGE.total_seconds():
            partial.unlink(missing_ok=True)
            removed += 1
    return removed


def run_scheduled(session: Session, *, url: str, keyring: Keyring | None, config: Mapping[str, Any],
                  now: datetime) -> dict[str, int]:
    """Make a backup if none good is younger than GOVERN_BACKUP_EVERY_HOURS, then prune. Commits as it goes."""
    folder = config.get("BACKUP_DIR")
    if not folder:
        return {"not_configured": 1}
    every = timedelta(hours=int(config.get("BACKUP_EVERY_HOURS") or 24))
    last = last_good(session)
    # No transaction stays open while the snapshot is taken: on SQLite it would hold the write lock.
    session.commit()
    if last is not None and now - last.finished_at < every - DUE_SLACK:
        return {"made": 0, "recent": 1}
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    counts = {"made": 0, "failed": 0, "partials_removed": remove_stale_partials(target)}
    started = utcnow()
    try:
        encryption = scheduled_encryption(config)
        made = make_backup(url, target, keyring=keyring, secret_key=config.get("SECRET_KEY"), encryption=encryption,
                           now=now)
    except BackupError as exc:
        record_failure(session, target, str(exc), made_by="jobs", started_at=started, encryption=Encryption())
        session.commit()
        counts["failed"] = 1
        return counts
    record_backup(session, made, made_by="jobs", started_at=started)
    session.commit()
    counts["made"] = 1
    counts["pruned"] = prune(session, target, keep=int(config.get("BACKUP_KEEP") or 7), now=now)
    session.commit()
    return counts


def prune(session: Session, folder: Path, *, keep: int, now: datetime) -> int:
    """Delete the archives in ``folder`` beyond the ``keep`` newest good ones; audited, one event per run."""
    rows = session.scalars(
        select(BackupRecord).where(BackupRecord.outcome == "ok", BackupRecord.pruned_at.is_(None),
                                   BackupRecord.path.like(f"{folder}/%"))
        .order_by(BackupRecord.finished_at.desc(), BackupRecord.id.desc())
    ).all()
    gone = [row for row in rows[keep:] if Path(row.path).parent == folder]
    for row in gone:
        Path(row.path).unlink(missing_ok=True)
        row.pruned_at = now
    if gone:
        audit.record(session, "backup.pruned", target_type="backup", target_id=gone[0].id,
                     details={"kept": keep, "deleted": [row.path for row in gone]})
    return len(gone)
