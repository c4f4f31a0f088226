"""The audit trail for auditors and admins: filtered, keyset-paginated, exportable as CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user

from govern import activity, audit
from govern.audit.services import AuditFilter, iter_events, list_events
from govern.csvexport import csv_chunks
from govern.db import get_session
from govern.web import fresh_mfa_required, from_local, permission

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE_SIZE = 50
MAX_EVENT_ID = 2**63 - 1
CSV_COLUMNS = ("id", "occurred_at", "actor_label", "actor_user_id", "ip", "action", "target_type",
               "target_id", "outcome", "details_json", "session_ref", "request_id", "hash")


def _parse_date(raw: str | None, field: str, errors: dict[str, str]) -> datetime | None:
    if not raw:
        return None
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d")
    except ValueError:
        errors[field] = "Use a date like 2026-11-22."
        return None
    try:
        # A day where the reader is (their time zone), as the times on the page are shown.
        return from_local(day)
    except OverflowError:  # the first or last day there is, seen from a zone east or west of UTC
        return day.replace(tzinfo=UTC)


def _filter_from(args: Any) -> tuple[AuditFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    since = _parse_date(args.get("since"), "since", errors)
    until = _parse_date(args.get("until"), "until", errors)
    flt = AuditFilter(
        actor=(args.get("actor") or "")[:320] or None,
        action=(args.get("action") or "")[:80] or None,
        target_type=(args.get("target_type") or "")[:40] or None,
        target_id=(args.get("target_id") or "")[:80] or None,
        since=since,
        # "until" includes that whole day; the last representable day has no upper bound at all.
        until=until + timedelta(days=1) if until and until.date() < date.max else None,
    )
    return flt, errors


@bp.route("/")
@permission("audit.read")
def index() -> str:
    flt, errors = _filter_from(request.args)
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_EVENT_ID:
        before = None  # out of the id column's range: show the first page rather than fail
    events, next_cursor = ([], None) if errors else list_events(get_session(), flt, before_id=before, limit=PAGE_SIZE)
    params = {k: v for k, v in request.args.items() if k in {"actor", "action", "target_type", "target_id", "since", "until"} and v}
    return render_template("audit/index.html", events=events, sentences=activity.describe(get_session(), events),
                           next_cursor=next_cursor, errors=errors,
                           params=params, is_first_page=before is None)


@bp.route("/export", methods=["POST"])
@permission("audit.read")
@fresh_mfa_required
def export() -> Response:
    flt, errors = _filter_from(request.form)
    if errors:
        return Response("Bad filter: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), status=400, mimetype="text/plain")
    db = get_session()
    audit.record(db, "audit.exported", actor=current_user, details={
        "filter": {k: v for k, v in request.form.items() if k in {"actor", "action", "target_type", "target_id", "since", "until"} and v}
    })
    db.commit()

    def rows() -> Iterator[list[Any]]:
        # occurred_at keeps its microseconds: the export is evidence, not a summary.
        for event in iter_events(get_session(), flt):
            yield [getattr(event, c).isoformat() if c == "occurred_at" else getattr(event, c) for c in CSV_COLUMNS]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(stream_with_context(csv_chunks(CSV_COLUMNS, rows())), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="govern-audit-{stamp}.csv"'})
