"""Exposure-driven rotation: who lost access to what they saw or could have seen."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from govern.db import utcnow
from govern.grants import services as grants
from govern.notifications.models import Notification
from govern.rotation.exposure import open_exposure_rotations
from govern.vault.access import reveal
from tests.factories import make_grant, make_person
from tests.rotation.conftest import TOTP_SEED, all_tasks, vault_secret


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
    tasks = all_tasks(db)
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
    tasks = open_exposure_rotations(db, actor=world.admin.user, person=world.publisher.user.person,
                                    account=world.account, mode="revealed")
    assert [t.secret_id for t in tasks] == []  # still holds the grant (rolled back): nothing lost yet
    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    grant.status = "revoked"
    grant.ended_at = utcnow()
    db.flush()
    tasks = open_exposure_rotations(db, actor=world.admin.user, person=world.publisher.user.person,
                                    account=world.account, mode="revealed")
    assert [t.secret_id for t in tasks] == [seen.id]
    assert "saw version 1" in tasks[0].people[0]["why"] and tasks[0].is_urgent


def test_someone_without_a_revealing_role_who_saw_nothing_causes_no_rotation(db, ring, world):
    vault_secret(db, ring, world)
    _revoke(db, world, world.analyst.user.person, role="analyst")
    assert all_tasks(db) == []


def test_someone_who_keeps_another_revealing_role_lost_nothing_yet(db, ring, world):
    vault_secret(db, ring, world)
    make_grant(db, world.publisher.user.person, world.account, "admin")
    db.commit()
    _revoke(db, world, world.publisher.user.person)
    assert all_tasks(db) == []


def test_a_grant_that_ended_before_the_current_version_causes_no_rotation(db, ring, world):
    person = make_person(db)
    make_grant(db, person, world.account, "publisher", status="revoked", starts_at=utcnow() - timedelta(days=60),
               ended_at=utcnow() - timedelta(days=30))
    secret = vault_secret(db, ring, world)  # version 1 became current after the grant ended
    assert open_exposure_rotations(db, actor=None, person=person, account=world.account) == []
    assert not all_tasks(db, secret)


def test_an_expiring_grant_opens_the_rotation_too(db, ring, world):
    secret = vault_secret(db, ring, world)
    person = make_person(db)
    make_grant(db, person, world.account, "publisher", expires_at=utcnow() - timedelta(minutes=1))
    db.commit()
    assert grants.expire_grants(db)["expired"] == 1
    db.commit()
    [task] = all_tasks(db, secret)
    assert task.people[0]["person_id"] == person.id and task.reason == "exposure"


def test_offboarding_calls_the_same_service_with_its_own_reason(db, ring, world):
    secret = vault_secret(db, ring, world)
    from govern.grants.models import Grant

    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    grants.revoke_grant(db, actor=world.admin.user, grant=grant, reason="offboarded", cause="offboarding")
    db.commit()
    [task] = all_tasks(db, secret)
    assert task.reason == "offboarding" and task.is_urgent
