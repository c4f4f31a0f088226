"""Shipping: each sink gets what is new after its cursor, in order, at least once.

No transaction is held while a batch travels: the batch is read, the read ends, the batch is sent,
and only then is the cursor moved, with a compare-and-set on the old value (two shippers never
both move it). A crash between the send and the move resends that batch: the receiver sees those
events twice, with the same ids, and nothing is lost. A failing sink backs off (5 s doubling, at
most 10 min) and keeps its cursor; a user's request never waits for any of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govern import audit, db_tuning, failpoints
from govern.activity import describe
from govern.audit.models import AuditCheckpoint, AuditEvent
from govern.auth.users import active_users_with_roles
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.secretbox import SecretBox
from govern.db import rowcount, utcnow
from govern.notifications import services as notifications
from govern.shipping.formats import checkpoint_record, event_record
from govern.shipping.models import AuditSink
from govern.shipping.sinks import lags, sink_secret
from govern.shipping.transports import HttpsTransport, ShipError, SyslogTransport, Transport

log = logging.getLogger("govern.shipping")

BATCH = 500
MAX_BACKOFF = timedelta(minutes=10)
#: A sink further behind than this (its oldest unshipped event) makes the admins be told, once.
DEFAULT_MAX_LAG = timedelta(minutes=30)


def backoff(failures: int) -> timedelta:
    """5 s after the first failure, doubling, at most 10 minutes."""
    return min(timedelta(seconds=5 * 2 ** max(failures - 1, 0)), MAX_BACKOFF)


def open_transport(sink: AuditSink, box: SecretBox) -> Transport:
    """The transport a sink's settings describe."""
    settings = sink.settings
    if sink.kind == "syslog":
        return SyslogTransport(settings["host"], int(settings["port"]), tls=bool(settings.get("tls")),
                               ca_file=settings.get("ca_file"), line_format=sink.format)
    return HttpsTransport(settings["url"], ca_file=settings.get("ca_file"), secret=sink_secret(sink, box))


@dataclass
class ShipResult:
    """What one pass over one sink did."""

    sink: str
    events: int = 0
    checkpoints: int = 0
    batches: int = 0
    error: str | None = None
    skipped: str | None = None
    duplicates_possible: bool = False


def _read_batch(session: Session, cursor: int, checkpoint_cursor: int, size: int,
                keys: AuditKeys | None) -> tuple[list[dict[str, Any]], int, int]:
    events = session.scalars(select(AuditEvent).where(AuditEvent.id > cursor).order_by(AuditEvent.id).limit(size)).all()
    sentences = describe(session, events)
    records = [event_record(event, sentences[event.id].text if event.id in sentences else None) for event in events]
    last_event = events[-1].id if events else cursor
    # A checkpoint goes out once the events it covers are out: the receiver can check it at once.
    checkpoints = session.scalars(
        select(AuditCheckpoint).where(AuditCheckpoint.id > checkpoint_cursor, AuditCheckpoint.event_id <= last_event)
        .order_by(AuditCheckpoint.id)
    ).all()
    records += [checkpoint_record(checkpoint, keys) for checkpoint in checkpoints]
    return records, last_event, checkpoints[-1].id if checkpoints else checkpoint_cursor


def ship_sink(session: Session, sink_id: int, *, box: SecretBox, keys: AuditKeys | None, now: datetime | None = None,
              batch_size: int = BATCH, max_batches: int | None = 200, should_stop: Callable[[], bool] = lambda: False,
              transport: Transport | None = None) -> ShipResult:
    """Send one sink what is new, batch by batch, committing its cursor after each acknowledged batch."""
    now = now or utcnow()
    sink = session.get(AuditSink, sink_id)
    if sink is None:
        return ShipResult(sink=str(sink_id), skipped="deleted")
    result = ShipResult(sink=sink.name)
    if not sink.enabled:
        result.skipped = "disabled"
        return result
    if sink.next_attempt_at is not None and sink.next_attempt_at > now:
        result.skipped = "backing off"
        return result
    cursor, checkpoint_cursor = sink.cursor, sink.checkpoint_cursor
    failures = sink.failures
    session.commit()  # the batches are read in short transactions of their own, none held while sending
    own_transport = transport is None
    try:
        channel = transport or open_transport(sink, box)
    except ShipError as exc:
        _record_failure(session, sink_id, failures, str(exc), now)
        result.error = str(exc)
        return result
    try:
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            if should_stop():
                break
            with db_tuning.reading():  # no write lock while a thousand events are read and shaped
                records, last_event, last_checkpoint = _read_batch(session, cursor, checkpoint_cursor, batch_size, keys)
                session.commit()
            if not records:
                break
            try:
                channel.send(records)
            except ShipError as exc:
                _record_failure(session, sink_id, failures, str(exc), now)
                result.error = str(exc)
                return result
            result.duplicates_possible = True  # sent, not yet recorded: a crash here resends the batch
            failpoints.hit("shipping.after_send", sink=sink_id, last_event=last_event)
            moved = session.execute(
                update(AuditSink).where(AuditSink.id == sink_id, AuditSink.cursor == cursor,
                                        AuditSink.checkpoint_cursor == checkpoint_cursor)
                .values(cursor=last_event, checkpoint_cursor=last_checkpoint, failures=0, next_attempt_at=None,
                        last_success_at=utcnow(), last_error=None)
            )
            session.commit()
            result.duplicates_possible = False
            if rowcount(moved) == 0:
                result.skipped = "another shipper moved the cursor"
                break
            result.events += sum(1 for record in records if record["type"] == "event")
            result.checkpoints += sum(1 for record in records if record["type"] == "checkpoint")
            result.batches += 1
            cursor, checkpoint_cursor, failures = last_event, last_checkpoint, 0
            if len(records) < batch_size:
                break
    finally:
        if own_transport:
            channel.close()
    return result


