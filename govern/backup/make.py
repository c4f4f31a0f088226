"""Making a backup: snapshot, manifest, archive; recorded in `backups` and the audit trail afterwards."""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from govern import audit
from govern.backup.archive import FORMAT, BackupError, Encryption, write_archive
from govern.backup.models import BackupRecord
from govern.backup.snapshot import take_snapshot
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.keyring import Keyring
from govern.db import utcnow

ARCHIVE_SUFFIX = {"none": ".tar", "passphrase": ".tar.age", "recipient": ".tar.age"}
ARCHIVE_PREFIX = "govern-backup-"


@dataclass
class MadeBackup:
    """A backup archive written to disk."""

    path: Path
    size_bytes: int
    sha256: str
    manifest: dict[str, Any]


def installed_version() -> str:
    """govern's version as installed (the manifest's record of what made the backup)."""
    try:
        return metadata.version("govern")
    except metadata.PackageNotFoundError:
        return "unknown"


def archive_name(now: datetime, encryption: Encryption) -> str:
    """govern-backup-20261204T120000Z.tar(.age): names sort by time."""
    return f"{ARCHIVE_PREFIX}{now:%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX[encryption.mode]}"


def make_backup(url: str, dest: Path, *, keyring: Keyring | None, secret_key: str | None, encryption: Encryption,
                include_keys: bool = False, audit_keys: AuditKeys | None = None,
                now: datetime | None = None) -> MadeBackup:
    """Snapshot the database at ``url`` into the archive ``dest`` (a folder: a timestamped name in it).

    Nothing is written to the database: the caller records the result (``record_backup``) so that
    a failed backup can be recorded too.
    """
    now = now or utcnow()
    if dest.is_dir():
        dest = dest / archive_name(now, encryption)
    if dest.exists():
        raise BackupError(f"{dest} exists already; a backup never overwrites a file")
    if include_keys and keyring is None:
        raise BackupError("--include-keys: the vault is sealed, there is no keyring to include")
    with tempfile.TemporaryDirectory(prefix="govern-backup-", dir=dest.parent if dest.parent.exists() else None) as work:
        snapshot = take_snapshot(url, Path(work))
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "govern_version": installed_version(),
            "database": snapshot.database,
            "created_at": now.isoformat(),
            "host": socket.gethostname(),
            "encryption": encryption.mode,
            **snapshot.facts,
        }
        size, digest = write_archive(dest, manifest, snapshot.data_path, keyring=keyring, secret_key=secret_key,
                                     include_keys=include_keys, encryption=encryption,
                                     audit_keys_json=audit_keys.to_json() if audit_keys else None)
    return MadeBackup(path=dest, size_bytes=size, sha256=digest, manifest=manifest)


def record_backup(session: Session, made: MadeBackup, *, made_by: str, started_at: datetime) -> BackupRecord:
    """Record a good backup and audit it, in the caller's transaction."""
    manifest = made.manifest
    head = manifest.get("audit_head") or {}
    row = BackupRecord(started_at=started_at, finished_at=utcnow(), made_by=made_by, outcome="ok", path=str(made.path),
                       size_bytes=made.size_bytes, sha256=made.sha256, encryption=manifest["encryption"],
                       migration=manifest.get("migration"), audit_head_id=head.get("event_id"))
    session.add(row)
    session.flush()
    audit.record(session, "backup.created", target_type="backup", target_id=row.id,
                 details={"path": str(made.path), "bytes": made.size_bytes, "sha256": made.sha256,
                          "encryption": manifest["encryption"], "migration": manifest.get("migration"),
                          "audit_head": head.get("event_id"), "keyring_included": manifest["keyring_included"]})
    return row


def record_failure(session: Session, dest: Path, error: str, *, made_by: str, started_at: datetime,
                   encryption: Encryption) -> BackupRecord:
    """Record a backup that failed, with why (the admin home page counts only good ones)."""
    row = BackupRecord(started_at=started_at, finished_at=utcnow(), made_by=made_by, outcome="failed", path=str(dest),
                       encryption=encryption.mode, error=error[:1000])
    session.add(row)
    session.flush()
    audit.record(session, "backup.failed", target_type="backup", target_id=row.id, outcome="failure",
                 details={"path": str(dest), "error": error[:500]})
    return row
