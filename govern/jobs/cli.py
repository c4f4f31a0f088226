"""`govern jobs` commands."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click
from flask import current_app, g
from flask.cli import with_appcontext


@click.group("jobs")
def group() -> None:
    """Time-based work: expiry, reminders, the email outbox."""


def _echo_run(run: Any) -> None:
    for step in run.steps:
        counts = ", ".join(f"{k} {v}" for k, v in step["counts"].items()) or "nothing to do"
        line = f"{step['name']}: {step['outcome']}"
        line += f" ({step['error']})" if step["error"] else f" ({counts})"
        click.echo(line, err=step["outcome"] == "failed")
    click.echo(f"jobs run {run.id} on {run.host}: {run.outcome}")


@group.command("run")
@click.option("--loop", "loop_interval", metavar="INTERVAL", default=None,
              help="Run again every INTERVAL (e.g. 30s, 5m, 1h) until SIGTERM or Ctrl-C; for installs without cron.")
@with_appcontext
def run_command(loop_interval: str | None) -> None:
    """Run every time-based step once (safe to run repeatedly and on several hosts at once)."""
    from alembic.runtime.migration import MigrationContext

    from govern.db import database
    from govern.jobs.services import parse_interval, run_jobs, run_loop
    from govern.schema import SchemaNotCurrentError, head_revision

    db = database(current_app)
    with db.session_scope() as session:  # the app's own connection handling, not a side connection
        current = MigrationContext.configure(session.connection()).get_current_revision()
    if current != head_revision():
        raise SchemaNotCurrentError(f"the database is at migration {current or '(empty)'} but govern needs "
                                    f"{head_revision()}: run `govern db upgrade`")
    g.audit_actor_label = "jobs"
    if loop_interval is None:
        run = run_jobs(db, current_app.config)
        _echo_run(run)
        if run.outcome != "ok":
            sys.exit(1)
        return
    try:
        seconds = parse_interval(loop_interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--loop") from None
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        click.echo(f"received {signal.Signals(signum).name}; stopping after the current step", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runs = run_loop(lambda: _echo_run(run_jobs(db, current_app.config, should_stop=stop.is_set)), seconds, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"stopped after {runs} run(s)")
