"""The audit trail pages: who may see them, filters, keyset paging, query count, CSV export."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from govern import audit
from govern.audit.models import AuditEvent
from govern.audit.services import AuditContext
from tests.factories import append_events, csrf_token, login, make_user
from tests.sql_capture import sent

ROW_ID = re.compile(r'<tr>\s*<td class="muted"[^>]*>(\d+)</td>')
OLDER = re.compile(r'href="([^"]*)"[^>]*>Older')


def shown_ids(response) -> list[int]:
    """Event ids in the table of an audit page, top to bottom."""
    return [int(i) for i in ROW_ID.findall(response.get_data(as_text=True))]


def older_link(response) -> str | None:
    match = OLDER.search(response.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


@pytest.fixture
def auditor(client, db, kit):
    who = make_user(db, kit, roles=("auditor",))
    login(client, db, who)
    return who


# --- who may look ---------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("auditor",), ("admin",), ("it", "auditor")])
def test_auditors_and_admins_see_the_trail(client, db, kit, roles):
    who = make_user(db, kit, roles=roles)
    login(client, db, who)
    response = client.get("/audit/")
    assert response.status_code == 200
    assert "Audit trail" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("roles", [(), ("it",), ("manager",), ("hr",), ("it", "manager", "hr")])
def test_other_roles_are_refused_and_the_refusal_is_recorded(client, db, kit, roles):
    who = make_user(db, kit, roles=roles)
    login(client, db, who)
    append_events(db, 1, action="test.hidden", target_id="do-not-show")
    db.commit()
    response = client.get("/audit/")
    assert response.status_code == 403
    assert "do-not-show" not in response.get_data(as_text=True)
    denied = db.scalars(select(AuditEvent).where(AuditEvent.action == "authz.denied",
                                                 AuditEvent.actor_user_id == who.id)).all()
    assert [e.outcome for e in denied] == ["denied"]
    token = csrf_token(client, "/account")
    export = client.post("/audit/export", data={"csrf_token": token})
    assert export.status_code == 403 and export.mimetype != "text/csv"


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/audit/?action=auth")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login") and "next=" in location and "audit" in location
    assert client.post("/audit/export").status_code in (400, 401)


# --- filters --------------------------------------------------------------------------------------


def test_filter_by_action_prefix(client, db, auditor):
    wanted = append_events(db, 2, action="vault.secret.read") + append_events(db, 1, action="vault.secret.rotated")
    append_events(db, 1, action="vaultx.other")
    append_events(db, 1, action="vault.account.created")
    db.commit()
    assert shown_ids(client.get("/audit/?action=vault.secret")) == sorted(wanted, reverse=True)
    assert shown_ids(client.get("/audit/?action=vault_secret")) == []  # no LIKE wildcards


def test_filter_by_actor_email_or_id(client, db, auditor):
    alice = append_events(db, 2, action="test.actor", actor_label="alice@example.com", actor_user_id=901)
    bob = append_events(db, 1, action="test.actor", actor_label="bob@example.com", actor_user_id=902)
    db.commit()
    assert shown_ids(client.get("/audit/?actor=Alice@Example.COM")) == sorted(alice, reverse=True)
    assert shown_ids(client.get("/audit/?actor=902")) == bob
    assert shown_ids(client.get("/audit/?actor=nobody@example.com")) == []
    # Not a plain number: compared as a label, never a server error.
    for odd in ("²", "99999999999999999999999", "-1"):
        response = client.get("/audit/", query_string={"actor": odd})
        assert response.status_code == 200 and shown_ids(response) == [], odd


def test_filter_by_target(client, db, auditor):
    account_7 = append_events(db, 2, action="test.target", target_type="account", target_id="7")
    append_events(db, 1, action="test.target", target_type="account", target_id="8")
    append_events(db, 1, action="test.target", target_type="person", target_id="7")
    db.commit()
    assert shown_ids(client.get("/audit/?target_type=account&target_id=7")) == sorted(account_7, reverse=True)
    assert len(shown_ids(client.get("/audit/?action=test.target&target_type=account"))) == 3
    assert len(shown_ids(client.get("/audit/?action=test.target&target_id=7"))) == 3


def test_filter_by_dates_includes_the_whole_until_day(client, db, auditor):
    def at(*args: int) -> list[int]:
        return append_events(db, 1, action="test.dated", start=datetime(*args, tzinfo=UTC))

    before = at(2026, 2, 9, 23, 59, 59)
    first = at(2026, 2, 10, 0, 0, 0)
    middle = at(2026, 2, 12, 12, 0, 0)
    last = at(2026, 2, 14, 23, 59, 59, 999999)
    after = at(2026, 2, 15, 0, 0, 0)
    db.commit()
    window = client.get("/audit/?action=test.dated&since=2026-02-10&until=2026-02-14")
    assert shown_ids(window) == last + middle + first
    assert shown_ids(client.get("/audit/?action=test.dated&since=2026-02-15")) == after
    assert shown_ids(client.get("/audit/?action=test.dated&until=2026-02-09")) == before
    assert shown_ids(client.get("/audit/?action=test.dated&until=9999-12-31")) == after + last + middle + first + before
    page = window.get_data(as_text=True)
    assert 'value="2026-02-10"' in page and 'value="2026-02-14"' in page  # the form keeps the filter


@pytest.mark.parametrize("query", ["since=2026-13-45", "until=2026-02-30", "since=yesterday", "until=22.11.2026"])
def test_bad_dates_get_a_clear_message_not_an_error(client, db, auditor, query):
    append_events(db, 1, action="test.any")
    db.commit()
    response = client.get(f"/audit/?{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Use a date like 2026-11-22." in page
    assert shown_ids(response) == []


def test_bad_cursor_shows_the_first_page(client, db, auditor):
    ids = append_events(db, 3, action="test.cursor")
    db.commit()
    for before in ("abc", "99999999999999999999999", "-5"):
        response = client.get("/audit/", query_string={"action": "test.cursor", "before": before})
        assert response.status_code == 200 and shown_ids(response) == sorted(ids, reverse=True), before


# --- paging ---------------------------------------------------------------------------------------


def test_keyset_pages_are_newest_first_without_overlap_or_gap(client, db, auditor):
    append_events(db, 120, action="test.paged")
    db.commit()
    everything = db.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())).all()

    first = client.get("/audit/")
    assert shown_ids(first) == everything[:50]
    link = older_link(first)
    assert link is not None and f"before={everything[49]}" in link
    assert "Newest" not in first.get_data(as_text=True)

    seen = shown_ids(first)
    while link:
        page = client.get(link)
        assert page.status_code == 200 and "Newest" in page.get_data(as_text=True)
        ids = shown_ids(page)
        assert 0 < len(ids) <= 50
        seen += ids
        link = older_link(page)
    assert seen == everything  # every event exactly once, in order


def test_paging_keeps_the_filters(client, db, auditor):
    wanted = append_events(db, 30, action="test.keep")
    append_events(db, 40, action="test.noise")
    wanted += append_events(db, 30, action="test.keep")
    db.commit()
    first = client.get("/audit/?action=test.keep")
    link = older_link(first)
    assert link is not None and "action=test.keep" in link
    second = client.get(link)
    assert older_link(second) is None
    assert shown_ids(first) + shown_ids(second) == sorted(wanted, reverse=True)


def test_list_query_count_does_not_grow_with_the_table(client, db, auditor, connection):
    def queries_for(path: str) -> int:
        responses = []
        seen = sent(connection, lambda: responses.append(client.get(path)))
        assert responses[0].status_code == 200
        return len(seen)

    total = db.scalar(select(func.count()).select_from(AuditEvent))
    append_events(db, 3, action="test.counted", target_type="account", target_id="1")
    # The filler names an account too: the page loads the names of each kind of target once, so every
    # page compared here shows one kind (accounts), and only the number of events differs.
    append_events(db, max(0, 57 - total), action="test.filler", target_type="account", target_id="2")
    db.commit()
    paths = ("/audit/", "/audit/?action=test.counted", "/audit/?target_type=account&target_id=1")
    queries_for("/audit/")  # warm up
    at_60 = {path: queries_for(path) for path in paths}  # a full page, then pages of 3 events
    append_events(db, 240, action="test.counted", target_type="account", target_id="1")
    db.commit()
    at_300 = {path: queries_for(path) for path in paths}  # every page full: 50 events
    assert min(at_60.values()) > 0, "the listener counted nothing"
    assert at_300 == at_60


# --- CSV export -----------------------------------------------------------------------------------


def _export(client, **filters: str):
    token = csrf_token(client, "/audit/")
    return client.post("/audit/export", data={"csrf_token": token, **filters})


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_streams_only_the_filtered_events_and_is_recorded(client, db, auditor):
    wanted = append_events(db, 3, action="test.export.made", target_type="account", target_id="5")
    append_events(db, 2, action="test.export.made", target_type="account", target_id="6")
    append_events(db, 2, action="other.thing", target_type="account", target_id="5")
    db.commit()

    response = _export(client, action="test.export", target_id="5")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="govern-audit-\d{8}T\d{6}Z\.csv"', response.headers["Content-Disposition"])
    header, *rows = _csv_rows(response)
    assert header[:6] == ["id", "occurred_at", "actor_label", "actor_user_id", "ip", "action"]
    assert "hash" in header and "details_json" in header
    assert [int(r[0]) for r in rows] == sorted(wanted, reverse=True)
    stored = db.get(AuditEvent, wanted[0])
    first = dict(zip(header, rows[-1], strict=True))
    assert first["hash"] == stored.hash and first["occurred_at"] == stored.occurred_at.isoformat()

    exported = db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.exported")).all()
    assert len(exported) == 1
    assert exported[0].actor_user_id == auditor.id and exported[0].actor_label == auditor.email
    assert exported[0].details_json == '{"filter":{"action":"test.export","target_id":"5"}}'


def test_export_neutralises_spreadsheet_formulas(client, db, auditor):
    formulas = ["=HYPERLINK(\"http://evil.example\")", "+1+2", "-3+4", "@SUM(A1)"]
    for text in formulas:
        audit.record(db, "test.formula", target_type="account", target_id=text, details={"note": "=1+1"},
                     context=AuditContext(actor_label="=cmd|' /C calc'!A0"))
    db.commit()
    header, *rows = _csv_rows(_export(client, action="test.formula"))
    column = header.index("target_id")
    assert sorted(r[column] for r in rows) == sorted("'" + text for text in formulas)
    assert all(r[header.index("actor_label")] == "'=cmd|' /c calc'!a0" for r in rows)  # labels are stored lower-case
    assert all(r[header.index("details_json")] == '{"note":"=1+1"}' for r in rows)  # starts with "{"
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)


def test_export_needs_the_csrf_token(client, db, auditor):
    before = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "audit.exported"))
    response = client.post("/audit/export", data={"action": "test"})
    assert response.status_code == 400
    assert response.mimetype != "text/csv"
    wrong = client.post("/audit/export", data={"csrf_token": "not-the-token", "action": "test"})
    assert wrong.status_code == 400
    after = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "audit.exported"))
    assert after == before


def test_export_is_post_only(client, auditor):
    assert client.get("/audit/export").status_code == 405


def test_export_refuses_a_bad_filter(client, db, auditor):
    response = _export(client, since="2026-13-45")
    assert response.status_code == 400 and "since" in response.get_data(as_text=True)
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "audit.exported")) is None


def test_export_of_many_events_is_complete(client, db, auditor):
    # More than one batch of iter_events and more than one 64 KiB chunk of output.
    ids = append_events(db, 2_300, action="test.bulkexport", details_json='{"note":"' + "x" * 40 + '"}',
                        step=timedelta(milliseconds=1))
    db.commit()
    header, *rows = _csv_rows(_export(client, action="test.bulkexport"))
    assert [int(r[0]) for r in rows] == sorted(ids, reverse=True)
