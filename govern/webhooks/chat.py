"""A person's own chat: their Slack or Teams incoming webhook, and the chat outbox's sender."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.models import User
from govern.config import base_url
from govern.crypto.secretbox import SecretBox
from govern.db import utcnow
from govern.errors import InvalidError
from govern.notifications.models import ChatChannel, ChatMessage
from govern.webhooks.delivery import TIMEOUT, DeliveryError, post
from govern.webhooks.payloads import chat_message
from govern.webhooks.subscriptions import check_url, url_hint

MAX_ATTEMPTS = 8
SEND_BATCH = 50


def _context(user_id: int) -> bytes:
    return f"chat_channel:{user_id}".encode()


def set_chat_channel(session: Session, *, actor: User, fmt: str, url: str, box: SecretBox,
                     allow_plain_loopback: bool = False) -> ChatChannel:
    """Point ``actor``'s chat notifications at their own Slack or Teams incoming webhook (sealed; audited)."""
    url = url.strip()
    if fmt not in ("slack", "teams"):
        raise InvalidError("Choose Slack or Microsoft Teams.", {"format": "Choose Slack or Microsoft Teams."})
    problem = check_url(url, fmt, allow_plain_loopback=allow_plain_loopback) if len(url) <= 2000 else "Too long."
    if problem:
        raise InvalidError(problem, {"url": problem})
    channel = session.get(ChatChannel, actor.id)
    if channel is None:
        channel = ChatChannel(user_id=actor.id, format=fmt, url_sealed=b"", url_hint="")
        session.add(channel)
    channel.format, channel.url_hint = fmt, url_hint(url)
    channel.url_sealed = box.seal(url.encode(), _context(actor.id))
    audit.record(session, "notifications.chat_set", actor=actor, target_type="user", target_id=actor.id,
                 details={"format": fmt, "endpoint": channel.url_hint})
    session.flush()
    return channel


def remove_chat_channel(session: Session, *, actor: User) -> None:
    channel = session.get(ChatChannel, actor.id)
    if channel is not None:
        session.delete(channel)
        audit.record(session, "notifications.chat_removed", actor=actor, target_type="user", target_id=actor.id,
                     details={"endpoint": channel.url_hint})
        session.flush()


def send_chat(session: Session, *, box: SecretBox, now: datetime | None = None) -> dict[str, int]:
    """Post due chat messages, each once its chat answered 2xx; retry with backoff, give up after 8 attempts."""
    now = now or utcnow()
    counts = {"sent": 0, "failed": 0, "gave_up": 0}
    due = session.execute(select(ChatMessage, ChatChannel).join(ChatChannel, ChatChannel.user_id == ChatMessage.user_id)
                          .where(ChatMessage.status == "pending", ChatMessage.next_attempt_at <= now)
                          .order_by(ChatMessage.id).limit(SEND_BATCH)).all()
    session.commit()
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        for message, channel in due:
            url = box.open(channel.url_sealed, _context(channel.user_id))[0].decode()
            body = chat_message(channel.format, message.title, message.body, base_url() + (message.link or "/"))
            try:
                post(client, url, json.dumps(body).encode(), {})
            except DeliveryError as exc:
                message.attempts += 1
                message.last_error = str(exc)[:1000]
                if message.attempts >= MAX_ATTEMPTS:
                    message.status = "failed"
                    counts["gave_up"] += 1
                else:
                    message.next_attempt_at = now + timedelta(minutes=2 ** message.attempts)
                    counts["failed"] += 1
            else:
                message.status, message.sent_at = "sent", utcnow()
                message.attempts += 1
                counts["sent"] += 1
            session.commit()
    return counts


def chat_channel_of(session: Session, user_id: int) -> ChatChannel | None:
    return session.get(ChatChannel, user_id)
