"""The jobs runner: every registered step once, each in its own transaction, recorded in a JobRun.

Safe on several hosts at once. On PostgreSQL each step first takes a transaction-scoped advisory
lock named after the step (``pg_try_advisory_xact_lock``); a second run that finds the lock taken
records the step as "skipped" instead of doing the same work twice, and the lock ends with the
step's transaction. On SQLite every write transaction starts with BEGIN IMMEDIATE, which
serialises the runs. Steps are idempotent as well: a step that runs again finds nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from govern import audit
from govern.db import Database, rowcount, utcnow
from govern.jobs.models import JobRun
from govern.paging import Page, read_page

log = logging.getLogger("govern.jobs")

#: Admins see a notice on their home page when no run finished for longer than this.
STALE_AFTER = timedelta(days=1)
#: Job runs are kept this long (a run every 5 minutes is about 26,000 rows in 90 days).
KEEP_RUNS = timedelta(days=90)
MAX_ERROR = 1000


@dataclass(frozen=True)
class JobContext:
    """What a step may use besides its session: the time of the run and the app's settings."""

    now: datetime
    config: Mapping[str, Any]
    should_stop: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class Step:
    """One time-based task: a name, a label for the Jobs page, and a function returning counts."""

    name: str
    label: str
    run: Callable[[Session, JobContext], Mapping[str, int]]
    #: The step commits its session as it goes (e.g. between SMTP sends) and guards itself with
    #: row locks, so the runner takes no step lock for it.
    own_transactions: bool = False


