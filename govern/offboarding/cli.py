"""`govern offboarding` commands."""

from __future__ import annotations

import click
from flask import current_app, g
from flask.cli import with_appcontext


@click.group("offboarding")
def group() -> None:
    """Offboardings of people who leave."""


@group.command("run-due")
@with_appcontext
def run_due() -> None:
    """Start every scheduled offboarding whose time has come (safe to run repeatedly, e.g. from cron)."""
    from govern.db import database
    from govern.offboarding.start import start_due_offboardings
    from govern.schema import ensure_current

    ensure_current(database(current_app).engine)
    g.audit_actor_label = "jobs"
    with database(current_app).session_scope() as session:
        result = start_due_offboardings(session)
        session.commit()
    click.echo(f"started {result['started']} offboarding(s); closed {result['synced']} item(s) confirmed elsewhere")
    for offboarding_id, reason in result["failed"]:
        click.echo(f"offboarding #{offboarding_id} not started: {reason}", err=True)
    if result["failed"]:
        raise SystemExit(1)


@click.command("check")
@with_appcontext
def check_command() -> None:
    """Check the leaver invariants (no leaver keeps access); list every violation, exit 1 if any."""
    from govern.db import database
    from govern.offboarding.invariants import CHECKS, find_violations

    with database(current_app).session_scope() as session:
        violations = find_violations(session)
    for violation in violations:
        click.echo(violation.line())
    if violations:
        click.echo(f"{len(violations)} violation(s) of the leaver invariants; finish (or start) each person's "
                   "offboarding.", err=True)
        raise SystemExit(1)
    click.echo(f"leaver invariants hold: {len(CHECKS)} checks, no violation")
