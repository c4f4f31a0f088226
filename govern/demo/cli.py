"""`govern demo` commands."""

from __future__ import annotations

import click
from flask import current_app, g
from flask.cli import with_appcontext


@click.group("demo")
def group() -> None:
    """Demo commands."""


@group.command("seed")
@with_appcontext
def seed() -> None:
    """Fill a fresh instance with a realistic small company (refused once accounts exist)."""
    from govern.db import database
    from govern.demo.seed import seed_demo
    from govern.errors import GovernError
    from govern.schema import ensure_current

    ensure_current(database(current_app).engine)
    g.audit_actor_label = "demo"
    with database(current_app).session_scope() as session:
        try:
            summary = seed_demo(session, current_app.extensions["govern.auth"], current_app.extensions.get("govern.keyring"))
        except GovernError as exc:
            raise click.ClickException(exc.message) from None
        session.commit()

    grants = summary.grants
    click.echo("The demo company Northpeak Outdoor is ready:")
    click.echo(f"  {summary.people} people in {len(summary.departments)} departments ({', '.join(summary.departments)})")
    click.echo(f"  {summary.accounts} accounts on {len(summary.platforms)} platforms ({', '.join(summary.platforms)})")
    click.echo(f"  policies: {', '.join(summary.policies)}; {summary.acceptances} acceptances")
    click.echo(f"  {sum(grants.values())} grants: {grants.get('active', 0)} active ({summary.time_bound} time-bound), "
               f"{grants.get('requested', 0)} open request, {grants.get('revoked', 0)} revoked with "
               f"{summary.open_removals} platform removals to confirm")
    click.echo(f"  owner and admin grants approved by {summary.approver}")
    click.echo(f"  access review \"{summary.review}\": {summary.review_items} items, {summary.review_open} open")
    if summary.secrets is None:
        click.echo("  no credentials: the vault is sealed (run `govern keys init`, restart, and seed a fresh instance "
                   "to see vaulted credentials and rotation work)")
    else:
        tasks = ", ".join(f"{count} {reason}" for reason, count in sorted(summary.rotation.items()))
        click.echo(f"  {summary.secrets} credentials vaulted with fake DEMO-ONLY values; open rotation tasks: {tasks}")
        click.echo(f"  locked down: {summary.incident}")
    click.echo(f"  {len(summary.logins)} logins:")
    for email, roles in summary.logins:
        click.echo(f"    {email:<40} {', '.join(roles) or 'staff'}")
    click.echo("Their setup secrets are not shown: an admin issues one from Users > the user > Reset second factor.")
    if summary.new_admin:
        click.echo(f"There was no admin, so {summary.new_admin} is one now; get its setup secret with")
        click.echo(f"    govern users create-admin {summary.new_admin}")
