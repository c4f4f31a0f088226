"""Webhooks delivered to real endpoints on loopback: signatures checked with the Standard Webhooks library,
retries, a day of failures, Slack and Teams messages, and no secret value in any payload."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from govern import audit
from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.crypto.keyring import Keyring
from govern.db import get_session, utcnow
from govern.errors import InvalidError
from govern.notifications.models import Notification, OutboxMessage
from govern.schema import upgrade
from govern.vault.access import reveal
from govern.webhooks import delivery
from govern.webhooks.models import WebhookSubscription
from govern.webhooks.subscriptions import SubscriptionInput, create_subscription, webhook_box
from tests.factories import Company
from tests.support import TEST_SECRET_KEY, app_config
from tests.webhooks.receiver import Endpoint, start

BOX = webhook_box([TEST_SECRET_KEY])
BASE = "https://govern.example"


def _subscribe(session, endpoint: Endpoint, *, fmt: str = "standard", types=("grant.requested", "grant.revoked"),
               name: str = "hook") -> WebhookSubscription:
    sub, secret = create_subscription(session, actor=None, box=BOX, allow_plain_loopback=True,
                                      data=SubscriptionInput(name=name, url=endpoint.url, format=fmt, event_types=types))
    session.commit()
    endpoint.secret = secret
    return sub


def _deliver(session, sub: WebhookSubscription, **kwargs):
    return delivery.deliver_subscription(session, sub.id, box=BOX, base_url=BASE, **kwargs)


def test_subscribed_events_arrive_signed_in_order_and_others_do_not(scratch_app):
    endpoint = start(Endpoint())
    with scratch_app.app_context():
        session = get_session()
        sub = _subscribe(session, endpoint)
        wanted = []
        for n in range(3):
            wanted.append(audit.record(session, "grant.requested", target_type="grant", target_id=n + 1,
                                       details={"role": "publisher"}).id)
            audit.record(session, "auth.logout", target_type="user", target_id=1)  # not subscribed
        wanted.append(audit.record(session, "grant.expired", target_type="grant", target_id=9).id)
        session.commit()
        result = _deliver(session, sub)
        assert result.delivered == 4 and result.error is None and endpoint.refused == 0
        assert [body["data"]["event_id"] for body in endpoint.bodies] == wanted
        assert [body["type"] for body in endpoint.bodies] == ["grant.requested"] * 3 + ["grant.revoked"]
        assert endpoint.ids == [f"msg_{sub.id}_{i}" for i in wanted]
        first = endpoint.bodies[0]["data"]
        assert first["link"] == f"{BASE}/grants/" and "four-eyes" in first["to_do"] and first["sentence"]
        assert _deliver(session, sub).delivered == 0  # nothing twice
    endpoint.stop()


def test_an_endpoint_that_answers_500_then_200_gets_each_event_once(scratch_app):
    endpoint = start(Endpoint(answers=[500]))
    with scratch_app.app_context():
        session = get_session()
        sub = _subscribe(session, endpoint)
        ids = [audit.record(session, "grant.requested", target_type="grant", target_id=n).id for n in (1, 2)]
        session.commit()
        failed = _deliver(session, sub)
        assert failed.error == "the endpoint answered 500 Internal Server Error" and failed.delivered == 0
        session.refresh(sub)
        assert sub.cursor < ids[0] and sub.failures == 1 and sub.next_attempt_at > utcnow()
        assert _deliver(session, sub).skipped == "backing off"
        with time_machine.travel(utcnow() + timedelta(minutes=2), tick=False):
            assert _deliver(session, sub).delivered == 2
        assert endpoint.ids == [f"msg_{sub.id}_{ids[0]}", f"msg_{sub.id}_{ids[1]}"]  # each once
        assert endpoint.attempts == [endpoint.ids[0], *endpoint.ids]  # the retry had the same webhook-id
        session.refresh(sub)
        assert sub.failures == 0 and sub.failing_since is None and sub.delivered == 2
    endpoint.stop()


def test_an_endpoint_failing_for_a_day_is_turned_off_and_the_admins_are_told(scratch_app):
    endpoint = start(Endpoint(answers=[503] * 100))
    with scratch_app.app_context():
        session = get_session()
        Company(scratch_app, session).add_staff("admin").commit()
        sub = _subscribe(session, endpoint)
        audit.record(session, "grant.requested", target_type="grant", target_id=1)
        session.commit()
        start_at = utcnow()
        for hours in (0, 6, 12, 23):
            with time_machine.travel(start_at + timedelta(hours=hours), tick=False):
                result = _deliver(session, sub)
                assert result.error and not result.disabled
        with time_machine.travel(start_at + timedelta(hours=24, minutes=1), tick=False):
            result = _deliver(session, sub)
        assert result.disabled
        session.refresh(sub)
        assert not sub.enabled and "failing for a day" in sub.disabled_reason
        assert session.scalars(select(Notification.title).where(Notification.kind == "webhook.disabled")).one() \
            == "Webhook hook was turned off: it failed for a day"
        assert session.scalar(select(OutboxMessage.subject).where(OutboxMessage.kind == "webhook.disabled"))
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.disabled")).one()
        assert event.actor_label == "system"
    endpoint.stop()


def test_slack_and_teams_get_readable_messages_with_a_link_and_the_next_step(scratch_app):
    slack, teams = start(Endpoint()), start(Endpoint())
    with scratch_app.app_context():
        session = get_session()
        subs = [_subscribe(session, slack, fmt="slack", name="slack", types=("offboarding.started",)),
                _subscribe(session, teams, fmt="teams", name="teams", types=("offboarding.started",))]
        assert slack.secret is None and teams.secret is None  # chat presets are not signed: their URL is the secret
        audit.record(session, "offboarding.started", target_type="offboarding", target_id=7, details={"items": 5})
        session.commit()
        for sub in subs:
            assert _deliver(session, sub).delivered == 1
    message = slack.bodies[0]
    assert message["text"].startswith("Offboarding started: ")
    section = message["blocks"][0]["text"]["text"]
    assert section.startswith("*Offboarding started*") and "_What to do:_ The owners of the checklist items" in section
    assert message["blocks"][1]["elements"][0]["url"] == f"{BASE}/offboarding/7"
    card = teams.bodies[0]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["actions"][0]["url"] == f"{BASE}/offboarding/7"
    assert card["content"]["body"][0]["text"] == "Offboarding started"
    slack.stop()
    teams.stop()


def test_a_reveals_webhook_never_carries_the_value(scratch_database_url, tmp_path):
    upgrade(scratch_database_url)
    instance = tmp_path / "unsealed"
    instance.mkdir()
    Keyring.generate().save(instance / "vault.key")
    app = create_app(app_config(instance, scratch_database_url))
    endpoint = start(Endpoint())
    with app.app_context():
        session = get_session()
        company = Company(app, session).account_team()
        ring = app.extensions["govern.keyring"]
        secret = company.add_secret("pw", ring, value="Very-Secret-Value-123!")
        company.commit()
        sub = _subscribe(session, endpoint, types=("secret.revealed",))
        reveal(session, actor=company.it.user, keyring=ring, secret=secret, reason="checking the login", mfa_fresh=True)
        session.commit()
        assert _deliver(session, sub).delivered == 1
    raw = json.dumps(endpoint.bodies)
    assert "Very-Secret-Value-123!" not in raw and endpoint.bodies[0]["type"] == "secret.revealed"
    assert endpoint.bodies[0]["data"]["link"].startswith(f"{BASE}/vault/secrets/")
    endpoint.stop()


def test_bad_endpoints_are_clear_errors_and_add_nothing(db):
    for data, field in [
        (SubscriptionInput("x", "http://hooks.example/x", "standard", ("grant.requested",)), "url"),
        (SubscriptionInput("x", "https://example.com/hook", "slack", ("grant.requested",)), "url"),
        (SubscriptionInput("x", "https://example.com/hook", "teams", ("grant.requested",)), "url"),
        (SubscriptionInput("x", "https://hooks.slack.com/services/T/B/X", "slack", ()), "event_types"),
        (SubscriptionInput("x", "https://hooks.slack.com/services/T/B/X", "slack", ("made.up",)), "event_types"),
        (SubscriptionInput("", "https://hooks.slack.com/services/T/B/X", "slack", ("grant.requested",)), "name"),
        (SubscriptionInput("x", "https://hooks.slack.com/services/T/B/X", "fax", ("grant.requested",)), "format"),
    ]:
        with pytest.raises(InvalidError) as caught:
            create_subscription(db, actor=None, data=data, box=BOX)
        assert field in caught.value.reasons, data
    assert db.scalar(select(WebhookSubscription.id)) is None
    sub, secret = create_subscription(db, actor=None, box=BOX, data=SubscriptionInput(
        "ok", "https://hooks.slack.com/services/T000/B000/XXXXsecretpart", "slack", ("grant.requested",)))
    assert secret is None and sub.url_hint == "https://hooks.slack.com/…part" and b"XXXX" not in sub.url_sealed
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.subscribed")).one()
    assert "secretpart" not in event.details_json
