"""`govern connectors` commands: sync now, and the drift report."""

from __future__ import annotations

import click
from flask import current_app, g
from flask.cli import with_appcontext


@click.group("connectors")
def group() -> None:
    """Platform connectors (Meta, LinkedIn, TikTok): sync members and report drift."""


@group.command("sync")
@click.argument("account", required=False)
@with_appcontext
def sync_command(account: str | None) -> None:
    """Sync every connected account, or one ACCOUNT (id or handle); continues a run that died."""
    from sqlalchemy import select

    from govern.accounts.models import Account
    from govern.connectors import sync
    from govern.connectors.connections import Settings
    from govern.db import database
    from govern.schema import ensure_current

    db = database(current_app)
    ensure_current(db.engine)
    g.audit_actor_label = "cli"
    settings = Settings.from_config(current_app.config, current_app.extensions.get("govern.keyring"))
    with db.session_scope() as session:
        account_id = None
        if account:
            row = session.get(Account, int(account)) if account.isdigit() else \
                session.scalar(select(Account).where(Account.handle == account.lstrip("@").lower()))
            if row is None:
                raise click.ClickException(f"No such account: {account}")
            account_id = row.id
        try:
            run = sync.run_sync(session, actor=None, settings=settings, trigger="cli", account_id=account_id,
                                checkpoint=session.commit)
        except sync.SyncBusy as exc:
            raise click.ClickException(str(exc)) from None
        progress = run.progress
    click.echo(f"sync run #{run.id}: {run.status}; {len(progress['done'])} account(s) read, "
               f"{len(progress['failed'])} failed, {run.requests} request(s)")
    for account_key, error in progress["failed"].items():
        click.echo(f"account #{account_key}: {error}", err=True)
    if progress["failed"]:
        raise SystemExit(1)


@group.command("drift")
@with_appcontext
def drift_command() -> None:
    """List every drift item (unmanaged access, stale records, role mismatches); exit 1 if any."""
    from govern.connectors.drift import company_drift
    from govern.db import database

    with database(current_app).session_scope() as session:
        items = company_drift(session)
    for item in items:
        click.echo(f"[{item.severity}] {item.account_name}: {item.kind_label}: {item.sentence}")
    click.echo(f"{len(items)} drift item(s)")
    if items:
        raise SystemExit(1)


@group.command("members")
@click.argument("account")
@click.option("--at", "at", default=None, help="A day (2026-03-03: its end, in UTC) or a moment with a time zone.")
@with_appcontext
def members_command(account: str, at: str | None) -> None:
    """Who held a role on ACCOUNT (id or handle) on the platform, now or --at a past day or moment."""
    from datetime import UTC, date, datetime, time, timedelta

    from sqlalchemy import select

    from govern.accounts.models import Account
    from govern.connectors.history import members_at
    from govern.db import database

    moment = None
    if at:
        try:
            moment = (datetime.combine(date.fromisoformat(at) + timedelta(days=1), time.min, tzinfo=UTC)
                      - timedelta(microseconds=1)) if len(at) == 10 else datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter("give a day (2026-03-03) or a moment with a time zone", param_hint="--at") from None
        if moment.tzinfo is None:
            raise click.BadParameter("a moment needs a time zone (2026-03-03T17:00:00Z)", param_hint="--at")
    with database(current_app).session_scope() as session:
        row = session.get(Account, int(account)) if account.isdigit() else \
            session.scalar(select(Account).where(Account.handle == account.lstrip("@").lower()))
        if row is None:
            raise click.ClickException(f"No such account: {account}")
        found = members_at(session, row, moment)
        if found.source is None:
            click.echo(f"{row.display_name}: nothing was known of its members by {found.at.isoformat(timespec='seconds')}")
            return
        click.echo(f"{row.display_name}, as the {found.source} first seen {found.seen_from:%Y-%m-%d %H:%M} UTC "
                   f"(still seen {found.seen_until:%Y-%m-%d %H:%M} UTC):")
        for member in found.members:
            who = member["person_name"] or f"{member['name']} (not known to govern)"
            click.echo(f"  {who} [{member['id']}]: {', '.join(member['roles'])}")
