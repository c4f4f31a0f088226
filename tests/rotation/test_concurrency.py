"""Two IT people confirm the same rotation at once on PostgreSQL: exactly one wins, the other gets
a clear conflict, and the secret ends with exactly one current version.

On SQLite the write lock serialises transactions, so this runs on PostgreSQL only.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from govern import failpoints
from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.crypto.keyring import Keyring
from govern.errors import ConflictError
from govern.rotation.models import RotationTask
from govern.rotation.tasks import open_task
from govern.rotation.versions import confirm_task, stage_task
from govern.schema import upgrade
from govern.vault.models import SecretVersion
from govern.vault.versions import create_secret
from tests.factories import make_account, make_user
from tests.support import app_config

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pg_app(tmp_path, scratch_database_url, is_postgresql):
    if not is_postgresql:
        pytest.skip("PostgreSQL only: on SQLite the write lock serialises concurrent confirmations")
    upgrade(scratch_database_url)
    ring = Keyring.generate()
    app = create_app(app_config(tmp_path, scratch_database_url, VAULT_KEYRING_JSON=ring.to_json()))
    yield app, ring
    app.extensions["govern.db"].engine.dispose()


def test_two_people_confirming_at_once_exactly_one_wins(pg_app):
    app, ring = pg_app
    database = app.extensions["govern.db"]
    kit = app.extensions["govern.auth"]
    with app.app_context(), database.session_scope() as db:
        first, second = make_user(db, kit, roles=("it",)), make_user(db, kit, roles=("it",))
        account = make_account(db)
        secret = create_secret(db, actor=first.user, keyring=ring, account=account, kind="password",
                                     label="Login", value="Old-Password-1!")
        task = open_task(db, actor=first.user, secret=secret, reason="manual", note="test").task
        stage_task(db, actor=first.user, keyring=ring, task=task, value="New-Password-2!")
        db.commit()
        ids = {"task": task.id, "secret": secret.id, "first": first.id, "second": second.id}

    def hold_until_the_other_waits() -> None:
        # The first confirmer holds the task's row lock until the second is blocked on it.
        if threading.current_thread().name != "first":
            return
        with database.engine.connect() as probe:
            for _ in range(200):
                waiting = probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )).scalar()
                if waiting:
                    return
                time.sleep(0.025)
        raise AssertionError("the second confirmation never waited for the first")

    outcomes: dict[str, str] = {}
    started = threading.Barrier(2)

    def confirm(name: str) -> None:
        from govern.auth.models import User

        with app.app_context(), database.session_scope() as db:
            actor = db.get(User, ids[name])
            row = db.get(RotationTask, ids["task"])
            if name == "second":
                started.wait()
                time.sleep(0.05)  # let the first claim the row first
            else:
                started.wait()
            try:
                confirm_task(db, actor=actor, task=row, ticked=["changed"])
                db.commit()
                outcomes[name] = "won"
            except ConflictError as exc:
                db.rollback()
                outcomes[name] = exc.message

    with failpoints.armed("rotation.confirm.after_vault", hold_until_the_other_waits):
        threads = [threading.Thread(target=confirm, args=(n,), name=n) for n in ("first", "second")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert outcomes["first"] == "won"
    assert "was done by" in outcomes["second"] and "nothing was changed" in outcomes["second"]
    with database.session_scope() as db:
        statuses = dict(db.execute(select(SecretVersion.version, SecretVersion.status)
                                   .where(SecretVersion.secret_id == ids["secret"])).all())
        assert statuses == {1: "retired", 2: "current"}
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "rotation.task_done")) == 1
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "vault.version_confirmed")) == 1


def test_two_triggers_at_once_open_one_task(pg_app):
    app, ring = pg_app
    database = app.extensions["govern.db"]
    kit = app.extensions["govern.auth"]
    with app.app_context(), database.session_scope() as db:
        it = make_user(db, kit, roles=("it",))
        account = make_account(db)
        secret = create_secret(db, actor=it.user, keyring=ring, account=account, kind="password", label="L", value="Pw-123456!")
        db.commit()
        secret_id = secret.id
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def trigger(reason: str) -> None:
        from govern.vault.models import Secret

        try:
            with app.app_context(), database.session_scope() as db:
                row = db.get(Secret, secret_id)
                barrier.wait()
                open_task(db, actor=None, secret=row, reason=reason, note=reason)
                db.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=trigger, args=(r,)) for r in ("scheduled", "exposure")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with database.session_scope() as db:
        tasks = list(db.scalars(select(RotationTask)).unique())
        assert len(tasks) == 1 and sorted(tasks[0].reasons) == ["exposure", "scheduled"] and tasks[0].reason == "exposure"
