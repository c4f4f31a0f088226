"""`govern backup DEST`, `govern backup verify FILE` and `govern restore FILE`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app, g
from flask.cli import with_appcontext


class _CreateByDefault(click.Group):
    """`govern backup DEST` is `govern backup create DEST`; `govern backup verify FILE` is its own command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group("backup", cls=_CreateByDefault)
def group() -> None:
    """Back up the database (`govern backup DEST`), or check an archive (`govern backup verify FILE`)."""


def _read_passphrase_file(path: Path) -> str:
    from govern.backup.archive import BackupError

    try:
        passphrase = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BackupError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    if not passphrase:
        raise BackupError(f"the passphrase file {path} is empty")
    return passphrase


def _decryption(passphrase_file: Path | None, ask: bool, identity_files: tuple[Path, ...]) -> Any:
    from govern.backup.archive import Decryption, read_identities

    identities = tuple(i for path in identity_files for i in read_identities(path))
    passphrase = _read_passphrase_file(passphrase_file) if passphrase_file else None
    if ask:
        passphrase = click.prompt("Passphrase of the backup", hide_input=True, err=True)
    return Decryption(passphrase=passphrase, identities=identities)


def _keyring(path: Path | None) -> Any:
    from govern.backup.archive import BackupError
    from govern.crypto.keyring import Keyring, KeyringError

    if path is None:
        return None
    try:
        return Keyring.load(path)
    except KeyringError as exc:
        raise BackupError(str(exc)) from None


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


_passphrase_file = click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
                                help="Read the passphrase from this file (never give it on the command line).")
_ask = click.option("--passphrase", "ask", is_flag=True, help="Ask for the passphrase at the terminal.")
_identity = click.option("--identity", "identities", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                         help="An age identity file (AGE-SECRET-KEY-1...) that opens the archive; repeatable.")


@group.command("create")
@click.argument("dest", type=click.Path())
@click.option("--recipient", "recipients", multiple=True, metavar="AGE1...",
              help="Encrypt to this age public key (age-keygen prints one); repeatable.")
@_passphrase_file
@_ask
@click.option("--include-keys", is_flag=True,
              help="Put the vault key file, the audit keys and the secret key (which seals the authenticator seeds) "
                   "into the encrypted archive. Whoever opens the archive can then read every secret: keep the keys apart "
                   "unless you must.")
@with_appcontext
def create(dest: str, recipients: tuple[str, ...], passphrase_file: Path | None, ask: bool,
           include_keys: bool) -> None:
    """Write a consistent backup of the database to DEST: a file, or a folder (existing, or ending in /) where
    the archive gets a timestamped name. govern keeps serving meanwhile."""
    from govern.backup.archive import BackupError, Encryption
    from govern.backup.make import make_backup, record_backup, record_failure
    from govern.db import get_session, utcnow

    g.audit_actor_label = "cli"
    session = get_session()
    started = utcnow()
    folder = dest.endswith(("/", os.sep))
    target = Path(dest)
    if folder:  # "DIR/": a timestamped archive in that folder, created if need be
        target.mkdir(parents=True, exist_ok=True)
    encryption = Encryption()
    try:
        passphrase = _read_passphrase_file(passphrase_file) if passphrase_file else None
        if ask:
            passphrase = click.prompt("Passphrase for the backup", hide_input=True, confirmation_prompt=True, err=True)
        encryption = Encryption(passphrase=passphrase, recipients=recipients)
        if include_keys:
            click.echo("warning: the archive will hold the vault key file and the secret key: anyone who opens it "
                       "can read every secret. Keep it as safe as the key file itself.", err=True)
        made = make_backup(current_app.config["DATABASE_URL"], target,
                           keyring=current_app.extensions.get("govern.keyring"),
                           secret_key=current_app.config["SECRET_KEY"], encryption=encryption,
                           include_keys=include_keys, audit_keys=current_app.extensions.get("govern.audit_keys"))
    except BackupError as exc:
        record_failure(session, target, str(exc), made_by="cli", started_at=started, encryption=encryption)
        session.commit()
        _fail(str(exc))
        return
    record_backup(session, made, made_by="cli", started_at=started)
    session.commit()
    manifest = made.manifest
    head = (manifest.get("audit_head") or {}).get("event_id")
    click.echo(f"backup written: {made.path} ({made.size_bytes} bytes, sha256 {made.sha256})")
    click.echo(f"  migration {manifest['migration']}, audit head {head}, {sum(manifest['row_counts'].values())} rows, "
               f"encryption {manifest['encryption']}, keys {'INCLUDED' if manifest['keyring_included'] else 'not included'}")


def _print_verified(verified: Any) -> None:
    manifest = verified.manifest
    head = (manifest.get("audit_head") or {}).get("event_id")
    click.echo(f"archive: govern {manifest.get('govern_version')}, {manifest['database']}, made {manifest.get('created_at')}, "
               f"migration {manifest.get('migration')}, encryption {verified.encryption}")
    report = verified.report
    click.echo(f"  audit chain: {report.events_verified} events verified (recorded head {head})")
    if report.keys_checked:
        click.echo(f"  vault: {report.data_keys_unwrapped} secret versions decrypt with the "
                   f"{'archive' if verified.keyring_source == 'archive' else 'given'} keyring")
    for note in verified.notes:
        click.echo(f"  note: {note}")


