"""Reminders and escalations of overdue tasks, and IT's weekly digest (jobs steps)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from govern.db import utcnow
from govern.jobs.steps import STEPS
from govern.notifications.models import Notification, OutboxMessage
from govern.rotation.reminders import send_digest, send_reminders
from govern.rotation.tasks import assign_task, open_task
from tests.rotation.conftest import age, vault_secret


def test_the_rotation_steps_are_registered_before_email_is_sent():
    names = [s.name for s in STEPS]
    for name in ("rotation.schedule", "vault.purge", "rotation.remind", "rotation.digest"):
        assert names.index(name) < names.index("email.send")


def test_reminders_go_once_a_day_and_escalations_once_a_week(db, ring, world):
    secret = vault_secret(db, ring, world)
    task = open_task(db, actor=None, secret=secret, reason="scheduled", due_at=utcnow() - timedelta(days=8)).task
    db.commit()
    first = send_reminders(db)
    assert first == {"reminders": 1, "escalations": 1}  # one IT user, one admin
    assert send_reminders(db) == {"reminders": 0, "escalations": 0}
    tomorrow = utcnow() + timedelta(days=1)
    assert send_reminders(db, now=tomorrow)["reminders"] == 1
    assign_task(db, actor=world.it.user, task=task, assignee=world.it.user)
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
    open_task(db, actor=None, secret=secret, reason="scheduled", due_at=utcnow() - timedelta(days=2))
    db.commit()
    assert send_reminders(db) == {"reminders": 1, "escalations": 0}


def test_the_weekly_digest_goes_once_per_week(db, ring, world):
    secret = vault_secret(db, ring, world)
    age(db, secret, 100)
    assert send_digest(db) == {"digests": 1}
    assert send_digest(db) == {"digests": 0}
    body = db.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "rotation.digest"))
    assert "1 credential(s) overdue" in body and "Instagram: 1 overdue" in body
    assert send_digest(db, now=utcnow() + timedelta(days=7)) == {"digests": 1}
