"""`govern grants` commands."""

from __future__ import annotations

import click
from flask import current_app, g
from flask.cli import with_appcontext


@click.group("grants")
def group() -> None:
    """Grants of account roles."""


@group.command("expire")
@with_appcontext
def expire() -> None:
    """End every time-bound grant whose end has come (safe to run repeatedly, e.g. from cron)."""
    from govern.db import database
    from govern.grants.services import expire_grants
    from govern.schema import ensure_current

    ensure_current(database(current_app).engine)
    g.audit_actor_label = "jobs"
    with database(current_app).session_scope() as session:
        result = expire_grants(session)
        session.commit()
    click.echo(f"expired {result['expired']} grant(s); lapsed {result['requests_lapsed']} request(s); "
               f"kept {result['kept_last_admin']} last admin(s) active")
