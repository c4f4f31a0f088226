"""When a secret must rotate: default and own intervals, the schedule's state, and the job that opens
the tasks of what is due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govern.db import utcnow
from govern.errors import ForbiddenError, InvalidError
from govern.rotation.schedules import schedule_due, schedules, set_interval
from govern.rotation.tasks import open_task
from govern.vault.listing import secret_rows
from tests.rotation.conftest import TOTP_SEED, age, all_tasks, count_events, vault_secret


def test_default_intervals_come_from_the_account_for_passwords_and_from_the_kind_otherwise(db, ring, world):
    world.account.rotation_interval_days = 30
    db.commit()
    password = vault_secret(db, ring, world)
    token = vault_secret(db, ring, world, "api_token", "tok-123")
    seed = vault_secret(db, ring, world, "totp", TOTP_SEED)
    codes = vault_secret(db, ring, world, "recovery_codes", "aaaa-1111\nbbbb-2222")
    note = vault_secret(db, ring, world, "note", "a note")
    rows = {r.secret.id: r for r in schedules(db, [password, token, seed, codes, note])}
    assert (rows[password.id].interval_days, rows[password.id].interval_source) == (30, "account")
    assert rows[token.id].interval_days == 180
    assert rows[seed.id].interval_days == 365 and rows[codes.id].interval_days == 365
    assert rows[note.id].interval_days is None and rows[note.id].state == "never"
    assert {r.state for r in rows.values() if r.interval_days} == {"fine"}


@pytest.mark.parametrize(("days_old", "state"), [(0, "fine"), (75, "fine"), (77, "due"), (89, "due"), (90, "overdue"), (400, "overdue")])
def test_state_follows_the_current_versions_age(db, ring, world, days_old, state):
    secret = vault_secret(db, ring, world)
    age(db, secret, days_old)
    assert schedules(db, [secret])[0].state == state


def test_schedules_from_versions_the_caller_read_match_schedules_read_afresh(db, ring, world):
    fresh = vault_secret(db, ring, world)
    old = vault_secret(db, ring, world, "api_token", "tok-9")
    age(db, old, 400)
    open_task(db, actor=world.it.user, secret=old, reason="exposure")
    note = vault_secret(db, ring, world, "note", "a note")
    db.commit()
    secrets = [fresh, old, note]
    known = {row.secret.id: (row.version, row.since) for row in secret_rows(db, secrets)}
    now = utcnow()
    given = schedules(db, secrets, now=now, current=known)
    read = schedules(db, secrets, now=now)
    assert [(r.state, r.version, r.since, r.due_at, r.task and r.task.id) for r in given] == \
        [(r.state, r.version, r.since, r.due_at, r.task and r.task.id) for r in read]
    assert given[1].state == "overdue" and given[1].rotate_now


def test_an_api_token_is_due_by_its_own_expiry_when_that_comes_first(db, ring, world):
    token = vault_secret(db, ring, world, "api_token", "tok-1", token_expires_at=utcnow().date() + timedelta(days=3))
    row = schedules(db, [token])[0]
    assert row.state == "due" and row.due_at.date() == token.token_expires_at
    token.token_expires_at = utcnow().date() - timedelta(days=1)
    db.commit()
    assert schedules(db, [token])[0].state == "overdue"


def test_it_sets_an_interval_per_secret_audited_and_others_may_not(db, ring, world):
    secret = vault_secret(db, ring, world)
    age(db, secret, 40)
    set_interval(db, actor=world.it.user, secret=secret, days=30)
    db.commit()
    row = schedules(db, [secret])[0]
    assert (row.interval_days, row.interval_source, row.state) == (30, "secret", "overdue")
    set_interval(db, actor=world.it.user, secret=secret, days=None)
    assert schedules(db, [secret])[0].state == "never"
    set_interval(db, actor=world.it.user, secret=secret, days=None, inherit=True)
    assert schedules(db, [secret])[0].interval_source == "account"
    assert count_events(db, "rotation.interval_set") == 3
    with pytest.raises(InvalidError):
        set_interval(db, actor=world.it.user, secret=secret, days=0)
    with pytest.raises(ForbiddenError):
        set_interval(db, actor=world.admin.user, secret=secret, days=10)


def test_scheduling_opens_one_task_per_due_secret_and_is_idempotent(db, ring, world):
    fine = vault_secret(db, ring, world, label="fine")
    due = vault_secret(db, ring, world, label="due")
    overdue = vault_secret(db, ring, world, label="overdue")
    age(db, due, 80)
    age(db, overdue, 120)
    assert schedule_due(db) == {"opened": 2, "already_open": 0}
    db.commit()
    assert schedule_due(db) == {"opened": 0, "already_open": 2}
    assert {t.secret_id for t in all_tasks(db)} == {due.id, overdue.id}
    assert not all_tasks(db, fine)
