"""`govern jobs run` through the Flask CLI runner, and `--loop` in a real process stopped by SIGTERM."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from govern.db import Database
from govern.jobs import steps as steps_module
from govern.jobs.cli import group
from govern.jobs.models import JobRun
from govern.jobs.services import Step
from govern.schema import upgrade

GOVERN = str(Path(sys.executable).parent / "govern")


def test_jobs_run_prints_each_step_and_exits_zero(app, db):
    result = app.test_cli_runner().invoke(group, ["run"])
    assert result.exit_code == 0, result.output
    assert "grants.expire: ok (expired 0, kept_last_admin 0, requests_lapsed 0)" in result.output
    assert "email.send: ok" in result.output and ": ok" in result.output.splitlines()[-1]
    db.expire_all()
    run = db.scalars(select(JobRun)).one()
    assert run.outcome == "ok"


def test_a_failing_step_makes_the_exit_code_non_zero(app, db, monkeypatch):
    def broken(session, context):
        raise RuntimeError("nope")

    monkeypatch.setattr(steps_module, "STEPS", [Step("test.broken", "Broken", broken), *steps_module.STEPS])
    result = app.test_cli_runner().invoke(group, ["run"])
    assert result.exit_code == 1
    assert "test.broken: failed (RuntimeError: nope)" in result.output
    assert "grants.expire: ok" in result.output  # the others still ran


def test_a_bad_loop_interval_is_a_clear_usage_error(app, db):
    result = app.test_cli_runner().invoke(group, ["run", "--loop", "soon"])
    assert result.exit_code == 2 and "not an interval" in result.output
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(JobRun)) == 0


@pytest.fixture
def committed_db(scratch_database_url):
    upgrade(scratch_database_url)
    database = Database(scratch_database_url)
    yield database
    database.engine.dispose()


def test_the_loop_stops_cleanly_on_sigterm(tmp_path, committed_db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path / "instance"), "GOVERN_DATABASE_URL": committed_db.url,
                "GOVERN_SECRET_KEY": secrets.token_urlsafe(30)})
    process = subprocess.Popen([GOVERN, "jobs", "run", "--loop", "1s"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        finished = 0
        while finished < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            with committed_db.session_scope() as session:
                finished = session.scalar(select(func.count()).select_from(JobRun).where(JobRun.finished_at.is_not(None))) or 0
        assert finished >= 2, process.stderr.read() if process.poll() is not None else "no runs finished"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "received SIGTERM" in err and "stopped after" in out
    with committed_db.session_scope() as session:
        runs = session.scalars(select(JobRun)).all()
    assert runs and all(r.outcome == "ok" and r.finished_at is not None for r in runs)  # none left half-done
