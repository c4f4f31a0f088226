"""Verifying an archive without touching govern's database, and restoring one into an empty database.

Verify reads the archive into a temporary folder and checks a database built from it: the SQLite
member itself, or the PostgreSQL dump loaded into a scratch database that is dropped afterwards.
Restore refuses a database that holds tables (unless told), a backup of a newer govern, and an
archive that fails the checks; an older backup is upgraded to this version's migrations.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from govern import audit, schema
from govern.audit.services import AuditContext
from govern.backup.archive import BackupError, Decryption, Opened, open_archive, secret_key_check
from govern.backup.checks import CheckReport, check_restored
from govern.backup.snapshot import dialect_of, restore_pgdump, scratch_postgresql, sqlite_path, table_names
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.keyring import Keyring, write_private_file


@dataclass
class Verified:
    """What verify found: the manifest, the checks' report and which keyring was used."""

    manifest: dict[str, Any]
    report: CheckReport
    encryption: str
    keyring_source: str
    notes: list[str] = field(default_factory=list)


def _version_problem(manifest: Mapping[str, Any]) -> str | None:
    migration = manifest.get("migration")
    if migration and not schema.is_known_revision(str(migration)):
        return (f"the backup is at migration {migration}, which this govern does not know: it was made by a newer "
                f"govern ({manifest.get('govern_version')}); install that version or newer to restore it")
    return None


def _pick_keyring(keyring: Keyring | None, opened: Opened) -> tuple[Keyring | None, str]:
    if keyring is not None:
        return keyring, "given"
    if opened.keyring is not None:
        return opened.keyring, "archive"
    return None, "none"


def _audit_keys_of(opened: Opened, given: AuditKeys | None) -> AuditKeys | None:
    if given is not None:
        return given
    return AuditKeys.from_json(opened.audit_keys_json) if opened.audit_keys_json else None


def _check_opened(opened: Opened, keyring: Keyring | None, scratch_url: str | None, work: Path,
                  audit_keys: AuditKeys | None = None) -> CheckReport:
    audit_keys = _audit_keys_of(opened, audit_keys)
    if opened.manifest["database"] == "sqlite":
        return check_restored(f"sqlite:///{opened.data_path}", opened.manifest, keyring, audit_keys=audit_keys)
    if not scratch_url or dialect_of(scratch_url) != "postgresql":
        raise BackupError("checking a PostgreSQL backup loads it into a scratch database: give --scratch-url "
                          "(a PostgreSQL URL whose user may create databases; GOVERN_DATABASE_URL is used by default)")
    with scratch_postgresql(scratch_url, f"govern_verify_{secrets.token_hex(6)}") as url:
        restore_pgdump(opened.data_path, url)
        return check_restored(url, opened.manifest, keyring, audit_keys=audit_keys)


def verify_archive(path: Path, *, decryption: Decryption, keyring: Keyring | None,
                   scratch_url: str | None, audit_keys: AuditKeys | None = None) -> Verified:
    """Open and check the archive at ``path``; raises BackupError when it cannot even be read."""
    with tempfile.TemporaryDirectory(prefix="govern-verify-") as work:
        opened = open_archive(path, decryption, Path(work))
        used, source = _pick_keyring(keyring, opened)
        version = _version_problem(opened.manifest)
        report = (CheckReport(problems=[version]) if version
                  else _check_opened(opened, used, scratch_url, Path(work), audit_keys))
        notes = [] if used else ["no keyring given: the data keys were not checked (give --keyring FILE)"]
        if not isinstance(opened.manifest.get("mac"), dict):
            notes.append("the manifest is not signed (the vault was sealed when the backup was made): an edit of "
                         "the manifest alone shows only where its counts or head no longer match the data")
        if report.keyed_unchecked:
            notes.append(f"{report.keyed_unchecked} keyed audit events: their HMACs were not checked "
                         "(give --audit-keys FILE)")
        return Verified(manifest=opened.manifest, report=report, encryption=opened.encryption,
                        keyring_source=source, notes=notes)


@dataclass
class Restored:
    """What restore did."""

    manifest: dict[str, Any]
    report: CheckReport
    upgraded_to: str | None
    keyring_written: Path | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SecretKeys:
    """The SECRET_KEY govern is configured with (and its fallbacks), and where its file is, if it is a file."""

    keys: tuple[str, ...] = field(default=(), repr=False)
    file: Path | None = None


