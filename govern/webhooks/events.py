"""The event types a webhook can subscribe to, the audit actions behind each, and what a person should
do about one. The audit trail is the outbox: an event exists exactly when its change was committed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    """A webhook event type: its label, the audit actions that raise it, and the next step for a person."""

    code: str
    label: str
    actions: tuple[str, ...]
    to_do: str


EVENT_TYPES: dict[str, EventType] = {e.code: e for e in (
    EventType("grant.requested", "Grant requested", ("grant.requested",),
              "A manager or admin approves or rejects it in govern (four-eyes)."),
    EventType("grant.approved", "Grant approved or granted", ("grant.approved", "grant.created"),
              "Add the person on the platform if govern cannot, then confirm it."),
    EventType("grant.revoked", "Grant revoked or expired", ("grant.revoked", "grant.expired"),
              "Remove the person on the platform and rotate what they could see."),
    EventType("secret.revealed", "Secret revealed", ("vault.revealed", "vault.totp_seed_revealed",
                                                     "rotation.staged_revealed"),
              "Nothing, if the reveal was expected; otherwise mark the account compromised."),
    EventType("rotation.due", "Rotation due", ("rotation.task_opened",), "IT rotates the credential and confirms it."),
    EventType("rotation.overdue", "Rotation overdue", ("rotation.overdue_reminded",),
              "IT rotates it now: it is past its due date."),
    EventType("rotation.confirmed", "Rotation confirmed", ("rotation.task_done", "vault.version_confirmed"),
              "Nothing: the new credential is in place."),
    EventType("account.locked", "Account locked", ("rotation.account_locked",),
              "Follow the incident: rotate every credential of the account, then unlock it."),
    EventType("incident.opened", "Incident opened", ("rotation.incident_notified",),
              "Check who had access and what changed on the platform."),
    EventType("incident.closed", "Incident closed", ("rotation.incident_closed",), "Nothing: the incident is closed."),
    EventType("offboarding.started", "Offboarding started", ("offboarding.started",),
              "The owners of the checklist items revoke access and rotate what the person could see."),
    EventType("offboarding.overdue", "Offboarding overdue", ("offboarding.escalated",),
              "Close the overdue checklist items: the person may still have access."),
    EventType("offboarding.completed", "Offboarding completed", ("offboarding.completed",),
              "Nothing: every item is done and the evidence is kept."),
    # Raised by the platform connectors' sync: a departed or unknown person holds access on the platform.
    EventType("drift.found", "Drift found (unmanaged access on a platform)", ("connectors.drift_found",),
              "Remove access that govern does not know of, or record it as a grant."),
    EventType("review.due", "Access review due", ("review.campaign_opened",),
              "Reviewers keep or revoke each access before the campaign's due date."),
)}

#: Audit action -> webhook event type.
TYPE_OF_ACTION: dict[str, str] = {action: e.code for e in EVENT_TYPES.values() for action in e.actions}


def actions_for(types: list[str]) -> list[str]:
    """Every audit action behind ``types``."""
    return sorted({action for code in types if code in EVENT_TYPES for action in EVENT_TYPES[code].actions})


#: Where a target's page is, by target type (a path inside govern).
_PAGES = {
    "grant": "/grants/", "secret": "/vault/secrets/{id}", "rotation_task": "/rotation/tasks/{id}",
    "account": "/accounts/{id}", "offboarding": "/offboarding/{id}", "review_campaign": "/reviews/{id}",
    "person": "/people/{id}",
}


def page_of(target_type: str | None, target_id: str | None) -> str:
    """The page a person opens for an event's target; the audit trail filtered on it otherwise."""
    template = _PAGES.get(target_type or "")
    if template and (target_id or "").isdigit():
        return template.format(id=target_id)
    return "/audit/"
