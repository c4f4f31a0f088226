"""The audit trail, newest first: what the audit page shows, filtered as it filters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Response
from pydantic import Field, model_validator

from govern.api import cursors
from govern.api.blueprint import answer_page, bp
from govern.api.schemas import Moment, Out, Paging
from govern.api.spec import endpoint, query_of
from govern.audit.models import AuditEvent
from govern.audit.services import AuditFilter, filtered_query
from govern.db import get_session

TAG = ["audit"]


class EventOut(Out):
    """An event as the audit page shows it (the hash chain and session references stay out)."""

    id: int
    occurred_at: datetime
    action: str
    outcome: str = Field(description="success, failure or denied.")
    actor_label: str = Field(description="The actor's email at the time, or system, cli.")
    target_type: str | None
    target_id: str | None
    ip: str | None
    details: dict[str, Any]


class EventList(Out):
    items: list[EventOut]
    next: str | None = Field(description="The URL of the next (older) page; null on the last.")


class EventsQuery(Paging):
    action: str | None = Field(None, max_length=80, description="An action, or the start of one (auth. for auth.*).")
    actor: str | None = Field(None, max_length=320, description="The actor's email (label), or their user id.")
    target_type: str | None = Field(None, max_length=40)
    target_id: str | None = Field(None, max_length=80)
    since: Moment | None = Field(None, description="Events at or after this moment (with a time zone).")
    until: Moment | None = Field(None, description="Events before this moment (with a time zone).")

    @model_validator(mode="after")
    def _ordered(self) -> EventsQuery:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("until is before since")
        return self


def _event_out(event: AuditEvent) -> EventOut:
    return EventOut(id=event.id, occurred_at=event.occurred_at, action=event.action, outcome=event.outcome,
                    actor_label=event.actor_label, target_type=event.target_type, target_id=event.target_id,
                    ip=event.ip, details=json.loads(event.details_json or "{}"))


@bp.get("/audit-events")
@endpoint(operation_id="listAuditEvents", permission_name="audit.read", scope="audit:read", tags=TAG,
          query=EventsQuery, responses={200: EventList})
def list_events() -> Response:
    """Audit events, newest first; the cursor walks to older ones."""
    args = query_of(EventsQuery)
    session = get_session()
    flt = AuditFilter(actor=args.actor or None, action=args.action or None, target_type=args.target_type or None,
                      target_id=args.target_id or None, since=args.since, until=args.until)
    statement = filtered_query(flt, action_range=session.get_bind().dialect.name == "postgresql")
    page = cursors.read_slice(session, statement, AuditEvent.id, cursor=args.cursor, limit=args.limit,
                              newest_first=True)
    return answer_page(EventList, [_event_out(e) for e in page.rows], page.next_cursor)
