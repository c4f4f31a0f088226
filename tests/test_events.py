"""The events (govern.events): every security event has its subscriber connected whichever entry
point built the app, a failing subscriber rolls the whole change back, and every revocation path
that should react does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.cli import _create_cli_app
from govern.db import utcnow
from govern.events import SECURITY_EVENTS, access_lost
from govern.grants.models import Grant
from govern.jobs.cli import group as jobs_group
from govern.reviews import services as reviews
from govern.reviews.models import ReviewItem
from govern.rotation.models import RotationTask
from govern.subscribers import SUBSCRIBERS, connect_all
from tests.factories import login, make_grant, make_person, post
from tests.rotation.conftest import app_overrides, vault_secret, world  # noqa: F401 - fixtures
from tests.support import app_config
from tests.vault.conftest import keyring, ring  # noqa: F401 - fixtures


class SubscriberDown(RuntimeError):
    """What the failing subscriber raises."""


def _connected() -> set[Any]:
    """The events each of whose subscribers is connected."""
    return {signal for signal in SECURITY_EVENTS
            if all(receiver in signal.receivers.values() for s, receiver in SUBSCRIBERS if s is signal)}


@pytest.fixture
def disconnected() -> Iterator[None]:
    """No subscriber connected (as in a fresh process); connected again afterwards."""
    for signal, receiver in SUBSCRIBERS:
        signal.disconnect(receiver)
    assert _connected() == set()
    yield
    connect_all()


@pytest.fixture
def failing() -> Iterator[None]:
    """A subscriber of access_lost that raises, as a broken reaction would."""
    def down(sender: Any, **kwargs: Any) -> None:
        raise SubscriberDown("rotation is down")

    access_lost.connect(down, weak=False)
    yield
    access_lost.disconnect(down)


def test_every_security_event_has_a_subscriber():
    assert {signal for signal, _receiver in SUBSCRIBERS} >= set(SECURITY_EVENTS)


def test_connecting_twice_connects_once(app):
    before = {id(s): len(s.receivers) for s, _r in SUBSCRIBERS}
    connect_all()
    connect_all()
    assert {id(s): len(s.receivers) for s, _r in SUBSCRIBERS} == before


def test_the_web_and_scim_app_connects_every_subscriber(disconnected, tmp_path: Path, database_url: str):
    create_app(app_config(tmp_path, database_url))
    assert _connected() == set(SECURITY_EVENTS)


def test_the_cli_app_connects_every_subscriber(disconnected, tmp_path: Path, database_url: str, monkeypatch):
    monkeypatch.setenv("GOVERN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("GOVERN_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVERN_SECRET_KEY", "s" * 40)
    ScriptInfo(create_app=_create_cli_app).load_app()
    assert _connected() == set(SECURITY_EVENTS)


def test_the_jobs_runner_connects_every_subscriber(disconnected, tmp_path: Path, database_url: str, monkeypatch):
    monkeypatch.setenv("GOVERN_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("GOVERN_DATABASE_URL", database_url)
    monkeypatch.setenv("GOVERN_SECRET_KEY", "s" * 40)
    seen: list[set[Any]] = []

    def run_jobs(*args: Any, **kwargs: Any) -> None:
        seen.append(_connected())
        raise SystemExit(0)  # the steps themselves are tested elsewhere

    monkeypatch.setattr("govern.jobs.services.run_jobs", run_jobs)  # imported when the command runs
    # `govern jobs run`, as cron starts it: the CLI builds the app when the command runs.
    result = CliRunner().invoke(jobs_group, ["run"], obj=ScriptInfo(create_app=_create_cli_app))
    assert result.exit_code == 0, result.output
    assert seen == [set(SECURITY_EVENTS)]


def _tasks(db) -> int:
    return db.scalar(select(func.count()).select_from(RotationTask)) or 0


def _revoked_events(db, grant) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action.in_(("grant.revoked", "grant.expired")), AuditEvent.target_id == str(grant.id))) or 0


def test_a_failing_subscriber_rolls_back_a_revoke_through_the_web(app, db, ring, world, failing):  # noqa: F811
    vault_secret(db, ring, world)
    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    db.commit()
    client = app.test_client()
    login(client, db, world.admin)
    try:
        status = post(client, f"/grants/{grant.id}/revoke", {"reason": "left the team"}, token_page="/grants/").status_code
    except SubscriberDown:  # the test app lets exceptions through; in production it is a 500 page
        status = 500
    assert status == 500
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active"
    assert _revoked_events(db, grant) == 0 and _tasks(db) == 0


def test_a_failing_subscriber_rolls_back_an_expiry_in_the_job_step(app, db, ring, world, failing):  # noqa: F811
    vault_secret(db, ring, world)
    grant = make_grant(db, make_person(db), world.account, "publisher", expires_at=utcnow() - timedelta(minutes=1))
    db.commit()
    result = app.test_cli_runner().invoke(jobs_group, ["run"])
    assert result.exit_code != 0 and "grants.expire" in result.output
    db.expire_all()
    assert db.get(Grant, grant.id).status == "active"
    assert _revoked_events(db, grant) == 0 and _tasks(db) == 0


def test_revoking_through_a_review_decision_opens_the_rotation(db, ring, world):  # noqa: F811
    secret = vault_secret(db, ring, world)
    campaign = reviews.open_campaign(db, actor=world.admin.user, name="Spring", scope_kind="all", scope_value=None,
                                     due_at=utcnow() + timedelta(days=7))
    grant = db.scalar(select(Grant).where(Grant.person_id == world.publisher.user.person_id))
    item = db.scalar(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id, ReviewItem.grant_id == grant.id))
    reviews.decide_item(db, actor=world.admin.user, item=item, decision="revoke", reason="Left the social team")
    db.commit()
    [task] = db.scalars(select(RotationTask).where(RotationTask.secret_id == secret.id)).all()
    assert task.reason == "exposure" and task.people[0]["person_id"] == world.publisher.user.person_id
