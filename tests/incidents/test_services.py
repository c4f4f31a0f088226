"""Compromise lockdown: the account is locked, every secret rotates urgently, people are told, and the
incident closes only when its tasks are done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.incidents.models import Incident
from govern.incidents.services import close_incident, incident_tasks, lock_down, timeline
from govern.notifications.models import Notification, OutboxMessage
from govern.rotation.versions import confirm_task, stage_task
from govern.vault.access import reveal
from tests.rotation.conftest import TOTP_SEED, vault_secret


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
        lock_down(db, actor=world.admin.user, account=world.account, summary="hacked")
    incident = lock_down(db, actor=world.it.user, account=world.account, summary="Posts we did not write",
                         compromised_since=utcnow() - timedelta(days=1))
    db.commit()
    assert world.account.status == "locked"
    tasks = incident_tasks(db, incident)
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
        lock_down(db, actor=world.it.user, account=world.account, summary="again")
    db.rollback()
    actions = [e.action for e in timeline(db, incident)]
    assert "vault.revealed" in actions and "rotation.account_locked" in actions and "vault.reveal_denied" in actions


def test_the_incident_closes_only_when_its_tasks_are_done_and_unlocks_the_account(db, ring, world):
    password = vault_secret(db, ring, world)
    incident = lock_down(db, actor=world.it.user, account=world.account, summary="Phished")
    db.commit()
    with pytest.raises(ConflictError, match="not done"):
        close_incident(db, actor=world.it.user, incident=incident, note="all good")
    db.rollback()
    [task] = incident_tasks(db, incident)
    stage_task(db, actor=world.it.user, keyring=ring, task=task, generate=True)
    confirm_task(db, actor=world.it.user, task=task, ticked=["changed"])
    db.commit()
    with pytest.raises(InvalidError):
        close_incident(db, actor=world.it.user, incident=incident, note="")
    close_incident(db, actor=world.it.user, incident=incident, note="Password and 2FA rotated; sessions ended.")
    db.commit()
    assert incident.status == "closed" and world.account.status == "active" and password.account.status == "active"
    assert db.scalar(select(func.count()).select_from(Incident).where(Incident.status == "open")) == 0