@dataclass
class StepResult:
    """What one step did in one run."""

    name: str
    label: str
    outcome: str  # ok, failed, skipped
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    started_at: str = ""
    finished_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for JobRun.steps_json."""
        return {"name": self.name, "label": self.label, "outcome": self.outcome, "counts": self.counts,
                "error": self.error, "started_at": self.started_at, "finished_at": self.finished_at}


def step_lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a step name."""
    digest = hashlib.sha256(f"govern.jobs:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_step_lock(session: Session, name: str) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: BEGIN IMMEDIATE already serialises writers
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": step_lock_key(name)}))


def describe_error(exc: BaseException) -> str:
    """A one-line description of a step's failure, without SQL parameters (they may hold data)."""
    if isinstance(exc, StatementError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "database error"
        return f"{type(exc).__name__}: {detail}"[:MAX_ERROR]
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def start_run(session: Session, *, host: str | None = None, pid: int | None = None) -> JobRun:
    """Insert the JobRun row of a new run ("running")."""
    run = JobRun(host=(host or socket.gethostname())[:255], pid=os.getpid() if pid is None else pid,
                 outcome="running", steps_json="[]", started_at=utcnow())
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run: JobRun, results: Sequence[StepResult]) -> JobRun:
    """Record the step results and the outcome, with one audit event for the run."""
    run.steps_json = json.dumps([r.as_dict() for r in results])
    run.outcome = "failed" if any(r.outcome == "failed" for r in results) else "ok"
    run.finished_at = utcnow()
    session.flush()
    audit.record(session, "jobs.run", target_type="job_run", target_id=run.id,
                 outcome="success" if run.outcome == "ok" else "failure",
                 details={"host": run.host, "pid": run.pid,
                          "steps": {r.name: r.outcome for r in results},
                          "failed": [r.name for r in results if r.outcome == "failed"]})
    return run


def run_step(database: Database, step: Step, context: JobContext) -> StepResult:
    """Run one step in its own transaction; a failure is caught, rolled back and described."""
    result = StepResult(name=step.name, label=step.label, outcome="ok", started_at=_iso(utcnow()))
    with database.session_scope() as session:
        try:
            if not step.own_transactions and not _try_step_lock(session, step.name):
                session.rollback()
                result.outcome = "skipped"
                result.error = "another run is doing this step right now"
            else:
                if not step.own_transactions and session.get_bind().dialect.name == "postgresql":
                    # The audit head first, as every web request that changes state takes it (govern.app):
                    # one lock order for every writer, so a step and a request cannot deadlock on it.
                    audit.lock_chain_head(session)
                counts = step.run(session, context)
                session.commit()
                result.counts = {k: int(v) for k, v in counts.items()}
        except Exception as exc:  # one failing step must not stop the others
            session.rollback()
            result.outcome = "failed"
            result.error = describe_error(exc)
            log.error("jobs step %s failed: %s", step.name, result.error)
    result.finished_at = _iso(utcnow())
    return result


def run_jobs(database: Database, config: Mapping[str, Any], *, steps: Sequence[Step] | None = None,
             should_stop: Callable[[], bool] = lambda: False, host: str | None = None) -> JobRun:
    """Run every step once, in order, and return the finished JobRun."""
    if steps is None:
        from govern.jobs.steps import STEPS  # noqa: PLC0415 govern.jobs.steps imports this module

        steps = STEPS
    with database.session_scope() as session:
        started = start_run(session, host=host)
        session.commit()
        run_id = started.id
    context = JobContext(now=utcnow(), config=config, should_stop=should_stop)
    results: list[StepResult] = []
    for step in steps:
        if should_stop():
            moment = _iso(utcnow())
            results.append(StepResult(name=step.name, label=step.label, outcome="skipped",
                                      error="the runner was asked to stop", started_at=moment, finished_at=moment))
            continue
        results.append(run_step(database, step, context))
    with database.session_scope() as session:
        run = session.get(JobRun, run_id)
        assert run is not None
        finish_run(session, run, results)
        session.commit()
    return run


def prune_runs(session: Session, *, now: datetime | None = None, keep: timedelta = KEEP_RUNS) -> dict[str, int]:
    """Delete finished runs older than ``keep`` (the audit trail keeps one "jobs.run" event each)."""
    cutoff = (now or utcnow()) - keep
    deleted = rowcount(session.execute(
        delete(JobRun).where(JobRun.finished_at.is_not(None), JobRun.finished_at < cutoff)
        .execution_options(synchronize_session=False)
    )) or 0
    if deleted:
        audit.record(session, "jobs.runs_pruned", details={"count": deleted, "older_than_days": keep.days})
    return {"deleted": deleted}


# --- what the Jobs page and the home page show -------------------------------------------------


def last_finished_run(session: Session) -> JobRun | None:
    """The most recently finished run, if any."""
    return session.scalar(
        select(JobRun).where(JobRun.finished_at.is_not(None)).order_by(JobRun.finished_at.desc(), JobRun.id.desc()).limit(1)
    )


def smtp_missing(run: JobRun | None, configured_here: bool) -> bool:
    """Whether email is waiting for an SMTP server: as the last run saw it, else as this process sees it."""
    if run is None:
        return not configured_here
    return any(s["name"] == "email.send" and "not_configured_waiting" in s["counts"] for s in run.steps)


def list_runs(session: Session, *, page: int = 1, per_page: int = 20) -> Page[JobRun]:
    """A page of runs, newest first, knowing whether a next page follows (one query)."""
    return read_page(session, select(JobRun).order_by(JobRun.id.desc()), page, per_page, scalars=True)


def staleness(session: Session, *, now: datetime | None = None) -> str | None:
    """A sentence for admins when jobs have not run for more than a day (None when all is well)."""
    now = now or utcnow()
    last = last_finished_run(session)
    if last is None:
        return ("Jobs have never run: time-bound grants do not expire and queued emails are not sent until "
                "\u201cgovern jobs run\u201d is scheduled (cron, or --loop).")
    assert last.finished_at is not None
    if now - last.finished_at > STALE_AFTER:
        hours = int((now - last.finished_at).total_seconds() // 3600)
        return f"Jobs last ran {hours} hours ago: check the cron entry or the \u201cgovern jobs run --loop\u201d process."
    return None


# --- the loop -----------------------------------------------------------------------------------

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(raw: str) -> int:
    """Seconds from "30s", "5m", "1h", "1d" or a plain number of seconds; at least 1 second."""
    match = _INTERVAL.match(raw or "")
    if not match:
        raise ValueError(f"not an interval: {raw!r} (use e.g. 30s, 5m, 1h)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 1 or seconds > 7 * 86400:
        raise ValueError(f"the interval must be between 1 second and 7 days, got {raw!r}")
    return seconds


def run_loop(run_once: Callable[[], Any], interval_seconds: float, stop: threading.Event) -> int:
    """Call ``run_once`` every ``interval_seconds`` until ``stop`` is set; returns the number of runs."""
    runs = 0
    while not stop.is_set():
        try:
            run_once()
        except Exception as exc:  # the database may be away for a moment; the next round tries again
            log.error("jobs run failed (%s); trying again in %s s", describe_error(exc), interval_seconds)
        runs += 1
        stop.wait(interval_seconds)
    return runs
