"""`govern keys rotate|rewrap|retire|status`, and the `govern vault` group (purge, import)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app, g
from flask.cli import with_appcontext

from govern.crypto.keyring import Keyring
from govern.vault.import_cli import import_command

#: Exit status of a vault command refused because the vault is sealed (like HTTP 503).
SEALED_EXIT = 3


@click.group("vault")
def group() -> None:
    """The credential vault."""


def _sealed_exit() -> None:
    problem = current_app.extensions.get("govern.keyring_problem") or "no keyring"
    click.echo(f"govern: the vault is sealed: {problem}", err=True)
    click.echo("An operator must supply the right key file (GOVERN_VAULT_KEY_FILE, made by `govern keys init`) "
               "or GOVERN_VAULT_KEYRING; `govern keys status` shows what the database expects.", err=True)
    sys.exit(SEALED_EXIT)


def _keyring() -> Keyring:
    """The app's checked keyring, or exit with the sealed explanation."""
    keyring: Keyring | None = current_app.extensions.get("govern.keyring")
    if keyring is None:
        _sealed_exit()
    assert keyring is not None
    return keyring


def _database() -> Any:
    from govern.db import database
    from govern.schema import ensure_current

    db = database(current_app)
    ensure_current(db.engine)
    g.audit_actor_label = "cli"
    return db


def _key_file_for_writing(output: Path | None) -> Path:
    if output is not None:
        return output
    if current_app.config["VAULT_KEYRING_JSON"]:
        raise click.ClickException(
            "the keyring comes from GOVERN_VAULT_KEYRING; write the new keyring to a file with --output FILE "
            "and put its contents in the variable")
    path: Path = current_app.config["VAULT_KEY_FILE"]
    return path


@click.command("rotate")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the new keyring here instead of replacing the key file.")
@with_appcontext
def rotate(output: Path | None) -> None:
    """Add a new primary key-encryption key (older keys stay, to unwrap existing data keys)."""
    from govern.vault.keys import record_rotation, rotate_keyring

    keyring = _keyring()
    db = _database()
    target = _key_file_for_writing(output)
    new = rotate_keyring(keyring)
    # The file first: if recording fails, the next use records the new key's check value.
    new.save(target)
    with db.session_scope() as session:
        record_rotation(session, old_primary=keyring.primary_id, keyring=new)
        session.commit()
    click.echo(f"new primary key {new.primary_id} written to {target} (mode 0600)")
    click.echo("Next: run `govern keys rewrap` (running govern processes read the key file again when they "
               "meet a data key under the new key, so reveals keep working), restart govern so every process "
               f"seals new values under it, then `govern keys retire {keyring.primary_id}`.")


@click.command("rewrap")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True,
              help="Data keys per transaction.")
@with_appcontext
def rewrap(batch_size: int) -> None:
    """Re-wrap every data key under the primary KEK, batch by batch (safe to stop; run again to finish)."""
    from govern import audit
    from govern.vault.keys import count_stale, rewrap_all

    keyring = _keyring()
    db = _database()
    with db.session_scope() as session:
        total = count_stale(session, keyring)
        audit.record(session, "vault.rewrap_started", target_type="kek", target_id=keyring.primary_id,
                     details={"stale": total, "batch_size": batch_size})
        session.commit()
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="rewrapping data keys", file=sys.stderr) as bar:
            result = rewrap_all(db.sessionmaker, keyring, batch_size=batch_size, progress=bar.update)
    else:
        result = rewrap_all(db.sessionmaker, keyring, batch_size=batch_size)
    with db.session_scope() as session:
        audit.record(session, "vault.rewrap_finished", target_type="kek", target_id=keyring.primary_id,
                     outcome="failure" if result.failed else "success",
                     details={"rewrapped": result.rewrapped, "failed": len(result.failed), "batches": result.batches})
        session.commit()
    rate = result.rewrapped / result.seconds if result.seconds > 0 else 0.0
    click.echo(f"rewrapped {result.rewrapped} data key(s) under {keyring.primary_id} in {result.batches} batch(es), "
               f"{result.seconds:.2f} s ({rate:,.0f}/s)")
    if result.failed:
        click.echo(f"{len(result.failed)} data key(s) did not unwrap (tampered or missing key), version ids: "
                   f"{', '.join(map(str, result.failed[:20]))}", err=True)
        sys.exit(1)


@click.command("retire")
@click.argument("kek_id")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the new keyring here instead of replacing the key file.")
@with_appcontext
def retire(kek_id: str, output: Path | None) -> None:
    """Remove KEK_ID from the keyring; refused while any data key is still wrapped by it."""
    from govern.errors import GovernError
    from govern.vault.keys import retire_kek

    keyring = _keyring()
    db = _database()
    target = _key_file_for_writing(output)
    with db.session_scope() as session:
        try:
            new = retire_kek(session, keyring, kek_id)
        except GovernError as exc:
            session.rollback()
            raise click.ClickException(exc.message) from None
        session.commit()
    new.save(target)
    click.echo(f"retired {kek_id}; the keyring at {target} keeps {len(new.keys)} key(s), primary {new.primary_id}")


@click.command("status")
@with_appcontext
def status() -> None:
    """Show the keyring, whether the vault is sealed, and how many data keys each KEK wraps."""
    from govern.vault.keys import count_stale, key_status

    db = _database()
    keyring: Keyring | None = current_app.extensions.get("govern.keyring")
    problem = current_app.extensions.get("govern.keyring_problem")
    if keyring is None:
        click.echo(f"vault: SEALED ({problem})")
        try:
            keyring = Keyring.from_json(current_app.config["VAULT_KEYRING_JSON"]) if current_app.config["VAULT_KEYRING_JSON"] \
                else Keyring.load(current_app.config["VAULT_KEY_FILE"])
        except Exception:  # noqa: BLE001 - the problem is already reported above
            keyring = None
    else:
        click.echo(f"vault: unsealed, primary key {keyring.primary_id}")
    with db.session_scope() as session:
        rows = key_status(session, keyring)
        stale = count_stale(session, keyring) if keyring is not None else None
    click.echo(f"{'KEK':<14} {'primary':<8} {'in keyring':<11} {'data keys':>10}  {'check':<8} retired")
    for row in rows:
        check = "ok" if row.check_ok else ("WRONG" if row.check_ok is False else "-")
        click.echo(f"{row.kek_id:<14} {'yes' if row.is_primary else '':<8} {'yes' if row.in_keyring else 'NO':<11} "
                   f"{row.data_keys:>10}  {check:<8} {'yes' if row.retired else ''}")
    if stale:
        click.echo(f"{stale} data key(s) are not yet under the primary key: run `govern keys rewrap`")
    if problem and current_app.extensions.get("govern.keyring") is None:
        sys.exit(SEALED_EXIT)


@group.command("purge")
@click.option("--retention-days", type=click.IntRange(0, 36500), default=None,
              help="Keep retired versions this many days (default GOVERN_VAULT_RETENTION_DAYS, 30).")
@with_appcontext
def purge(retention_days: int | None) -> None:
    """Crypto-shred retired secret versions older than the retention period (audited)."""
    from govern.vault.versions import purge_retired

    db = _database()
    days = current_app.config["VAULT_RETENTION_DAYS"] if retention_days is None else retention_days
    g.audit_actor_label = "jobs"
    total = 0
    while True:
        with db.session_scope() as session:
            done = purge_retired(session, retention_days=days)
            session.commit()
        total += done
        if done == 0:
            break
    click.echo(f"destroyed {total} retired version(s) older than {days} day(s)")


# `govern vault import` lives in its own module (it is long); the vault group carries it.
group.add_command(import_command)
