"""What an endpoint receives: a Standard Webhooks JSON payload, a Slack message, or a Teams card.

Built from the audit event only: its details never hold a secret value (the audit writer refuses
secret-like keys), and the payload carries the sentence a person reads, a link and the next step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from govern.audit.models import AuditEvent
from govern.webhooks.events import EVENT_TYPES, TYPE_OF_ACTION, page_of


def standard_payload(event: AuditEvent, sentence: str, base_url: str) -> dict[str, Any]:
    """{"type", "timestamp", "data"} as the Standard Webhooks specification shapes an event."""
    code = TYPE_OF_ACTION.get(event.action, event.action)
    return {
        "type": code,
        "timestamp": event.occurred_at.isoformat(),
        "data": {
            "event_id": event.id, "action": event.action, "actor": event.actor_label, "outcome": event.outcome,
            "target_type": event.target_type, "target_id": event.target_id, "sentence": sentence,
            "link": base_url + page_of(event.target_type, event.target_id),
            "to_do": EVENT_TYPES[code].to_do if code in EVENT_TYPES else None,
            "details": json.loads(event.details_json or "{}"), "audit_hash": event.hash,
        },
    }


def _title(code: str) -> str:
    return EVENT_TYPES[code].label if code in EVENT_TYPES else code


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: the sentence, the next step and a link, readable in a channel."""
    data = payload["data"]
    title = _title(payload["type"])
    lines = [f"*{title}*", data["sentence"]]
    if data.get("to_do"):
        lines.append(f"_What to do:_ {data['to_do']}")
    return {
        "text": f"{title}: {data['sentence']}",  # the notification's plain text
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(_slack_escape(line) for line in lines)}},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in govern"},
                                              "url": data["link"]}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(
                f"govern · {data['actor']} · event {data['event_id']}")}]},
        ],
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn: only &, < and > are escaped (so nobody's name can become a link or a mention).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Microsoft Teams message with an Adaptive Card (incoming webhooks and Workflows accept it)."""
    data = payload["data"]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _title(payload["type"]), "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": data["sentence"], "wrap": True},
    ]
    if data.get("to_do"):
        body.append({"type": "TextBlock", "text": f"What to do: {data['to_do']}", "wrap": True, "isSubtle": True})
    body.append({"type": "TextBlock", "text": f"govern · {data['actor']} · event {data['event_id']}", "size": "Small",
                 "isSubtle": True, "wrap": True})
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                    "version": "1.4", "body": body,
                    "actions": [{"type": "Action.OpenUrl", "title": "Open in govern", "url": data["link"]}]},
    }]}


def chat_message(fmt: str, title: str, body: str | None, link: str) -> dict[str, Any]:
    """A person's own notification, for their Slack or Teams channel."""
    payload = {"type": "notification", "data": {"sentence": body or title, "to_do": None, "link": link,
                                                "actor": "govern", "event_id": "-"}}
    message = teams_message(payload) if fmt == "teams" else slack_message(payload)
    if fmt == "slack":
        message["blocks"][0]["text"]["text"] = _slack_escape(f"*{title}*\n{body or ''}".strip())
        message["text"] = title
        message["blocks"].pop()  # no event footer for a personal notification
    else:
        message["attachments"][0]["content"]["body"][0]["text"] = title
        message["attachments"][0]["content"]["body"].pop()
    return message
