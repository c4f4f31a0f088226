"""Delivering webhook events: each endpoint gets its events in order, each once it answered 2xx.

The audit trail is the outbox: an event exists exactly when the change it records was committed, so
nothing is sent for a change that was rolled back and nothing is lost for one that was kept. Each
endpoint has a cursor; a failure keeps it there and backs off (30 s doubling, at most an hour), so
the same event, with the same webhook-id, is tried again. An endpoint that fails for a whole day is
turned off, and the admins are told.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govern import audit, db_tuning
from govern.activity import describe
from govern.audit.models import AuditEvent
from govern.auth.users import active_users_with_roles
from govern.crypto.secretbox import SecretBox
from govern.db import rowcount, utcnow
from govern.notifications import services as notifications
from govern.shipping.transports import signature_headers
from govern.webhooks.events import actions_for
from govern.webhooks.models import WebhookSubscription
from govern.webhooks.payloads import slack_message, standard_payload, teams_message
from govern.webhooks.subscriptions import endpoint_of

log = logging.getLogger("govern.webhooks")

TIMEOUT = 10.0
MAX_BACKOFF = timedelta(hours=1)
#: An endpoint failing for this long is turned off.
DISABLE_AFTER = timedelta(days=1)
BATCH = 100


def backoff(failures: int) -> timedelta:
    return min(timedelta(seconds=30 * 2 ** max(failures - 1, 0)), MAX_BACKOFF)


class DeliveryError(Exception):
    """The endpoint did not take the event; the message is safe to show an admin (never the URL)."""


def post(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str]) -> None:
    try:
        response = client.post(url, content=body, headers={"content-type": "application/json",
                                                           "user-agent": "govern-webhooks", **headers})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"the endpoint is unreachable ({exc.__class__.__name__})") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"the endpoint answered {response.status_code} {response.reason_phrase}")


def message_for(sub: WebhookSubscription, payload: dict[str, Any], secret: bytes | None,
                message_id: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers an endpoint of ``sub``'s format receives."""
    if sub.format == "slack":
        return json.dumps(slack_message(payload)).encode(), {}
    if sub.format == "teams":
        return json.dumps(teams_message(payload)).encode(), {}
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return body, signature_headers(secret, body, message_id) if secret else {"webhook-id": message_id}


@dataclass
class DeliveryResult:
    name: str
    delivered: int = 0
    error: str | None = None
    disabled: bool = False
    skipped: str | None = None


def deliver_subscription(session: Session, sub_id: int, *, box: SecretBox, base_url: str, now: datetime | None = None,
                         client: httpx.Client | None = None, limit: int = BATCH,
                         should_stop: Callable[[], bool] = lambda: False) -> DeliveryResult:
    """Send one endpoint its next events, one POST each, moving its cursor after each 2xx."""
    now = now or utcnow()
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None:
        return DeliveryResult(str(sub_id), skipped="deleted")
    result = DeliveryResult(sub.name)
    if not sub.enabled or (sub.next_attempt_at is not None and sub.next_attempt_at > now):
        result.skipped = "disabled" if not sub.enabled else "backing off"
        return result
    actions = actions_for(sub.event_types)
    url, secret = endpoint_of(sub, box)
    cursor = sub.cursor
    with db_tuning.reading():
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.id > cursor, AuditEvent.action.in_(actions))
                                      .order_by(AuditEvent.id).limit(limit))) if actions else []
        sentences = describe(session, events)
        session.commit()  # nothing is held while the endpoint answers
    own = client is None
    channel = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        for event in events:
            if should_stop():
                break
            payload = standard_payload(event, sentences[event.id].text if event.id in sentences else event.action,
                                       base_url)
            body, headers = message_for(sub, payload, secret, f"msg_{sub.id}_{event.id}")
            try:
                post(channel, url, body, headers)
            except DeliveryError as exc:
                result.error = str(exc)
                result.disabled = _record_failure(session, sub_id, str(exc), now)
                return result
            moved = session.execute(update(WebhookSubscription).where(
                WebhookSubscription.id == sub_id, WebhookSubscription.cursor == cursor).values(
                cursor=event.id, delivered=WebhookSubscription.delivered + 1, failures=0, failing_since=None,
                next_attempt_at=None, last_error=None, last_success_at=utcnow()))
            session.commit()
            if rowcount(moved) == 0:
                result.skipped = "another runner delivered it"
                break
            cursor = event.id
            result.delivered += 1
    finally:
        if own:
            channel.close()
    return result


