"""Webhook subscriptions an admin manages: validated, their URL and secret sealed, every change audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.models import AuditChainHead
from govern.audit.services import Actor
from govern.crypto.secretbox import SecretBox, derive_key
from govern.errors import InvalidError, NotFoundError
from govern.shipping.transports import new_signing_secret
from govern.webhooks.events import EVENT_TYPES
from govern.webhooks.models import WEBHOOK_FORMATS, WebhookSubscription

BOX_PURPOSE = "govern/webhooks.secret/v1"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
#: Hosts of the chat presets: a Slack or Teams format sends only there, so a typo cannot leak alerts.
SLACK_HOSTS = ("hooks.slack.com",)
TEAMS_HOST_SUFFIXES = (".webhook.office.com", ".logic.azure.com", ".powerplatform.com")


def webhook_box(secret_keys: Sequence[str]) -> SecretBox:
    """The box that seals endpoints' URLs and signing secrets (a key HKDF-derived from SECRET_KEY)."""
    return SecretBox([derive_key(key.encode(), BOX_PURPOSE) for key in secret_keys])


def _context(kind: str, row_id: int) -> bytes:
    return f"webhook:{kind}:{row_id}".encode()


def url_hint(url: str) -> str:
    """What a page may show of an endpoint's address: scheme, host, and its last 4 characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}"


def check_url(url: str, fmt: str, *, allow_plain_loopback: bool) -> str | None:
    """Why ``url`` is not an acceptable endpoint for ``fmt`` (None when it is)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback = host in _LOOPBACK
    if parts.scheme not in ("https", "http") or not host:
        return "Give the endpoint's address, starting with https://."
    if parts.scheme == "http" and not (loopback and allow_plain_loopback):
        return "The address must start with https:// (the events travel over TLS)."
    if parts.username or parts.password:
        return "Put no user name or password in the address."
    if loopback and allow_plain_loopback:
        return None  # tests and local trials
    if fmt == "slack" and host not in SLACK_HOSTS:
        return "A Slack incoming webhook's address starts with https://hooks.slack.com/."
    if fmt == "teams" and not host.endswith(TEAMS_HOST_SUFFIXES):
        return "A Teams webhook's address is on webhook.office.com, logic.azure.com or powerplatform.com."
    return None


@dataclass(frozen=True)
class SubscriptionInput:
    name: str
    url: str
    format: str
    event_types: tuple[str, ...]


def create_subscription(session: Session, *, actor: Actor | None, data: SubscriptionInput, box: SecretBox,
                        allow_plain_loopback: bool = False) -> tuple[WebhookSubscription, str | None]:
    """Subscribe an endpoint from now on (no backfill); returns it and, for a standard webhook, its secret (shown once)."""
    errors: dict[str, str] = {}
    name, url = data.name.strip(), data.url.strip()
    if not name or len(name) > 80:
        errors["name"] = "Give the endpoint a name of 1 to 80 characters."
    if data.format not in WEBHOOK_FORMATS:
        errors["format"] = "Choose a standard webhook, Slack or Microsoft Teams."
    elif len(url) > 2000:
        errors["url"] = "That address is too long."
    else:
        problem = check_url(url, data.format, allow_plain_loopback=allow_plain_loopback)
        if problem:
            errors["url"] = problem
    unknown = [t for t in data.event_types if t not in EVENT_TYPES]
    if not data.event_types or unknown:
        errors["event_types"] = "Choose at least one event." if not unknown else f"Unknown event types: {', '.join(unknown)}."
    if not errors and session.scalar(select(WebhookSubscription.id).where(WebhookSubscription.name == name)):
        errors["name"] = "An endpoint with that name exists already."
    if errors:
        raise InvalidError("The endpoint was not added: correct the fields below.", errors)
    head = session.scalar(select(AuditChainHead.last_event_id)) or 0
    sub = WebhookSubscription(name=name, format=data.format, url_sealed=b"", url_hint=url_hint(url),
                              event_types_json=json.dumps(sorted(set(data.event_types))), cursor=head,
                              created_by_id=actor.id if actor else None)
    session.add(sub)
    session.flush()
    sub.url_sealed = box.seal(url.encode(), _context("url", sub.id))
    secret = None
    if data.format == "standard":
        secret = new_signing_secret()
        sub.secret_sealed = box.seal(secret.encode(), _context("secret", sub.id))
    audit.record(session, "webhook.subscribed", actor=actor, target_type="webhook", target_id=sub.id,
                 details={"name": name, "format": data.format, "endpoint": sub.url_hint,
                          "event_types": sorted(set(data.event_types)), "starts_after_event": head})
    session.flush()
    return sub, secret


def endpoint_of(sub: WebhookSubscription, box: SecretBox) -> tuple[str, bytes | None]:
    """The endpoint's URL and its signing secret (None for Slack and Teams)."""
    url, _ = box.open(sub.url_sealed, _context("url", sub.id))
    secret = box.open(sub.secret_sealed, _context("secret", sub.id))[0] if sub.secret_sealed else None
    return url.decode(), secret


def get_subscription(session: Session, sub_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None:
        raise NotFoundError("No such webhook.")
    return sub


def set_enabled(session: Session, *, actor: Actor | None, sub_id: int, enabled: bool) -> WebhookSubscription:
    """Turn an endpoint off or on again; on again, it goes on from where it stopped and its failures are forgotten."""
    sub = get_subscription(session, sub_id)
    if sub.enabled == enabled:
        return sub
    sub.enabled = enabled
    if enabled:
        sub.failures, sub.failing_since, sub.next_attempt_at, sub.disabled_reason = 0, None, None, None
        audit.record(session, "webhook.enabled", actor=actor, target_type="webhook", target_id=sub.id,
                     details={"name": sub.name, "cursor": sub.cursor})
    else:
        sub.disabled_reason = "turned off by an admin"
        audit.record(session, "webhook.disabled", actor=actor, target_type="webhook", target_id=sub.id,
                     details={"name": sub.name, "reason": sub.disabled_reason})
    session.flush()
    return sub


def delete_subscription(session: Session, *, actor: Actor | None, sub_id: int) -> None:
    sub = get_subscription(session, sub_id)
    audit.record(session, "webhook.deleted", actor=actor, target_type="webhook", target_id=sub.id,
                 details={"name": sub.name, "endpoint": sub.url_hint})
    session.delete(sub)
    session.flush()


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.name)))
