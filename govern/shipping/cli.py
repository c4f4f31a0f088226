"""`govern audit ship` and `govern audit sinks`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import click
from flask import current_app, g
from flask.cli import with_appcontext


def _box() -> Any:
    from govern.shipping.sinks import secret_box

    return secret_box([current_app.config["SECRET_KEY"], *current_app.config["SECRET_KEY_FALLBACKS"]])


def _session() -> Any:
    from govern.db import get_session

    g.audit_actor_label = "cli"
    return get_session()


@click.command("ship")
@click.option("--loop", "loop_interval", metavar="INTERVAL", default=None,
              help="Ship again every INTERVAL (e.g. 5s, 1m) until SIGTERM or Ctrl-C.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--nice", "niceness", default=10, show_default=True, type=click.IntRange(0, 19),
              help="With --loop: run at this lower CPU priority, so shipping a backlog never slows the pages.")
@with_appcontext
def ship(loop_interval: str | None, batch_size: int, niceness: int) -> None:
    """Send the audit trail to every sink from its cursor (once, or --loop); safe to kill and rerun."""
    from govern.jobs.services import parse_interval, run_loop
    from govern.shipping.shipper import ship_all

    session = _session()
    keys = current_app.extensions.get("govern.audit_keys")
    stop = threading.Event()

    def once() -> None:
        # Once: until caught up. In a loop: at most 200 batches a pass, so a big backlog does not starve the rest.
        limit = None if loop_interval is None else 200
        for result in ship_all(session, box=_box(), keys=keys, should_stop=stop.is_set, batch_size=batch_size,
                               max_batches=limit):
            state = result.error or result.skipped or "ok"
            click.echo(f"{result.sink}: {result.events} events, {result.checkpoints} checkpoints "
                       f"in {result.batches} batches ({state})", err=bool(result.error))

    if loop_interval is None:
        once()
        return
    try:
        seconds = parse_interval(loop_interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--loop") from None
    os.nice(niceness)  # a background shipper yields the CPU to the web workers

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_loop(once, seconds, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group("sinks")
def sinks() -> None:
    """The audit sinks (syslog, HTTPS): list, add, pause, resume, remove."""


@sinks.command("list")
@with_appcontext
def list_sinks() -> None:
    """Every sink with its destination, cursor, lag and last error."""
    from govern.shipping.sinks import destination, lags

    rows = lags(_session())
    if not rows:
        click.echo("no audit sink: add one with `govern audit sinks add-syslog` or `add-https`")
    for lag in rows:
        sink = lag.sink
        state = "on" if sink.enabled else "paused"
        click.echo(f"{sink.id:>3} {sink.name:<20} {state:<6} {destination(sink):<40} cursor {sink.cursor}, "
                   f"{lag.events} behind ({lag.seconds} s)" + (f"; last error: {sink.last_error}" if sink.last_error else ""))


def _create(data: Any) -> None:
    from govern.errors import InvalidError
    from govern.shipping.sinks import create_sink

    session = _session()
    try:
        sink, secret = create_sink(session, actor=None, data=data, box=_box(),
                                   allow_plain_loopback=not current_app.config["IS_PRODUCTION"])
    except InvalidError as exc:
        details = "; ".join(f"{field}: {message}" for field, message in exc.reasons.items())
        click.echo(f"error: {exc.message} {details}", err=True)
        sys.exit(1)
    session.commit()
    click.echo(f"added sink {sink.id} ({sink.name}); it receives every event after {sink.cursor}")
    if secret:
        click.echo(f"signing secret (shown once; the receiver checks webhook-signature with it): {secret}")


@sinks.command("add-syslog")
@click.argument("name")
@click.option("--host", required=True)
@click.option("--port", required=True, type=int)
@click.option("--tls", is_flag=True, help="Syslog over TLS (RFC 5425); the certificate is checked.")
@click.option("--ca-file", default="", help="PEM file of the CA that signed the receiver's certificate.")
@click.option("--format", "line_format", type=click.Choice(["rfc5424", "cef"]), default="rfc5424", show_default=True)
@with_appcontext
def add_syslog(name: str, host: str, port: int, tls: bool, ca_file: str, line_format: str) -> None:
    """Add a syslog sink (RFC 5424 over TCP, octet-counted)."""
    from govern.shipping.sinks import SinkInput

    _create(SinkInput(name=name, kind="syslog", host=host, port=port, tls=tls, ca_file=ca_file, line_format=line_format))


@sinks.command("add-https")
@click.argument("name")
@click.option("--url", required=True)
@click.option("--ca-file", default="", help="PEM file of the CA that signed the receiver's certificate.")
@click.option("--unsigned", is_flag=True, help="Send without the webhook-signature header.")
@with_appcontext
def add_https(name: str, url: str, ca_file: str, unsigned: bool) -> None:
    """Add an HTTPS sink (POSTs batches of OCSF-shaped JSON, signed as Standard Webhooks)."""
    from govern.shipping.sinks import SinkInput

    _create(SinkInput(name=name, kind="https", url=url, ca_file=ca_file, sign=not unsigned))


def _toggle(sink_id: int, enabled: bool) -> None:
    from govern.errors import NotFoundError
    from govern.shipping.sinks import set_enabled

    session = _session()
    try:
        set_enabled(session, actor=None, sink_id=sink_id, enabled=enabled)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from None
    session.commit()
    click.echo(f"sink {sink_id} {'resumed' if enabled else 'paused'}")


@sinks.command("pause")
@click.argument("sink_id", type=int)
@with_appcontext
def pause(sink_id: int) -> None:
    """Stop shipping to a sink (its cursor stays: resuming sends what it missed)."""
    _toggle(sink_id, False)


@sinks.command("resume")
@click.argument("sink_id", type=int)
@with_appcontext
def resume(sink_id: int) -> None:
    """Ship to a paused sink again, from its cursor."""
    _toggle(sink_id, True)


@sinks.command("remove")
@click.argument("sink_id", type=int)
@with_appcontext
def remove(sink_id: int) -> None:
    """Remove a sink."""
    from govern.errors import NotFoundError
    from govern.shipping.sinks import delete_sink

    session = _session()
    try:
        delete_sink(session, actor=None, sink_id=sink_id)
    except NotFoundError as exc:
        raise click.ClickException(exc.message) from None
    session.commit()
    click.echo(f"sink {sink_id} removed")