def restore_archive(path: Path, target_url: str, *, decryption: Decryption, keyring: Keyring | None,
                    key_file: Path | None, secret_keys: SecretKeys, force: bool = False,
                    audit_keys: AuditKeys | None = None, audit_key_file: Path | None = None) -> Restored:
    """Restore the archive into ``target_url`` and check it; nothing is changed when a check fails first."""
    with tempfile.TemporaryDirectory(prefix="govern-restore-") as work:
        opened = open_archive(path, decryption, Path(work))
        manifest = opened.manifest
        version = _version_problem(manifest)
        if version:
            raise BackupError(version)
        target = dialect_of(target_url)
        if manifest["database"] != target:
            raise BackupError(f"this is a backup of a {manifest['database']} database; it restores into {manifest['database']}, "
                              f"and GOVERN_DATABASE_URL points at {target}")
        existing = table_names(target_url)
        if existing and not force:
            raise BackupError(f"the target database is not empty ({len(existing)} tables): restore never overwrites "
                              "data; restore into an empty database, or pass --force to replace this one")
        used, _source = _pick_keyring(keyring, opened)
        chain_keys = _audit_keys_of(opened, audit_keys)
        if target == "sqlite":
            report = _restore_sqlite(opened, target_url, used, chain_keys)
        else:
            report = _restore_postgresql(opened, target_url, used, chain_keys, force=bool(existing), work=Path(work))
        upgraded = None
        if manifest.get("migration") != schema.head_revision():
            schema.upgrade(target_url)
            upgraded = schema.head_revision()
        written = _write_keyring(opened.keyring, key_file) if keyring is None else None
        notes = _secret_key_notes(opened, secret_keys)
        if audit_keys is None and chain_keys is not None and audit_key_file is not None and not audit_key_file.exists():
            chain_keys.save(audit_key_file)
            notes.append(f"the archive's audit keys were written to {audit_key_file} (mode 0600)")
        _record_restore(target_url, path, manifest, upgraded, chain_keys)
        return Restored(manifest=manifest, report=report, upgraded_to=upgraded, keyring_written=written, notes=notes)


def _secret_key_notes(opened: Opened, configured: SecretKeys) -> list[str]:
    """Put the archive's SECRET_KEY in place, or say that the authenticator seeds need the original one."""
    wanted = opened.manifest.get("secret_key_check")
    if not wanted or any(secret_key_check(key) == wanted for key in configured.keys):
        return []
    if opened.secret_key and configured.file is not None:
        # The database it protected is empty or replaced; the old file is kept beside it all the same.
        if configured.file.exists():
            os.replace(configured.file, configured.file.with_name(configured.file.name + ".replaced"))
        write_private_file(configured.file, opened.secret_key + "\n")
        return [f"the archive's secret key was written to {configured.file} (the old one kept as "
                f"{configured.file.name}.replaced): restart govern so that it is used"]
    return ["the authenticator (TOTP) seeds in this backup were sealed under another SECRET_KEY than the one "
            "configured: set GOVERN_SECRET_KEY (or the secret_key file) to the original, or every user must "
            "enrol their authenticator again (`govern users create-admin` recovers an admin)"]


def _refuse(report: CheckReport) -> None:
    if not report.ok:
        raise BackupError("the backup fails its checks, nothing was restored: " + " | ".join(report.problems))


def _restore_sqlite(opened: Opened, target_url: str, keyring: Keyring | None,
                    audit_keys: AuditKeys | None) -> CheckReport:
    # Checked where it lies, then moved into place in one rename: a failure changes nothing.
    report = check_restored(f"sqlite:///{opened.data_path}", opened.manifest, keyring, audit_keys=audit_keys,
                            require_audit_keys=True)
    _refuse(report)
    target = sqlite_path(target_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{secrets.token_hex(4)}.restore")
    shutil.copyfile(opened.data_path, staged)
    os.chmod(staged, 0o600)
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    # A write-ahead log of the old database would be replayed onto the restored one.
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(staged, target)
    return report


def _drop_everything(url: str) -> None:
    """Every table of govern's PostgreSQL database, and the audit trail's trigger function."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP FUNCTION IF EXISTS audit_events_append_only() CASCADE"))
    finally:
        engine.dispose()


def _restore_postgresql(opened: Opened, target_url: str, keyring: Keyring | None, audit_keys: AuditKeys | None, *,
                        force: bool, work: Path) -> CheckReport:
    if force:  # the data there goes: only for an archive that passed its checks in a scratch database
        _refuse(_check_opened(opened, keyring, target_url, work, audit_keys))
        _drop_everything(target_url)
    restore_pgdump(opened.data_path, target_url)
    report = check_restored(target_url, opened.manifest, keyring, audit_keys=audit_keys, require_audit_keys=True)
    if not report.ok:
        _drop_everything(target_url)  # back to the empty database it was
        _refuse(report)
    return report


def _write_keyring(keyring: Keyring | None, key_file: Path | None) -> Path | None:
    """Put the archive's key file in place when the operator has none there yet."""
    if keyring is None or key_file is None or key_file.exists():
        return None
    keyring.save(key_file)
    return key_file


def _record_restore(url: str, path: Path, manifest: Mapping[str, Any], upgraded: str | None,
                    audit_keys: AuditKeys | None) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            audit.record(session, "backup.restored", target_type="backup", target_id=path.name,
                         details={"archive": str(path), "created_at": manifest.get("created_at"),
                                  "migration": manifest.get("migration"), "upgraded_to": upgraded,
                                  "audit_head": (manifest.get("audit_head") or {}).get("event_id")},
                         context=AuditContext(actor_label="cli"),
                         key=audit_keys.chain_key() if audit_keys else None)
            session.commit()
    finally:
        engine.dispose()
