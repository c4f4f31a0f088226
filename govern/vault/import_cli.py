"""`govern vault import`: import a password manager's CSV export from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app, g
from flask.cli import with_appcontext

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from govern.auth.models import User
    from govern.vault.import_apply import ImportReport


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(["bitwarden", "1password", "keepass", "generic"]),
              help="Which password manager wrote the file.")
@click.option("--dry-run", is_flag=True, help="Show where every entry would go; write nothing.")
@click.option("--create-accounts", is_flag=True, help="Create the accounts the file names that are not registered yet.")
@click.option("--account", "account_ref", metavar="ACCOUNT",
              help="Put the entries that match no account (a secure note without an address, say) into ACCOUNT: "
                   "its id, platform:handle (instagram:acme) or profile address.")
@click.option("--as", "actor_email", metavar="EMAIL",
              help="The IT or admin user the import is recorded for (required unless --dry-run).")
@with_appcontext
def import_command(file: Path, fmt: str, dry_run: bool, create_accounts: bool, account_ref: str | None,
                   actor_email: str | None) -> None:
    """Vault the passwords, one-time password seeds and notes of an export (values are never printed)."""
    from govern.db import database
    from govern.errors import GovernError
    from govern.schema import ensure_current
    from govern.vault import import_apply, import_parse

    ensure_current(database(current_app).engine)
    keyring = current_app.extensions.get("govern.keyring")
    if keyring is None and not dry_run:
        raise click.ClickException("the vault is sealed (no valid keyring): provide the key file or "
                                   "GOVERN_VAULT_KEYRING_JSON; nothing was imported")
    g.audit_actor_label = "cli"
    if not dry_run and not actor_email:
        raise click.ClickException("say who imports with --as EMAIL (an IT or admin user); nothing was imported")
    if file.stat().st_size > import_parse.MAX_FILE_BYTES:
        raise click.ClickException(f"{file.name} is larger than {import_parse.MAX_FILE_BYTES // (1024 * 1024)} MB; split it")
    try:
        parsed = import_parse.parse_file(file.read_bytes(), fmt, filename=file.name)
    except import_parse.ImportFileError as exc:
        raise click.ClickException(exc.message) from None
    with database(current_app).session_scope() as session:
        fallback = None
        if account_ref is not None:
            try:
                fallback = import_apply.resolve_account(session, account_ref)
            except GovernError as exc:
                raise click.ClickException(f"--account: {exc.message}; nothing was imported") from None
        if dry_run:
            report = import_apply.preview_import(session, parsed, fallback=fallback)
            # The real run creates every account the file proposes when --create-accounts is given.
            chosen = set(report.new_accounts) if create_accounts else set()
            session.rollback()
        else:
            actor = _importer(session, actor_email or "")
            chosen = set()
            if create_accounts:
                chosen = set(import_apply.preview_import(session, parsed).new_accounts)
            rows = len(parsed.entries)
            try:
                with click.progressbar(length=rows, label=f"importing {parsed.filename}", file=sys.stderr) as bar:
                    report = import_apply.apply_import(session, parsed, actor=actor, keyring=keyring,
                                                   create_accounts=chosen, progress=bar.update, fallback=fallback)
            except GovernError as exc:
                session.rollback()
                raise click.ClickException(exc.message) from None
            session.commit()
            chosen = set(report.created_keys)
    _print(report, dry_run, chosen)


def _importer(session: Session, email: str) -> User:
    """The active IT or admin user named by --as."""
    from sqlalchemy import func, select

    from govern.auth.models import User

    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.is_active or not {"it", "admin"} & set(user.roles):
        raise click.ClickException(f"{email} is not an active IT or admin user; nothing was imported")
    return user


def _print(report: ImportReport, dry_run: bool, create: set[str]) -> None:
    """Where every entry goes, the same lines for a dry run and the real run; then the counts.

    ``create`` holds the keys of the accounts the run creates (or, dry, would create).
    """
    lines: list[tuple[int, str, bool]] = []
    for row in report.to_import(create):
        kinds = ", ".join(p.kind + (" (already vaulted, left alone)" if p.exists else "") for p in row.secrets)
        if row.status == "new_account":
            where = f"{row.account_label} (a new account, created by this import)"
        elif row.is_assigned:
            where = f"{row.account_label} (chosen with --account: {row.reason})"
        else:
            where = row.account_label
        lines.append((row.line, f"{report.filename}:{row.line}: into {where}: {kinds}", False))
    for row in report.proposed:
        if row.new_key not in create:
            lines.append((row.line, f"{report.filename}:{row.line}: account {row.account_label} is not registered "
                                    "(left out: --create-accounts creates it)", True))
    for row in report.unmatched:
        lines.append((row.line, f"{report.filename}:{row.line}: not matched: {row.reason} "
                                "(left out: --account ACCOUNT puts it in an account)", True))
    for problem in report.skipped:
        lines.append((problem.line, f"{report.filename}:{problem.line}: skipped: {problem.reason}", True))
    for _line, text, err in sorted(lines, key=lambda item: item[0]):
        click.echo(text, err=err)
    summary = (f"{report.rows} entries: {len(report.matched)} matched, {len(report.proposed)} for "
               f"{len(report.new_accounts)} unregistered account(s), {len(report.unmatched)} not matched, "
               f"{len(report.skipped)} skipped")
    if dry_run:
        kinds = ", ".join(f"{n} {k}" for k, n in report.vault_counts(create).items()) or "nothing"
        click.echo(f"{summary}. Dry run: would vault {kinds}; would create {len(create)} account(s); nothing was written.")
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in report.created_by_kind.items()) or "nothing"
        click.echo(f"{summary}. Vaulted {kinds}; {report.accounts_created} account(s) created.")
