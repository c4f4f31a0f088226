"""The `govern` command: one root group, a sub-group per area."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from flask import current_app, g
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext

from govern.config import ConfigError


def _create_cli_app() -> Any:
    from govern.app import create_app

    # Commands such as `db upgrade` must run against an out-of-date schema.
    return create_app({"REQUIRE_CURRENT_SCHEMA": False})


@click.group(cls=FlaskGroup, create_app=_create_cli_app, add_default_commands=True, add_version_option=False)
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
    with ctx.ensure_object(ScriptInfo).load_app().app_context():
        _init_database(admin_email)


def _init_database(admin_email: str) -> None:
    from sqlalchemy import func, select

    from govern.auth import services as auth_services
    from govern.auth.models import User
    from govern.db import database
    from govern.schema import upgrade

    upgrade(database(current_app).url)
    session = _db_session()
    if (session.scalar(select(func.count()).select_from(User)) or 0) == 0:
        _, token, _ = auth_services.bootstrap_admin(session, current_app.extensions["govern.auth"], email=admin_email)
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
    from govern.auth import services as auth_services
    from govern.db import database
    from govern.errors import GovernError
    from govern.schema import ensure_current

    ensure_current(database(current_app).engine)
    session = _db_session()
    try:
        _, token, created = auth_services.bootstrap_admin(session, current_app.extensions["govern.auth"], email=email)
    except GovernError as exc:
        raise click.ClickException(exc.message) from None
    session.commit()
    click.echo("Admin created." if created else "Admin recovered: password and authenticator cleared, every session ended.")
    _print_setup(email.strip().lower(), token)


# --- audit ---------------------------------------------------------------------------------------


@cli.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check the whole hash chain in constant memory; exit 1 at the first broken link."""
    from govern.audit.services import count_events, verify_chain

    session = _db_session()
    total = count_events(session)
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="verifying audit chain", file=sys.stderr) as bar:
            result = verify_chain(session, progress=bar.update)
    else:
        result = verify_chain(session)
    if result.ok:
        click.echo(f"audit chain intact: {result.checked} events verified")
        return
    click.echo(f"audit chain BROKEN at event {result.broken_at}: {result.problem}", err=True)
    click.echo(f"{result.checked} events before it verified", err=True)
    sys.exit(1)


# --- keys ----------------------------------------------------------------------------------------


@cli.group("keys")
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


def _register_area_commands() -> None:
    from govern.demo.cli import group as demo_group
    from govern.directory.cli import group as directory_group
    from govern.grants.cli import group as grants_group
    from govern.jobs.cli import group as jobs_group
    from govern.offboarding.cli import check_command
    from govern.offboarding.cli import group as offboarding_group
    from govern.rotation.cli import group as rotation_group
    from govern.vault.cli import KEY_COMMANDS
    from govern.vault.cli import group as vault_group

    for group in (directory_group, grants_group, demo_group, jobs_group, vault_group, rotation_group,
                  offboarding_group):
        cli.add_command(group)
    cli.add_command(check_command)
    for command in KEY_COMMANDS:
        keys_group.add_command(command)


_register_area_commands()


def _register_vault_import() -> None:
    """`govern vault import`, added to the vault group (created here when no other module made it)."""
    from govern.vault.import_cli import import_command

    vault = cli.commands.get("vault")
    if not isinstance(vault, click.Group):
        vault = click.Group("vault", help="The credential vault.")
        cli.add_command(vault)
    vault.add_command(import_command)


_register_vault_import()


def main() -> None:
    """Console entry point: configuration problems are one line and a non-zero exit."""
    from govern.schema import SchemaNotCurrentError

    try:
        cli.main(prog_name="govern")
    except (ConfigError, SchemaNotCurrentError) as exc:
        click.echo(f"govern: {exc}", err=True)
        sys.exit(2)
