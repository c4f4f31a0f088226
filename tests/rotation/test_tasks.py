"""Rotation tasks: repeated triggers merge into one live task, many at once, cancelling."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import InvalidError
from govern.rotation.models import RotationTask
from govern.rotation.tasks import TaskRequest, cancel_task, open_task, open_tasks
from govern.rotation.versions import stage_task
from tests.rotation.conftest import all_tasks, count_events, open_manual_task, vault_secret, version_statuses


def test_repeated_triggers_merge_into_one_live_task(db, ring, world):
    secret = vault_secret(db, ring, world)
    later, sooner = utcnow() + timedelta(days=5), utcnow() + timedelta(days=1)
    first = open_task(db, actor=None, secret=secret, reason="scheduled", due_at=later, note="interval")
    second = open_task(db, actor=world.it.user, secret=secret, reason="exposure", due_at=sooner,
                       people=[{"person_id": 1, "name": "Ann", "why": "saw it"}], note="Ann left")
    again = open_task(db, actor=world.it.user, secret=secret, reason="exposure", due_at=sooner,
                      people=[{"person_id": 1, "name": "Ann", "why": "saw it"}], note="Ann left")
    db.commit()
    assert first.created and not second.created and second.changed and not again.changed
    [task] = all_tasks(db, secret)
    assert task.reason == "exposure" and task.reasons == ["scheduled", "exposure"]
    assert abs((task.due_at - sooner).total_seconds()) < 1
    assert [p["name"] for p in task.people] == ["Ann"] and task.notes == ["interval", "Ann left"]
    assert count_events(db, "rotation.task_opened") == 1 and count_events(db, "rotation.task_merged") == 1


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
        open_task(db, actor=None, secret=secrets[0], reason="scheduled", due_at=due + timedelta(days=3))
        return [TaskRequest(secret=s, reason="offboarding", due_at=due, people=people, note="Ann left",
                            urgent=True) for s in secrets]

    with db.begin_nested() as one_by_one:
        for r in triggers():
            open_task(db, actor=world.it.user, secret=r.secret, reason=r.reason, due_at=r.due_at,
                      people=r.people, note=r.note, urgent=r.urgent)
        expected = _task_state(db, secrets)
        one_by_one.rollback()
    opened = open_tasks(db, actor=world.it.user, requests=triggers())
    db.commit()
    assert _task_state(db, secrets) == expected
    assert [(o.created, o.changed) for o in (opened[s.id] for s in secrets)] == [(False, True), (True, False), (True, False)]
    # Again: nothing changes, nothing is audited.
    before = count_events(db, "rotation.task_merged")
    again = open_tasks(db, actor=world.it.user, requests=[
    TaskRequest(secret=s, reason="offboarding", due_at=due, people=people, note="Ann left", urgent=True)
    for s in secrets])
    assert not any(o.created or o.changed for o in again.values()) and count_events(db, "rotation.task_merged") == before
    assert len(all_tasks(db)) == 3


def test_cancelling_a_staged_task_destroys_the_staged_version(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_manual_task(db, world, secret)
    stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    db.commit()
    with pytest.raises(InvalidError):
        cancel_task(db, actor=world.it.user, task=task, reason=" ")
    cancel_task(db, actor=world.it.user, task=task, reason="platform outage, try next week")
    db.commit()
    assert version_statuses(db, secret) == {1: "current", 2: "destroyed"} and task.status == "cancelled"
    # a new trigger opens a fresh task: the cancelled one no longer counts as live
    assert open_task(db, actor=None, secret=secret, reason="scheduled").created
