"""Rotation rules: schedules, tasks, exposure-driven rotation, staging and confirming, rollback,
lockdown, and the jobs steps."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyotp
import pytest
from sqlalchemy import func, select, update

from govern import failpoints
from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants import services as grants
from govern.jobs.steps import STEPS
from govern.notifications.models import Notification, OutboxMessage
from govern.rotation import services as rotation
from govern.rotation.models import Incident, RotationTask
from govern.vault.access import decrypt_version, reveal
from govern.vault.listing import secret_rows
from govern.vault.models import Exposure, SecretVersion
from govern.vault.versions import change_value, current_version
from tests.factories import make_account, make_grant, make_person
from tests.rotation.conftest import NEW_SEED, TOTP_SEED, age, vault_secret


def _tasks(db, secret=None):
    query = select(RotationTask).order_by(RotationTask.id)
    if secret is not None:
        query = query.where(RotationTask.secret_id == secret.id)
    return list(db.scalars(query).unique())


def _actions(db, action):
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


def _status(db, secret):
    db.expire_all()
    return {v.version: v.status for v in db.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id))}


# --- schedules ----------------------------------------------------------------------------------


def test_default_intervals_come_from_the_account_for_passwords_and_from_the_kind_otherwise(db, ring, world):
    world.account.rotation_interval_days = 30
    db.commit()
    password = vault_secret(db, ring, world)
    token = vault_secret(db, ring, world, "api_token", "tok-123")
    seed = vault_secret(db, ring, world, "totp", TOTP_SEED)
    codes = vault_secret(db, ring, world, "recovery_codes", "aaaa-1111\nbbbb-2222")
    note = vault_secret(db, ring, world, "note", "a note")
    rows = {r.secret.id: r for r in rotation.schedules(db, [password, token, seed, codes, note])}
    assert (rows[password.id].interval_days, rows[password.id].interval_source) == (30, "account")
    assert rows[token.id].interval_days == 180
    assert rows[seed.id].interval_days == 365 and rows[codes.id].interval_days == 365
    assert rows[note.id].interval_days is None and rows[note.id].state == "never"
    assert {r.state for r in rows.values() if r.interval_days} == {"fine"}


@pytest.mark.parametrize(("days_old", "state"), [(0, "fine"), (75, "fine"), (77, "due"), (89, "due"), (90, "overdue"), (400, "overdue")])
def test_state_follows_the_current_versions_age(db, ring, world, days_old, state):
    secret = vault_secret(db, ring, world)
    age(db, secret, days_old)
    assert rotation.schedules(db, [secret])[0].state == state


def test_schedules_from_versions_the_caller_read_match_schedules_read_afresh(db, ring, world):
    fresh = vault_secret(db, ring, world)
    old = vault_secret(db, ring, world, "api_token", "tok-9")
    age(db, old, 400)
    rotation.open_task(db, actor=world.it.user, secret=old, reason="exposure")
    note = vault_secret(db, ring, world, "note", "a note")
    db.commit()
    secrets = [fresh, old, note]
    known = {row.secret.id: (row.version, row.since) for row in secret_rows(db, secrets)}
    now = utcnow()
    given = rotation.schedules(db, secrets, now=now, current=known)
    read = rotation.schedules(db, secrets, now=now)
    assert [(r.state, r.version, r.since, r.due_at, r.task and r.task.id) for r in given] == \
        [(r.state, r.version, r.since, r.due_at, r.task and r.task.id) for r in read]
    assert given[1].state == "overdue" and given[1].rotate_now


def test_an_api_token_is_due_by_its_own_expiry_when_that_comes_first(db, ring, world):
    token = vault_secret(db, ring, world, "api_token", "tok-1", token_expires_at=utcnow().date() + timedelta(days=3))
    row = rotation.schedules(db, [token])[0]
    assert row.state == "due" and row.due_at.date() == token.token_expires_at
    token.token_expires_at = utcnow().date() - timedelta(days=1)
    db.commit()
    assert rotation.schedules(db, [token])[0].state == "overdue"


def test_it_sets_an_interval_per_secret_audited_and_others_may_not(db, ring, world):
    secret = vault_secret(db, ring, world)
    age(db, secret, 40)
    rotation.set_interval(db, actor=world.it.user, secret=secret, days=30)
    db.commit()
    row = rotation.schedules(db, [secret])[0]
    assert (row.interval_days, row.interval_source, row.state) == (30, "secret", "overdue")
    rotation.set_interval(db, actor=world.it.user, secret=secret, days=None)
    assert rotation.schedules(db, [secret])[0].state == "never"
    rotation.set_interval(db, actor=world.it.user, secret=secret, days=None, inherit=True)
    assert rotation.schedules(db, [secret])[0].interval_source == "account"
    assert _actions(db, "rotation.interval_set") == 3
    with pytest.raises(InvalidError):
        rotation.set_interval(db, actor=world.it.user, secret=secret, days=0)
    with pytest.raises(ForbiddenError):
        rotation.set_interval(db, actor=world.admin.user, secret=secret, days=10)


# --- tasks --------------------------------------------------------------------------------------


def test_repeated_triggers_merge_into_one_live_task(db, ring, world):
    secret = vault_secret(db, ring, world)
    later, sooner = utcnow() + timedelta(days=5), utcnow() + timedelta(days=1)
    first = rotation.open_task(db, actor=None, secret=secret, reason="scheduled", due_at=later, note="interval")
    second = rotation.open_task(db, actor=world.it.user, secret=secret, reason="exposure", due_at=sooner,
                                people=[{"person_id": 1, "name": "Ann", "why": "saw it"}], note="Ann left")
    again = rotation.open_task(db, actor=world.it.user, secret=secret, reason="exposure", due_at=sooner,
                               people=[{"person_id": 1, "name": "Ann", "why": "saw it"}], note="Ann left")
    db.commit()
    assert first.created and not second.created and second.changed and not again.changed
    [task] = _tasks(db, secret)
    assert task.reason == "exposure" and task.reasons == ["scheduled", "exposure"]
    assert abs((task.due_at - sooner).total_seconds()) < 1
    assert [p["name"] for p in task.people] == ["Ann"] and task.notes == ["interval", "Ann left"]
    assert _actions(db, "rotation.task_opened") == 1 and _actions(db, "rotation.task_merged") == 1


def _task_state(db, secrets):
    db.expire_all()
    tasks = {t.secret_id: t for t in db.scalars(select(RotationTask).where(RotationTask.status == "open"))}
    events = db.execute(select(AuditEvent.action, AuditEvent.target_id, AuditEvent.details_json)
                        .where(AuditEvent.action.like("rotation.task_%")).order_by(AuditEvent.id)).all()
    by_task = {t.id: s.id for s in secrets for t in [tasks[s.id]]}
    return ({s.id: (tasks[s.id].reason, tasks[s.id].reasons, tasks[s.id].people, tasks[s.id].notes, tasks[s.id].is_urgent,
                    round((tasks[s.id].due_at - utcnow()).total_seconds() / 60)) for s in secrets},
            sorted((action, by_task[int(target)], {k: v for k, v in json.loads(details).items() if k != "due_at"})
                   for action, target, details in events))


def test_open_tasks_does_what_open_task_does_one_by_one(db, ring, world):
    secrets = [vault_secret(db, ring, world, label=f"s{n}") for n in range(3)]
    people = [{"person_id": 1, "name": "Ann", "why": "saw it"}]
    due = utcnow() + timedelta(minutes=30)

    def triggers():
        # One secret already has a scheduled task (merged into), the others get new ones.
        rotation.open_task(db, actor=None, secret=secrets[0], reason="scheduled", due_at=due + timedelta(days=3))
        return [rotation.TaskRequest(secret=s, reason="offboarding", due_at=due, people=people, note="Ann left",
                                     urgent=True) for s in secrets]

    with db.begin_nested() as one_by_one:
        for r in triggers():
            rotation.open_task(db, actor=world.it.user, secret=r.secret, reason=r.reason, due_at=r.due_at,
                               people=r.people, note=r.note, urgent=r.urgent)
        expected = _task_state(db, secrets)
        one_by_one.rollback()
    opened = rotation.open_tasks(db, actor=world.it.user, requests=triggers())
    db.commit()
    assert _task_state(db, secrets) == expected
    assert [(o.created, o.changed) for o in (opened[s.id] for s in secrets)] == [(False, True), (True, False), (True, False)]
    # Again: nothing changes, nothing is audited.
    before = _actions(db, "rotation.task_merged")
    again = rotation.open_tasks(db, actor=world.it.user, requests=[
        rotation.TaskRequest(secret=s, reason="offboarding", due_at=due, people=people, note="Ann left", urgent=True)
        for s in secrets])
    assert not any(o.created or o.changed for o in again.values()) and _actions(db, "rotation.task_merged") == before
    assert len(_tasks(db)) == 3


def test_scheduling_opens_one_task_per_due_secret_and_is_idempotent(db, ring, world):
    fine = vault_secret(db, ring, world, label="fine")
    due = vault_secret(db, ring, world, label="due")
    overdue = vault_secret(db, ring, world, label="overdue")
    age(db, due, 80)
    age(db, overdue, 120)
    assert rotation.schedule_due(db) == {"opened": 2, "already_open": 0}
    db.commit()
    assert rotation.schedule_due(db) == {"opened": 0, "already_open": 2}
    assert {t.secret_id for t in _tasks(db)} == {due.id, overdue.id}
    assert not _tasks(db, fine)


# --- exposure-driven rotation ------------------------------------------------------------------------


def _revoke(db, world, person, role="publisher"):
    from govern.grants.models import Grant

    grant = db.scalar(select(Grant).where(Grant.person_id == person.id, Grant.role_code == role, Grant.status == "active"))
    grants.revoke_grant(db, actor=world.admin.user, grant=grant, reason="left the team")
    db.commit()


def test_losing_a_revealing_role_rotates_everything_they_could_have_seen(db, ring, world):
    password = vault_secret(db, ring, world, label="Login")
    seed = vault_secret(db, ring, world, "totp", TOTP_SEED, label="2FA")
    vault_secret(db, ring, world, account=world.other_account, label="Elsewhere")
    _revoke(db, world, world.publisher.user.person)
    tasks = _tasks(db)
    assert {t.secret_id for t in tasks} == {password.id, seed.id}
    for task in tasks:
        assert task.reason == "exposure" and task.due_at <= utcnow()
        [person] = task.people
        assert person["person_id"] == world.publisher.user.person_id and "could have revealed it as Publisher" in person["why"]
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == world.it.id)) == 1


def test_revealed_mode_rotates_only_what_they_actually_saw(db, ring, world):
    seen = vault_secret(db, ring, world, label="Seen")
    vault_secret(db, ring, world, label="Unseen")
    reveal(db, actor=world.publisher.user, keyring=ring, secret=seen, reason="post", mfa_fresh=True)
    db.commit()
    from govern.grants.models import Grant

    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    grants.revoke_grant(db, actor=world.admin.user, grant=grant, reason="left")
    db.rollback()  # the hook ran in could_have_seen mode; redo by hand in revealed mode
    tasks = rotation.open_exposure_rotations(db, actor=world.admin.user, person=world.publisher.user.person,
                                             account=world.account, mode="revealed")
    assert [t.secret_id for t in tasks] == []  # still holds the grant (rolled back): nothing lost yet
    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    grant.status = "revoked"
    grant.ended_at = utcnow()
    db.flush()
    tasks = rotation.open_exposure_rotations(db, actor=world.admin.user, person=world.publisher.user.person,
                                             account=world.account, mode="revealed")
    assert [t.secret_id for t in tasks] == [seen.id]
    assert "saw version 1" in tasks[0].people[0]["why"] and tasks[0].is_urgent


def test_someone_without_a_revealing_role_who_saw_nothing_causes_no_rotation(db, ring, world):
    vault_secret(db, ring, world)
    _revoke(db, world, world.analyst.user.person, role="analyst")
    assert _tasks(db) == []


def test_someone_who_keeps_another_revealing_role_lost_nothing_yet(db, ring, world):
    vault_secret(db, ring, world)
    make_grant(db, world.publisher.user.person, world.account, "admin")
    db.commit()
    _revoke(db, world, world.publisher.user.person)
    assert _tasks(db) == []


def test_a_grant_that_ended_before_the_current_version_causes_no_rotation(db, ring, world):
    person = make_person(db)
    make_grant(db, person, world.account, "publisher", status="revoked", starts_at=utcnow() - timedelta(days=60),
               ended_at=utcnow() - timedelta(days=30))
    secret = vault_secret(db, ring, world)  # version 1 became current after the grant ended
    assert rotation.open_exposure_rotations(db, actor=None, person=person, account=world.account) == []
    assert not _tasks(db, secret)


def test_an_expiring_grant_opens_the_rotation_too(db, ring, world):
    secret = vault_secret(db, ring, world)
    person = make_person(db)
    make_grant(db, person, world.account, "publisher", expires_at=utcnow() - timedelta(minutes=1))
    db.commit()
    assert grants.expire_grants(db)["expired"] == 1
    db.commit()
    [task] = _tasks(db, secret)
    assert task.people[0]["person_id"] == person.id and task.reason == "exposure"


def test_offboarding_calls_the_same_service_with_its_own_reason(db, ring, world):
    secret = vault_secret(db, ring, world)
    from govern.grants.models import Grant

    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    grants.revoke_grant(db, actor=world.admin.user, grant=grant, reason="offboarded", cause="offboarding")
    db.commit()
    [task] = _tasks(db, secret)
    assert task.reason == "offboarding" and task.is_urgent


# --- staging, confirming, cancelling, rollback ------------------------------------------------------


def _open(db, world, secret, reason="manual"):
    task = rotation.open_task(db, actor=world.it.user, secret=secret, reason=reason, note="test").task
    db.commit()
    return task


def test_generate_stage_confirm_makes_the_new_value_current_and_retires_the_old(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    generated = rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.commit()
    assert generated and len(generated) >= 12 and task.status == "staged"
    assert _status(db, secret) == {1: "current", 2: "pending"}
    with pytest.raises(InvalidError):
        rotation.confirm_task(db, actor=world.it.user, task=task, ticked=[])  # "changed on the platform" not ticked
    db.rollback()
    rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed", "sessions"])
    db.commit()
    assert _status(db, secret) == {1: "retired", 2: "current"}
    assert task.status == "done" and task.completed_by_id == world.it.id
    payload = decrypt_version(db, actor=world.it.user, keyring=ring, version=current_version(db, secret))
    assert payload["value"] == generated
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.action.like("rotation.%"))))
    assert generated not in "".join(e.details_json for e in events)
    assert json.loads([e for e in events if e.action == "rotation.task_done"][0].details_json)["checklist"] == ["changed", "sessions"]


def test_confirming_twice_gives_a_clear_conflict(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    with pytest.raises(ConflictError, match="Nothing is staged"):
        rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.rollback()
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value="Typed-New-Pass-1!")
    rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(ConflictError, match="done"):
        rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])


@pytest.mark.parametrize("where", ["rotation.confirm.before_vault", "rotation.confirm.after_vault"])
def test_a_confirm_that_fails_half_way_leaves_the_old_value_current(db, ring, world, where):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value="Typed-New-Pass-1!")
    db.commit()

    def boom() -> None:
        raise RuntimeError("power cut")

    with failpoints.armed(where, boom), pytest.raises(RuntimeError):
        rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.rollback()
    assert _status(db, secret) == {1: "current", 2: "pending"}
    db.refresh(task)
    assert task.status == "staged"
    rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])  # and it can still finish
    db.commit()
    assert _status(db, secret) == {1: "retired", 2: "current"}


def test_totp_staging_needs_a_current_code_from_the_new_seed(db, ring, world):
    secret = vault_secret(db, ring, world, "totp", TOTP_SEED)
    task = _open(db, world, secret)
    with pytest.raises(InvalidError, match="does not match"):
        rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED,
                            totp_code=pyotp.TOTP(TOTP_SEED).now())  # a code of the old seed
    db.rollback()
    with pytest.raises(InvalidError):
        rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED, totp_code="")
    db.rollback()
    assert _status(db, secret) == {1: "current"}
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value=NEW_SEED, totp_code=pyotp.TOTP(NEW_SEED).now())
    db.commit()
    assert task.status == "staged" and _status(db, secret) == {1: "current", 2: "pending"}


def test_recovery_codes_and_tokens_are_pasted_and_a_tokens_new_expiry_applies_on_confirm(db, ring, world):
    codes = vault_secret(db, ring, world, "recovery_codes", "old-1\nold-2")
    task = _open(db, world, codes)
    with pytest.raises(InvalidError):
        rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.rollback()
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, value="new-1\nnew-2\nnew-3")
    db.commit()
    token = vault_secret(db, ring, world, "api_token", "tok-old", token_expires_at=date.today() + timedelta(days=2))
    ttask = _open(db, world, token)
    new_expiry = date.today() + timedelta(days=200)
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=ttask, value="tok-new", token_expires_at=new_expiry)
    rotation.confirm_task(db, actor=world.it.user, task=ttask, ticked=["changed"])
    db.commit()
    assert token.token_expires_at == new_expiry and rotation.schedules(db, [token])[0].state == "fine"


def test_cancelling_a_staged_task_destroys_the_staged_version(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.commit()
    with pytest.raises(InvalidError):
        rotation.cancel_task(db, actor=world.it.user, task=task, reason=" ")
    rotation.cancel_task(db, actor=world.it.user, task=task, reason="platform outage, try next week")
    db.commit()
    assert _status(db, secret) == {1: "current", 2: "destroyed"} and task.status == "cancelled"
    # a new trigger opens a fresh task: the cancelled one no longer counts as live
    assert rotation.open_task(db, actor=None, secret=secret, reason="scheduled").created


def test_only_it_stages_confirms_and_cancels(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    for who in (world.admin.user, world.auditor.user, world.publisher.user):
        with pytest.raises(ForbiddenError):
            rotation.stage_task(db, actor=who, keyring=ring, task=task, generate=True)
        with pytest.raises(ForbiddenError):
            rotation.cancel_task(db, actor=who, task=task, reason="no")


def test_rollback_restores_the_previous_version_within_retention_and_reopens_a_task(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = _open(db, world, secret)
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(InvalidError):
        rotation.rollback(db, actor=world.it.user, secret=secret, reason="")
    rotation.rollback(db, actor=world.it.user, secret=secret, reason="Instagram kept the old password")
    db.commit()
    assert _status(db, secret) == {1: "current", 2: "retired"}
    assert _actions(db, "rotation.rolled_back") == 1
    [live] = [t for t in _tasks(db, secret) if t.is_live]
    assert live.reason == "manual" and "Rolled back from version 2 to 1" in live.notes[0]
    # outside the retention there is nothing to go back to
    db.execute(update(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "retired")
               .values(retired_at=utcnow() - timedelta(days=31)))
    db.commit()
    with pytest.raises(ConflictError, match="retention"):
        rotation.rollback(db, actor=world.it.user, secret=secret, reason="again")


# --- compromise lockdown ----------------------------------------------------------------------------------


def test_lockdown_locks_opens_urgent_tasks_notifies_and_only_it_reveals(db, ring, world, kit):
    from tests.factories import make_user

    crisis = make_user(db, kit)
    world.account.crisis_contact_id = crisis.user.person_id
    db.commit()
    password = vault_secret(db, ring, world, label="Login")
    seed = vault_secret(db, ring, world, "totp", TOTP_SEED, label="2FA")
    reveal(db, actor=world.publisher.user, keyring=ring, secret=password, reason="posting", mfa_fresh=True)
    db.commit()
    with pytest.raises(ForbiddenError):
        rotation.lock_down(db, actor=world.admin.user, account=world.account, summary="hacked")
    incident = rotation.lock_down(db, actor=world.it.user, account=world.account, summary="Posts we did not write",
                                  compromised_since=utcnow() - timedelta(days=1))
    db.commit()
    assert world.account.status == "locked"
    tasks = rotation.incident_tasks(db, incident)
    assert {t.secret_id for t in tasks} == {password.id, seed.id}
    assert all(t.reason == "compromise" and t.is_urgent for t in tasks)
    emails = {m.to_address for m in db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "rotation.incident"))}
    assert emails == {crisis.email, world.manager.email}
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.kind == "rotation.incident")) == 2
    with pytest.raises(ForbiddenError, match="only IT"):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=password, reason="post", mfa_fresh=True)
    db.commit()
    assert reveal(db, actor=world.it.user, keyring=ring, secret=password, reason="rotate", mfa_fresh=True).value
    with pytest.raises(ConflictError):
        rotation.lock_down(db, actor=world.it.user, account=world.account, summary="again")
    db.rollback()
    actions = [e.action for e in rotation.timeline(db, incident)]
    assert "vault.revealed" in actions and "rotation.account_locked" in actions and "vault.reveal_denied" in actions


def test_the_incident_closes_only_when_its_tasks_are_done_and_unlocks_the_account(db, ring, world):
    password = vault_secret(db, ring, world)
    incident = rotation.lock_down(db, actor=world.it.user, account=world.account, summary="Phished")
    db.commit()
    with pytest.raises(ConflictError, match="not done"):
        rotation.close_incident(db, actor=world.it.user, incident=incident, note="all good")
    db.rollback()
    [task] = rotation.incident_tasks(db, incident)
    rotation.stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    rotation.confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(InvalidError):
        rotation.close_incident(db, actor=world.it.user, incident=incident, note="")
    rotation.close_incident(db, actor=world.it.user, incident=incident, note="Password and 2FA rotated; sessions ended.")
    db.commit()
    assert incident.status == "closed" and world.account.status == "active" and password.account.status == "active"
    assert db.scalar(select(func.count()).select_from(Incident).where(Incident.status == "open")) == 0


# --- jobs ---------------------------------------------------------------------------------------------------


def test_the_rotation_steps_are_registered_before_email_is_sent():
    names = [s.name for s in STEPS]
    for name in ("rotation.schedule", "vault.purge", "rotation.remind", "rotation.digest"):
        assert names.index(name) < names.index("email.send")


def test_reminders_go_once_a_day_and_escalations_once_a_week(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = rotation.open_task(db, actor=None, secret=secret, reason="scheduled", due_at=utcnow() - timedelta(days=8)).task
    db.commit()
    first = rotation.send_reminders(db)
    assert first == {"reminders": 1, "escalations": 1}  # one IT user, one admin
    assert rotation.send_reminders(db) == {"reminders": 0, "escalations": 0}
    tomorrow = utcnow() + timedelta(days=1)
    assert rotation.send_reminders(db, now=tomorrow)["reminders"] == 1
    rotation.assign_task(db, actor=world.it.user, task=task, assignee=world.it.user)
    kinds = [m.kind for m in db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert kinds.count("rotation.reminder") == 2 and kinds.count("rotation.escalation") == 1
    # The same reminders in the app, once per email (not again on the idempotent second run).
    inbox = {(n.user_id, n.kind): n for n in db.scalars(select(Notification))}
    assert sorted(k for _, k in inbox) == ["rotation.escalation", "rotation.reminder"]
    assert db.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == world.it.user.id)) == 2
    reminder = inbox[(world.it.user.id, "rotation.reminder")]
    assert reminder.link == f"/rotation/tasks/{task.id}" and reminder.title.startswith("Rotation overdue: ")
    assert (world.admin.user.id, "rotation.escalation") in inbox


def test_a_fresh_overdue_task_is_reminded_but_not_escalated(db, ring, world):
    secret = vault_secret(db, ring, world)
    rotation.open_task(db, actor=None, secret=secret, reason="scheduled", due_at=utcnow() - timedelta(days=2))
    db.commit()
    assert rotation.send_reminders(db) == {"reminders": 1, "escalations": 0}


def test_the_weekly_digest_goes_once_per_week(db, ring, world):
    secret = vault_secret(db, ring, world)
    age(db, secret, 100)
    assert rotation.send_digest(db) == {"digests": 1}
    assert rotation.send_digest(db) == {"digests": 0}
    body = db.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "rotation.digest"))
    assert "1 credential(s) overdue" in body and "Instagram: 1 overdue" in body
    assert rotation.send_digest(db, now=utcnow() + timedelta(days=7)) == {"digests": 1}


def test_the_purge_step_destroys_retired_versions_past_retention(db, ring, world):
    secret = vault_secret(db, ring, world)
    change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="Newer-Pass-2!")
    db.commit()
    assert rotation.purge_expired_versions(db, retention_days=30) == {"destroyed": 0}
    assert rotation.purge_expired_versions(db, retention_days=30, now=utcnow() + timedelta(days=31)) == {"destroyed": 1}
    assert _status(db, secret) == {1: "destroyed", 2: "current"}


def test_compliance_history_and_age_distribution(db, ring, world):
    fresh = vault_secret(db, ring, world, label="fresh")
    old = vault_secret(db, ring, world, label="old")
    age(db, old, 200)
    rows = rotation.schedules(db, [fresh, old])
    buckets = {b.label: b.count for b in rotation.age_distribution(rows)}
    assert buckets["0-25%"] == 1 and buckets["200%+"] == 1
    history = rotation.compliance_history(db, rows)
    assert len(history) == 12 and history[-1].total == 2 and history[-1].compliant == 1
    assert history[0].total == 0  # eleven months ago neither had a value yet... except the aged one
    _ = make_account
    _ = Exposure