def _record_failure(session: Session, sub_id: int, error: str, now: datetime) -> bool:
    """Keep the cursor, back off; after a day of failures turn the endpoint off and tell the admins. Whether it was."""
    session.rollback()
    sub = session.get(WebhookSubscription, sub_id)
    assert sub is not None
    sub.failures += 1
    sub.failing_since = sub.failing_since or now
    sub.last_error = error[:1000]
    sub.next_attempt_at = now + backoff(sub.failures)
    disabled = now - sub.failing_since >= DISABLE_AFTER
    if disabled:
        sub.enabled = False
        sub.disabled_reason = f"turned off after failing for a day: {error}"[:300]
        audit.record(session, "webhook.disabled", target_type="webhook", target_id=sub.id,
                     details={"name": sub.name, "reason": "failing for a day", "failures": sub.failures,
                              "error_code": error[:200]})
        admins = active_users_with_roles(session, ["admin"])
        title = f"Webhook {sub.name} was turned off: it failed for a day"
        body = (f"govern could not deliver events to {sub.url_hint} since {sub.failing_since:%Y-%m-%d %H:%M} UTC "
                f"({sub.failures} attempts; last: {error}). Fix the endpoint, then turn the webhook on again: it "
                "resumes from the first event it missed.")
        notifications.notify(session, kind="webhook.disabled", title=title, body=body, users=admins, link="/admin/webhooks/")
        notifications.email_users(session, users=admins, kind="webhook.disabled", subject=title, body=body,
                                  link="/admin/webhooks/", dedupe_prefix=f"webhook-disabled:{sub.id}:{now:%Y%m%d%H%M}")
    session.commit()
    log.warning("webhook %s: %s (attempt %d)%s", sub.name, error, sub.failures, "; turned off" if disabled else "")
    return disabled


def deliver_all(session: Session, *, box: SecretBox, base_url: str, now: datetime | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> list[DeliveryResult]:
    ids = list(session.scalars(select(WebhookSubscription.id).where(WebhookSubscription.enabled.is_(True))
                               .order_by(WebhookSubscription.id)))
    session.commit()
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        return [deliver_subscription(session, sub_id, box=box, base_url=base_url, now=now, client=client,
                                     should_stop=should_stop) for sub_id in ids]


def send_test(session: Session, sub: WebhookSubscription, *, box: SecretBox, base_url: str) -> None:
    """POST a test event now (raises DeliveryError); nothing is recorded but the audit event of the test."""
    url, secret = endpoint_of(sub, box)
    payload = {"type": "webhook.test", "timestamp": utcnow().isoformat(),
               "data": {"event_id": 0, "action": "webhook.test", "actor": "govern", "outcome": "success",
                        "target_type": "webhook", "target_id": str(sub.id),
                        "sentence": f"A test from govern for the webhook {sub.name}.", "link": base_url + "/admin/webhooks/",
                        "to_do": "Nothing: if you read this, the webhook works.", "details": {}, "audit_hash": None}}
    body, headers = message_for(sub, payload, secret, f"msg_{sub.id}_test_{int(utcnow().timestamp())}")
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        post(client, url, body, headers)


def counts(results: list[DeliveryResult]) -> dict[str, int]:
    return {"endpoints": len(results), "delivered": sum(r.delivered for r in results),
            "failed": sum(1 for r in results if r.error), "turned_off": sum(1 for r in results if r.disabled)}
