"""A task's new value: generate or paste, stage, confirm (once, all or nothing), roll back, purge."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from govern import failpoints
from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.rotation.schedules import schedules
from govern.rotation.tasks import cancel_task
from govern.rotation.versions import confirm_task, purge_expired_versions, rollback, stage_task
from govern.vault.access import decrypt_version
from govern.vault.models import SecretVersion
from govern.vault.versions import change_value, current_version
from tests.rotation.conftest import (
    NEW_SEED,
    TOTP_SEED,
    all_tasks,
    count_events,
    open_manual_task,
    vault_secret,
    version_statuses,
)


def test_generate_stage_confirm_makes_the_new_value_current_and_retires_the_old(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    generated = stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.commit()
    assert generated and len(generated) >= 12 and task.status == "staged"
    assert version_statuses(db, secret) == {1: "current", 2: "pending"}
    with pytest.raises(InvalidError):
        confirm_task(db, actor=world.it.user, task=task, ticked=[])  # "changed on the platform" not ticked
    db.rollback()
    confirm_task(db, actor=world.it.user, task=task, ticked=["changed", "sessions"])
    db.commit()
    assert version_statuses(db, secret) == {1: "retired", 2: "current"}
    assert task.status == "done" and task.completed_by_id == world.it.id
    payload = decrypt_version(db, actor=world.it.user, keyring=ring, version=current_version(db, secret))
    assert payload["value"] == generated
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.action.like("rotation.%"))))
    assert generated not in "".join(e.details_json for e in events)
    assert json.loads([e for e in events if e.action == "rotation.task_done"][0].details_json)["checklist"] == ["changed", "sessions"]


def test_confirming_twice_gives_a_clear_conflict(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    with pytest.raises(ConflictError, match="Nothing is staged"):
        confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.rollback()
    stage_task(db, actor=world.it.user, keyring=ring, task=task, value="Typed-New-Pass-1!")
    confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(ConflictError, match="done"):
        confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])


@pytest.mark.parametrize("where", ["rotation.confirm.before_vault", "rotation.confirm.after_vault"])
def test_a_confirm_that_fails_half_way_leaves_the_old_value_current(db, ring, world, where):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    stage_task(db, actor=world.it.user, keyring=ring, task=task, value="Typed-New-Pass-1!")
    db.commit()

    def boom() -> None:
        raise RuntimeError("power cut")

    with failpoints.armed(where, boom), pytest.raises(RuntimeError):
        confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.rollback()
    assert version_statuses(db, secret) == {1: "current", 2: "pending"}
    db.refresh(task)
    assert task.status == "staged"
    confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])  # and it can still finish
    db.commit()
    assert version_statuses(db, secret) == {1: "retired", 2: "current"}


def test_totp_staging_needs_a_current_code_from_the_new_seed(db, ring, world):
    secret = vault_secret(db, ring, world, "totp", TOTP_SEED)
    task = open_manual_task(db, world, secret)
    with pytest.raises(InvalidError, match="does not match"):
        stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED,
                   totp_code=pyotp.TOTP(TOTP_SEED).now())  # a code of the old seed
    db.rollback()
    with pytest.raises(InvalidError):
        stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED, totp_code="")
    db.rollback()
    assert version_statuses(db, secret) == {1: "current"}
    stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED, totp_code=pyotp.TOTP(NEW_SEED).now())
    db.commit()
    assert task.status == "staged" and version_statuses(db, secret) == {1: "current", 2: "pending"}


def test_recovery_codes_and_tokens_are_pasted_and_a_tokens_new_expiry_applies_on_confirm(db, ring, world):
    codes = vault_secret(db, ring, world, "recovery_codes", "old-1\nold-2")
    task = open_manual_task(db, world, codes)
    with pytest.raises(InvalidError):
        stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.rollback()
    stage_task(db, actor=world.it.user, keyring=ring, task=task, value="new-1\nnew-2\nnew-3")
    db.commit()
    token = vault_secret(db, ring, world, "api_token", "tok-old", token_expires_at=date.today() + timedelta(days=2))
    ttask = open_manual_task(db, world, token)
    new_expiry = date.today() + timedelta(days=200)
    stage_task(db, actor=world.it.user, keyring=ring, task=ttask, value="tok-new", token_expires_at=new_expiry)
    confirm_task(db, actor=world.it.user, task=ttask, ticked=["changed"])
    db.commit()
    assert token.token_expires_at == new_expiry and schedules(db, [token])[0].state == "fine"


def test_only_it_stages_confirms_and_cancels(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    for who in (world.admin.user, world.auditor.user, world.publisher.user):
        with pytest.raises(ForbiddenError):
            stage_task(db, actor=who, keyring=ring, task=task, generate=True)
        with pytest.raises(ForbiddenError):
            cancel_task(db, actor=who, task=task, reason="no")


def test_rollback_restores_the_previous_version_within_retention_and_reopens_a_task(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(InvalidError):
        rollback(db, actor=world.it.user, secret=secret, reason="")
    rollback(db, actor=world.it.user, secret=secret, reason="Instagram kept the old password")
    db.commit()
    assert version_statuses(db, secret) == {1: "current", 2: "retired"}
    assert count_events(db, "rotation.rolled_back") == 1
    [live] = [t for t in all_tasks(db, secret) if t.is_live]
    assert live.reason == "manual" and "Rolled back from version 2 to 1" in live.notes[0]
    # outside the retention there is nothing to go back to
    db.execute(update(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "retired")
               .values(retired_at=utcnow() - timedelta(days=31)))
    db.commit()
    with pytest.raises(ConflictError, match="retention"):
        rollback(db, actor=world.it.user, secret=secret, reason="again")


def test_the_purge_step_destroys_retired_versions_past_retention(db, ring, world):
    secret = vault_secret(db, ring, world)
    change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="Newer-Pass-2!")
    db.commit()
    assert purge_expired_versions(db, retention_days=30) == {"destroyed": 0}
    assert purge_expired_versions(db, retention_days=30, now=utcnow() + timedelta(days=31)) == {"destroyed": 1}
    assert version_statuses(db, secret) == {1: "destroyed", 2: "current"}