def _record_failure(session: Session, sink_id: int, failures: int, error: str, now: datetime) -> None:
    session.rollback()
    session.execute(update(AuditSink).where(AuditSink.id == sink_id).values(
        failures=failures + 1, last_error=error[:1000], last_error_at=now,
        next_attempt_at=now + backoff(failures + 1)))
    session.commit()
    log.warning("audit sink %s: %s (attempt %d)", sink_id, error, failures + 1)


def ship_all(session: Session, *, box: SecretBox, keys: AuditKeys | None, now: datetime | None = None,
             should_stop: Callable[[], bool] = lambda: False, batch_size: int = BATCH,
             max_batches: int | None = 200) -> list[ShipResult]:
    """One pass over every enabled sink."""
    sink_ids = session.scalars(select(AuditSink.id).where(AuditSink.enabled.is_(True)).order_by(AuditSink.id)).all()
    session.commit()
    return [ship_sink(session, sink_id, box=box, keys=keys, now=now, should_stop=should_stop, batch_size=batch_size,
                      max_batches=max_batches) for sink_id in sink_ids]


@dataclass
class LagReport:
    """Sinks whose lag passed the threshold (the admins were told now) and those that caught up."""

    alerted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)


def alert_on_lag(session: Session, *, max_lag: timedelta = DEFAULT_MAX_LAG, now: datetime | None = None) -> LagReport:
    """Tell the admins (in the app and by email) about a sink lagging past ``max_lag``, once until it recovers."""
    now = now or utcnow()
    report = LagReport()
    admins: list[Any] | None = None
    for lag in lags(session, now=now):
        sink = lag.sink
        if not sink.enabled:
            continue
        if lag.seconds > max_lag.total_seconds() and sink.lag_alerted_at is None:
            admins = admins if admins is not None else active_users_with_roles(session, ["admin"])
            minutes = lag.seconds // 60
            title = f"The audit sink {sink.name} is {lag.events} events ({minutes} min) behind"
            body = (f"govern could not deliver the audit trail to {sink.name} for {minutes} minutes: "
                    f"{sink.last_error or 'no error recorded; is the jobs runner running?'} "
                    "Nothing is lost: the events wait and are sent in order once the receiver answers.")
            notifications.notify(session, kind="audit.sink_lagging", title=title, users=admins, link="/jobs",
                                 body=body)
            notifications.email_users(session, users=admins, kind="audit.sink_lagging", subject=title, body=body,
                                      link="/jobs", dedupe_prefix=f"sink-lag:{sink.id}:{now:%Y%m%d%H%M}")
            audit.record(session, "audit.sink_lagging", target_type="audit_sink", target_id=sink.id,
                         details={"name": sink.name, "events_behind": lag.events, "seconds_behind": lag.seconds})
            sink.lag_alerted_at = now
            report.alerted.append(sink.name)
        elif lag.events == 0 and sink.lag_alerted_at is not None:
            sink.lag_alerted_at = None
            report.recovered.append(sink.name)
    session.flush()
    return report


def result_counts(results: list[ShipResult], lag: LagReport | None = None) -> Mapping[str, int]:
    """Counts for the Jobs page."""
    counts = {"sinks": len(results), "events": sum(r.events for r in results),
              "checkpoints": sum(r.checkpoints for r in results), "failed": sum(1 for r in results if r.error),
              "backing_off": sum(1 for r in results if r.skipped == "backing off")}
    if lag is not None:
        counts["lag_alerts"] = len(lag.alerted)
    return counts
