"""The `govern` command: one root group, a sub-group per area.

The root lists its sub-groups from a table (name, module, one line of help), so `govern --help`
and `govern <group> --help` import no area and build no app: click's lazy-subcommand pattern.
An area's module is imported when its command is looked up, and the app is built (through the
ScriptInfo that FlaskGroup puts in ctx.obj) only when a command runs under `with_appcontext`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import current_app, g
from flask.cli import AppGroup, FlaskGroup, ScriptInfo, with_appcontext


class LazyGroup(AppGroup):
    """A group whose listed subcommands are imported only when one is looked up; its own commands
    run in an app context, as in any AppGroup."""

    def __init__(self, *args: Any, lazy_subcommands: Mapping[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: name -> ("module:attribute", the one line `--help` shows without importing the module)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_subcommands:
            self.add_command(_load_command(self.lazy_subcommands[cmd_name][0]), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, with the help of a command not yet imported read from the table."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A stand-in for a command not imported yet shortens its help exactly as click would.
            command = self.commands.get(name) or click.Command(name, help=self.lazy_subcommands[name][1])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _load_command(spec: str) -> click.Command:
    module_name, _, attribute = spec.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{spec} is not a click command")
    return command


class RootGroup(LazyGroup, FlaskGroup):
    """FlaskGroup's options and ScriptInfo, without loading the app to list commands (govern's
    commands are all on this group; the app adds none)."""


def _create_cli_app() -> Any:
    # Imported here, not at the top: `govern --help` must not pay for building an app.
    app_module = importlib.import_module("govern.app")
    # Commands such as `db upgrade` must run against an out-of-date schema.
    return app_module.create_app({"REQUIRE_CURRENT_SCHEMA": False})


#: The areas' command groups, in the root: name -> (where it lives, its one-line help).
AREA_COMMANDS = {
    "backup": ("govern.backup.cli:group",
               "Back up the database (`govern backup DEST`), or check an archive (`govern backup verify FILE`)."),
    "check": ("govern.offboarding.cli:check_command",
              "Check the leaver invariants (no leaver keeps access); list every violation, exit 1 if any."),
    "connectors": ("govern.connectors.cli:group",
                   "Platform connectors (Meta, LinkedIn, TikTok): sync members and report drift."),
    "demo": ("govern.demo.cli:group", "Demo commands."),
    "directory": ("govern.directory.cli:group", "Directory commands."),
    "grants": ("govern.grants.cli:group", "Grants of account roles."),
    "jobs": ("govern.jobs.cli:group", "Time-based work: expiry, reminders, the email outbox."),
    "offboarding": ("govern.offboarding.cli:group", "Offboardings of people who leave."),
    "restore": ("govern.backup.cli:restore_command",
                "Restore a backup into GOVERN_DATABASE_URL (an empty database; stop govern first), then check it."),
    "rotation": ("govern.rotation.cli:group", "Credential rotation: what is due, and opening the tasks."),
    "vault": ("govern.vault.cli:group", "The credential vault."),
}

#: The vault's keyring commands, in `govern keys` next to `keys init`.
SSO_COMMANDS = {
    "add-provider": ("govern.sso.cli:add_provider",
                     "Add an OpenID Connect provider; its redirect URI is GOVERN_BASE_URL/login/sso/SLUG/callback."),
    "require": ("govern.sso.cli:require", "Refuse password sign-in to everyone, or to the holders of some app roles."),
}

KEY_COMMANDS = {
    "rotate": ("govern.vault.cli:rotate",
               "Add a new primary key-encryption key (older keys stay, to unwrap existing data keys)."),
    "rewrap": ("govern.vault.cli:rewrap",
               "Re-wrap every data key under the primary KEK, batch by batch (safe to stop; run again to finish)."),
    "retire": ("govern.vault.cli:retire",
               "Remove KEK_ID from the keyring; refused while any data key is still wrapped by it."),
    "status": ("govern.vault.cli:status",
               "Show the keyring, whether the vault is sealed, and how many data keys each KEK wraps."),
}


@click.group(cls=RootGroup, create_app=_create_cli_app, add_default_commands=True, add_version_option=False,
             lazy_subcommands=AREA_COMMANDS)
def cli() -> None:
    """govern: official social media accounts under control."""


def _db_session() -> Any:
    from govern.db import get_session

    g.audit_actor_label = "cli"
    return get_session()


# --- init -----------------------------------------------------------------------------------------


def _settings() -> dict[str, Any]:
    """The configuration, without building the app (whose start reports a missing key file as sealed)."""
    from govern.config import load_config

    return load_config({"REQUIRE_CURRENT_SCHEMA": False})


@cli.command("init", with_appcontext=False)
@click.option("--admin-email", envvar="GOVERN_ADMIN_EMAIL", default="admin@example.com", show_default=True,
              help="Email of the first admin, created when there is no user yet.")
@click.pass_context
def init_command(ctx: click.Context, admin_email: str) -> None:
    """Prepare the instance: keys, database at the latest migration, first admin."""
    from govern.crypto.auditkeys import AuditKeys
    from govern.crypto.keyring import Keyring

    # The instance folder and the key file come first, so the app then starts with its keyring:
    # a first start is healthy, and warns of nothing.
    settings = _settings()
    instance = settings["INSTANCE_PATH"]
    instance.mkdir(parents=True, exist_ok=True)
    os.chmod(instance, 0o700)
    key_file = settings["VAULT_KEY_FILE"]
    if not settings["VAULT_KEYRING_JSON"] and not key_file.exists():
        Keyring.generate().save(key_file)
        click.echo(f"Created the vault key file {key_file} (mode 0600). Back it up apart from the database.")
    audit_key_file = settings["AUDIT_KEY_FILE"]
    if not settings["AUDIT_KEYS_JSON"] and not audit_key_file.exists():
        AuditKeys.generate().save(audit_key_file)
        click.echo(f"Created the audit key file {audit_key_file} (mode 0600). Back it up apart from the database.")
    with ctx.ensure_object(ScriptInfo).load_app().app_context():
        _init_database(admin_email)


def _init_database(admin_email: str) -> None:
    from sqlalchemy import func, select

    from govern.auth.models import User
    from govern.auth.users import bootstrap_admin
    from govern.db import database
    from govern.schema import upgrade

    upgrade(database(current_app).url)
    session = _db_session()
    if (session.scalar(select(func.count()).select_from(User)) or 0) == 0:
        _, token, _ = bootstrap_admin(session, current_app.extensions["govern.auth"], email=admin_email)
        session.commit()
        _print_setup(admin_email, token)
    else:
        click.echo("govern is initialised; users exist already.")


def _print_setup(email: str, token: str) -> None:
    base = current_app.config["BASE_URL"]
    hours = int(current_app.extensions["govern.auth"].setup_token_ttl.total_seconds() // 3600)
    click.echo("")
    click.echo(f"First sign-in for {email}: open {base}/setup and enter this one-time secret")
    click.echo(f"(shown once, valid for {hours} hours):")
    click.echo("")
    click.echo(f"    {token}")
    click.echo("")
    click.echo(f"or open {base}/setup#token={token}")
    click.echo("You will choose a password and scan a QR code with your authenticator app.")
    click.echo("")


# --- db ------------------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: the latest)."""
    from govern.db import database
    from govern.schema import upgrade

    upgrade(database(current_app).url, revision)
    click.echo(f"database upgraded to {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the database to REVISION ("base" empties it; "-1" goes back one step)."""
    from govern.db import database
    from govern.schema import downgrade

    downgrade(database(current_app).url, revision)
    click.echo(f"database downgraded to {revision}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Show the migration the database is at, and the latest one."""
    from govern.db import database
    from govern.schema import current_revision, head_revision

    current, head = current_revision(database(current_app).engine), head_revision()
    click.echo(f"current: {current or '(empty)'}")
    click.echo(f"latest:  {head}")
    if current != head:
        click.echo("run `govern db upgrade` to bring the database up to date")
        sys.exit(1)


# --- users ---------------------------------------------------------------------------------------


@cli.group("users")
def users_group() -> None:
    """App users."""


@users_group.command("create-admin")
@click.argument("email")
@with_appcontext
def create_admin(email: str) -> None:
    """Create an admin (bootstrap), or recover an existing admin's access (new password and authenticator)."""
    from govern.auth.users import bootstrap_admin
    from govern.db import database
    from govern.errors import GovernError
    from govern.schema import ensure_current

    ensure_current(database(current_app).engine)
    session = _db_session()
    try:
        _, token, created = bootstrap_admin(session, current_app.extensions["govern.auth"], email=email)
    except GovernError as exc:
        raise click.ClickException(exc.message) from None
    session.commit()
    click.echo("Admin created." if created else "Admin recovered: password and authenticator cleared, every session ended.")
    _print_setup(email.strip().lower(), token)


# --- audit ---------------------------------------------------------------------------------------


#: The audit trail's shipping commands, in `govern audit` next to `verify`.
AUDIT_COMMANDS = {
    "ship": ("govern.shipping.cli:ship",
             "Send the audit trail to every sink from its cursor (once, or --loop); safe to kill and rerun."),
    "sinks": ("govern.shipping.cli:sinks", "The audit sinks (syslog, HTTPS): list, add, pause, resume, remove."),
}


@cli.group("audit", cls=LazyGroup, lazy_subcommands=AUDIT_COMMANDS)
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@click.option("--against", "against", type=click.Path(dir_okay=False, path_type=Path),
              help="Also compare with an exported copy (JSON lines as a sink received them, or a syslog file "
                   "whose messages are govern's JSON): every event there must be in the database, unchanged.")
@with_appcontext
def audit_verify(against: Path | None) -> None:
    """Check the whole chain in constant memory (HMACs with the audit keys) and the signed checkpoints;
    exit 1 at the first broken link, naming the first event after the last good checkpoint."""
    from govern.audit.services import count_events, verify_chain

    session = _db_session()
    keys = current_app.extensions.get("govern.audit_keys")
    total = count_events(session)
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="verifying audit chain", file=sys.stderr) as bar:
            result = verify_chain(session, keys=keys, progress=bar.update)
    else:
        result = verify_chain(session, keys=keys)
    if not result.ok:
        click.echo(f"audit chain BROKEN at event {result.broken_at}: {result.problem}", err=True)
        click.echo(f"{result.checked} events before it verified", err=True)
        sys.exit(1)
    keyed = f", keyed from event {result.keyed_from}" if result.keyed_from else ""
    checkpoints = (f"; {result.checkpoints_checked} signed checkpoints hold (the newest at event "
                   f"{result.last_good_checkpoint})" if result.checkpoints_checked else "; no checkpoint yet")
    click.echo(f"audit chain intact: {result.checked} events verified{keyed}{checkpoints}")
    if against is not None:
        from govern.shipping.export import compare_with_export

        comparison = compare_with_export(session, against)
        if not comparison.ok:
            click.echo(f"the database DIFFERS from {against}: {comparison.problem}", err=True)
            sys.exit(1)
        click.echo(f"matches {against}: {comparison.matched} exported events found unchanged in the database"
                   + (f" ({comparison.skipped} lines without an event skipped)" if comparison.skipped else ""))


@audit_group.group("keys")
def audit_keys_group() -> None:
    """The audit trail's keys (HMAC chain keys, checkpoint signing keys), kept outside the database."""


@audit_keys_group.command("init", with_appcontext=False)
def audit_keys_init() -> None:
    """Create the audit key file (mode 0600) if there is none."""
    from govern.crypto.auditkeys import AuditKeys

    key_file = _settings()["AUDIT_KEY_FILE"]
    if key_file.exists():
        raise click.ClickException(f"{key_file} exists already; govern never overwrites a key file")
    AuditKeys.generate().save(key_file)
    click.echo(f"created {key_file} (mode 0600); back it up apart from the database")


@audit_keys_group.command("rotate")
@with_appcontext
def audit_keys_rotate() -> None:
    """Add a new primary HMAC key and signing key (older ones stay, to verify what they covered); restart govern."""
    from govern import audit
    from govern.crypto.auditkeys import AuditKeys

    if current_app.config["AUDIT_KEYS_JSON"]:
        raise click.ClickException("the audit keys come from GOVERN_AUDIT_KEYS: rotate them where that variable is set")
    key_file = current_app.config["AUDIT_KEY_FILE"]
    old: AuditKeys = current_app.extensions["govern.audit_keys"]
    new = old.rotated()
    session = _db_session()
    # Recorded with the new key: the rotation is itself the first link the new key makes.
    audit.record(session, "audit.keys_rotated", target_type="audit_key", target_id=new.hmac_primary,
                 details={"previous_key": old.hmac_primary, "key": new.hmac_primary,
                          "signing_key": new.signing_primary}, key=new.chain_key())
    new.save(key_file)
    session.commit()
    current_app.extensions["govern.audit_keys"] = new
    click.echo(f"audit keys rotated: chain key {new.hmac_primary}, signing key {new.signing_primary} "
               f"(written to {key_file}); restart govern's processes so that they chain with the new key")


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Sign the chain head now (the jobs do it on every run when the head moved)."""
    from govern.audit.services import record_keying, write_checkpoint

    session = _db_session()
    record_keying(session, current_app.extensions["govern.audit_keys"])
    checkpoint = write_checkpoint(session, current_app.extensions["govern.audit_keys"])
    session.commit()
    click.echo(f"checkpoint signed at event {checkpoint.event_id}" if checkpoint else
               "no new events since the last checkpoint")


# --- keys ----------------------------------------------------------------------------------------


@cli.group("sso", cls=LazyGroup, lazy_subcommands=SSO_COMMANDS)
def sso_group() -> None:
    """Single sign-on: identity providers and who must use them."""


@cli.group("keys", cls=LazyGroup, lazy_subcommands=KEY_COMMANDS)
def keys_group() -> None:
    """The vault keyring (key-encryption keys, kept outside the database)."""


@keys_group.command("init", with_appcontext=False)
def keys_init() -> None:
    """Create the vault key file (mode 0600) if there is none."""
    from govern.crypto.keyring import Keyring

    key_file = _settings()["VAULT_KEY_FILE"]  # no app: it would report the missing file as sealed
    if key_file.exists():
        raise click.ClickException(f"{key_file} exists already; govern never overwrites a key file")
    Keyring.generate().save(key_file)
    click.echo(f"created {key_file} (mode 0600); back it up apart from the database")


def main() -> None:
    """Console entry point: configuration problems are one line and a non-zero exit."""
    try:
        cli.main(prog_name="govern")
    except Exception as exc:
        # Both modules are loaded by the time one of their errors is raised; importing them up
        # front would make every `--help` pay for the configuration and the database stack.
        from govern.config import ConfigError
        from govern.schema import SchemaNotCurrentError

        if not isinstance(exc, ConfigError | SchemaNotCurrentError):
            raise
        click.echo(f"govern: {exc}", err=True)
        sys.exit(2)
