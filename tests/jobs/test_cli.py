"""`govern jobs run` through the Flask CLI runner, and `--loop` in a real process stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from govern.crypto.keyring import Keyring
from govern.db import utcnow
from govern.jobs import steps as steps_module
from govern.jobs.cli import group
from govern.jobs.models import JobRun
from govern.jobs.services import Step
from govern.offboarding.models import Offboarding
from govern.rotation.models import RotationTask
from govern.vault.models import SecretVersion
from tests.factories import make_account, make_person, make_user
from tests.support import cli_env

GOVERN = str(Path(sys.executable).parent / "govern")


def test_jobs_run_prints_each_step_and_exits_zero(app, db):
    result = app.test_cli_runner().invoke(group, ["run"])
    assert result.exit_code == 0, result.output
    assert "grants.expire: ok (expired 0, kept_last_admin 0, requests_lapsed 0)" in result.output
    assert "email.send: ok" in result.output and ": ok" in result.output.splitlines()[-1]
    db.expire_all()
    run = db.scalars(select(JobRun)).one()
    assert run.outcome == "ok"


def test_a_sealed_vault_does_not_stop_the_run_and_due_work_still_happens(app, db, kit):
    """No step needs the keyring: with the vault sealed, tasks open, versions purge, offboardings start."""

    from govern.offboarding.scheduling import schedule_offboarding
    from govern.vault.versions import create_secret
    from tests.offboarding.helpers import SETTINGS

    assert app.extensions["govern.keyring"] is None  # sealed
    it = make_user(db, kit, roles=("it",))
    hr = make_user(db, kit, roles=("hr",))
    secret = create_secret(db, actor=it.user, keyring=Keyring.generate(), account=make_account(db), kind="password",
                                 label="Instagram login", value="Sealed-Run-Pw-1!")
    db.flush()
    long_ago = utcnow() - timedelta(days=200)
    db.query(SecretVersion).filter_by(secret_id=secret.id).update({"confirmed_at": long_ago, "created_at": long_ago})
    leaver = make_person(db)
    off = schedule_offboarding(db, actor=hr.user, person=leaver, effective_at=utcnow() + timedelta(minutes=5),
                                           settings=SETTINGS)
    db.execute(Offboarding.__table__.update().where(Offboarding.id == off.id).values(effective_at=utcnow() - timedelta(minutes=1)))
    db.commit()
    result = app.test_cli_runner().invoke(group, ["run"])
    assert result.exit_code == 0, result.output
    assert "rotation.schedule: ok (opened 1, already_open 0)" in result.output
    assert "offboarding.start_due: ok (started 1, failed 0" in result.output
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(RotationTask).where(RotationTask.secret_id == secret.id)) == 1
    assert db.get(Offboarding, off.id).status != "scheduled"  # started (and, with nothing to do, completed)


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


def test_the_loop_stops_cleanly_on_sigterm(tmp_path, committed_database):
    process = subprocess.Popen([GOVERN, "jobs", "run", "--loop", "1s"], env=cli_env(tmp_path, committed_database.url), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        finished = 0
        while finished < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            with committed_database.session_scope() as session:
                finished = session.scalar(select(func.count()).select_from(JobRun).where(JobRun.finished_at.is_not(None))) or 0
        assert finished >= 2, process.stderr.read() if process.poll() is not None else "no runs finished"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "received SIGTERM" in err and "stopped after" in out
    with committed_database.session_scope() as session:
        runs = session.scalars(select(JobRun)).all()
    assert runs and all(r.outcome == "ok" and r.finished_at is not None for r in runs)  # none left half-done
