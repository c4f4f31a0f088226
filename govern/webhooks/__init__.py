"""Webhooks and chat: admins subscribe endpoints (signed Standard Webhooks, Slack, Teams) to event
types; users get their own notifications in their chat. The audit trail is the outbox."""
