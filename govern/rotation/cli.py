"""`govern rotation` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask import current_app, g
from flask.cli import with_appcontext

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@click.group("rotation")
def group() -> None:
    """Credential rotation: what is due, and opening the tasks."""


def _check_schema(session: Session) -> None:
    # Through the session's own connection (not a side connection), as `govern jobs run` does.
    from alembic.runtime.migration import MigrationContext

    from govern.schema import SchemaNotCurrentError, head_revision

    current = MigrationContext.configure(session.connection()).get_current_revision()
    if current != head_revision():
        raise SchemaNotCurrentError(f"the database is at migration {current or '(empty)'} but govern needs "
                                    f"{head_revision()}: run `govern db upgrade`")


@group.command("status")
@with_appcontext
def status() -> None:
    """Due and overdue credentials per platform, and the number of live rotation tasks."""
    from govern.db import database
    from govern.rotation import dashboard, schedules

    with database(current_app).session_scope() as session:
        _check_schema(session)
        rows = schedules.all_schedules(session)
        queue = dashboard.task_queue(session, per_page=1)
        for count in dashboard.counts_by_platform(rows):
            click.echo(f"{count.label}: {count.overdue} overdue, {count.due} due, {count.rotate_now} rotate now, {count.total} credentials")
        click.echo(f"{sum(1 for r in rows if r.state == 'overdue')} overdue, {sum(1 for r in rows if r.state == 'due')} due, "
                   f"{queue.total} live rotation task(s)")


@group.command("schedule")
@with_appcontext
def schedule() -> None:
    """Open a rotation task for every due or overdue credential (safe to repeat; `govern jobs run` does it too)."""
    from govern.db import database
    from govern.rotation import schedules

    g.audit_actor_label = "jobs"
    with database(current_app).session_scope() as session:
        _check_schema(session)
        result = schedules.schedule_due(session)
        session.commit()
    click.echo(f"opened {result['opened']} rotation task(s); {result['already_open']} already open")