@group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--keyring", "keyring_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The vault key file: every secret version must decrypt with it, and missing KEKs are named.")
@_passphrase_file
@_ask
@_identity
@click.option("--audit-keys", "audit_keys_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The audit key file: the HMAC of every keyed audit event is checked too.")
@click.option("--scratch-url", metavar="URL",
              help="PostgreSQL archives are loaded into a temporary database on this server "
                   "(default: GOVERN_DATABASE_URL's server); it is dropped afterwards.")
def verify(file: Path, keyring_file: Path | None, passphrase_file: Path | None, ask: bool,
           identities: tuple[Path, ...], audit_keys_file: Path | None, scratch_url: str | None) -> None:
    """Check an archive without restoring it: it opens, the chain verifies, the counts match, the keys unwrap."""
    from govern.backup.archive import BackupError
    from govern.backup.restore import verify_archive
    from govern.config import load_config
    from govern.crypto.auditkeys import AuditKeyError, AuditKeys

    try:
        if scratch_url is None:
            scratch_url = str(load_config({"REQUIRE_CURRENT_SCHEMA": False})["DATABASE_URL"])
        audit_keys = AuditKeys.load(audit_keys_file) if audit_keys_file else None
        verified = verify_archive(file, decryption=_decryption(passphrase_file, ask, identities),
                                  keyring=_keyring(keyring_file), scratch_url=scratch_url, audit_keys=audit_keys)
    except (BackupError, AuditKeyError) as exc:
        _fail(str(exc))
        return
    _print_verified(verified)
    if not verified.report.ok:
        for problem in verified.report.problems:
            click.echo(f"FAILED: {problem}", err=True)
        sys.exit(1)
    click.echo("backup verified")


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Replace a database that already holds data (after the archive passed its checks).")
@click.option("--keyring", "keyring_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The vault key file to check the data keys with (default: GOVERN_VAULT_KEY_FILE).")
@_passphrase_file
@_ask
@_identity
def restore_command(file: Path, force: bool, keyring_file: Path | None, passphrase_file: Path | None, ask: bool,
                    identities: tuple[Path, ...]) -> None:
    """Restore a backup into GOVERN_DATABASE_URL (an empty database; stop govern first), then check it."""
    from govern.backup.archive import BackupError, is_encrypted
    from govern.backup.restore import SecretKeys, restore_archive
    from govern.config import load_config
    from govern.crypto.auditkeys import AuditKeyError, AuditKeys
    from govern.crypto.keyring import Keyring, KeyringError

    from_environment = bool(os.environ.get("GOVERN_SECRET_KEY"))
    config = load_config({"REQUIRE_CURRENT_SCHEMA": False})
    secret_keys = SecretKeys(keys=tuple(k for k in (config.get("SECRET_KEY"), *config["SECRET_KEY_FALLBACKS"]) if k),
                             file=None if from_environment else Path(config["SECRET_KEY_FILE"]))
    try:
        keyring = _keyring(keyring_file)
        key_file = Path(config["VAULT_KEY_FILE"])
        if keyring is None and config.get("VAULT_KEYRING_JSON"):
            keyring = Keyring.from_json(config["VAULT_KEYRING_JSON"])
        elif keyring is None and key_file.exists():
            keyring = Keyring.load(key_file)
        audit_key_file = Path(config["AUDIT_KEY_FILE"])
        audit_keys = None
        if config.get("AUDIT_KEYS_JSON"):
            audit_keys = AuditKeys.from_json(config["AUDIT_KEYS_JSON"])
        elif audit_key_file.exists():
            audit_keys = AuditKeys.load(audit_key_file)
        elif not config["IS_PRODUCTION"] and file.is_file() and not is_encrypted(file):
            # A plain archive never holds keys: this instance gets its own, as its first start would make them.
            audit_keys = AuditKeys.load_or_create(audit_key_file)
        restored = restore_archive(file, str(config["DATABASE_URL"]),
                                   decryption=_decryption(passphrase_file, ask, identities), keyring=keyring,
                                   key_file=key_file, secret_keys=secret_keys, force=force, audit_keys=audit_keys,
                                   audit_key_file=audit_key_file)
    except (BackupError, KeyringError, AuditKeyError) as exc:
        _fail(str(exc))
        return
    report = restored.report
    head = (restored.manifest.get("audit_head") or {}).get("event_id")
    click.echo(f"restored {file} (made {restored.manifest.get('created_at')}, migration {restored.manifest.get('migration')})")
    click.echo(f"  audit chain: {report.events_verified} events verified (recorded head {head})")
    if report.keys_checked:
        click.echo(f"  vault: {report.data_keys_unwrapped} secret versions decrypt")
    else:
        click.echo("  vault: not checked (no keyring: put the key file at GOVERN_VAULT_KEY_FILE, or give --keyring)")
    if restored.upgraded_to:
        click.echo(f"  upgraded to migration {restored.upgraded_to}")
    if restored.keyring_written:
        click.echo(f"  the archive's key file was written to {restored.keyring_written} (mode 0600)")
    for note in restored.notes:
        click.echo(f"  note: {note}")
