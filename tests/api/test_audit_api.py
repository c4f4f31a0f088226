"""The audit trail through the API: newest first, cursor paged, filtered as the page filters, no more shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from tests.api.helpers import Api, personal_token
from tests.factories import append_events

PROBLEM = "application/problem+json"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def cast(company):  # type: ignore[no-untyped-def]
    """Five test.alpha events by Ann (one a minute from START, on account 7 then 8), three test.beta by the system."""
    company.add_staff("admin", "auditor", "it")
    db = company.db
    company.alpha = append_events(db, 5, action="test.alpha", start=START, step=timedelta(minutes=1),
                                  actor_label="ann@example.com", actor_user_id=4242, target_type="account",
                                  target_id="7", details_json='{"note":"a"}')
    company.beta = append_events(db, 3, action="test.beta", start=START + timedelta(days=1), actor_label="system")
    return company.commit()


def _walk(api: Api, **query: Any) -> list[dict[str, Any]]:
    page = api.get(f"/audit-events?{urlencode(query)}")
    assert page.status_code == 200, page.json
    rows = list(page.json["items"])
    while page.json["next"]:
        page = api.client.get(page.json["next"], headers=api.headers)
        assert page.status_code == 200, page.json
        rows += page.json["items"]
    return rows


def test_newest_first_and_the_cursor_walks_every_event_once(app, db, cast) -> None:
    auditor = Api(app, personal_token(db, cast.auditor, "audit:read"))
    first = auditor.get("/audit-events?limit=3")
    assert first.status_code == 200 and first.headers["Link"].endswith('rel="next"')
    rows = _walk(auditor, limit=3)
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
    total = db.scalar(select(func.count()).select_from(AuditEvent))
    assert len(ids) >= 8 and set(cast.alpha + cast.beta) <= set(ids)
    assert len(ids) <= total  # events written while walking (the token's use) may come on top, never twice
    alpha = next(row for row in rows if row["id"] == cast.alpha[0])
    assert alpha == {"id": cast.alpha[0], "occurred_at": "2026-01-01T00:00:00Z", "action": "test.alpha",
                     "outcome": "success", "actor_label": "ann@example.com", "target_type": "account",
                     "target_id": "7", "ip": None, "details": {"note": "a"}}
    # Exactly what the page shows: the chain's hashes, session references and request ids stay out.


def test_filters(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "audit:read"))

    def ids(**query: Any) -> list[int]:
        return [row["id"] for row in _walk(admin, **query)]

    assert ids(action="test.alpha") == cast.alpha[::-1]
    assert ids(action="test.", limit=2) == (cast.alpha + cast.beta)[::-1]  # an action prefix
    assert ids(actor="ann@example.com") == cast.alpha[::-1]
    assert ids(actor="ANN@example.com ") == cast.alpha[::-1]  # labels are stored lower-case, as the page finds them
    assert ids(actor="4242") == cast.alpha[::-1]  # a user id
    assert ids(target_type="account", target_id="7") == cast.alpha[::-1]
    assert ids(target_type="account", target_id="8") == []
    assert ids(action="test.", since=(START + timedelta(days=1)).isoformat()) == cast.beta[::-1]
    assert ids(action="test.", until=(START + timedelta(minutes=2)).isoformat()) == cast.alpha[1::-1]
    assert ids(action="test.", since="2026-01-01T00:01:00+00:00", until="2026-01-01T00:03:00Z") == cast.alpha[2:0:-1]
    # A moment in another zone is the same moment: 01:02 in Paris is 00:02 UTC.
    assert ids(action="test.alpha", since="2026-01-01T01:02:00+01:00") == cast.alpha[:1:-1]


@pytest.mark.parametrize("query", [
    {"since": "2026-01-01T00:00:00"},  # no time zone: which moment is it?
    {"since": "yesterday"},
    {"until": "2026-13-01T00:00:00Z"},
    {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    {"limit": "0"},
    {"limit": "many"},
    {"actor": "a" * 321},
    {"action": "x" * 81},
    {"target_id": "9" * 81},
    {"colour": "red"},
])
def test_a_bad_filter_is_a_422_problem(app, db, cast, query) -> None:
    auditor = Api(app, personal_token(db, cast.auditor, "audit:read"))
    answer = auditor.get(f"/audit-events?{urlencode(query)}")
    assert answer.status_code == 422 and answer.mimetype == PROBLEM, (query, answer.status_code)
    assert answer.json["errors"]


def test_a_bad_cursor_is_a_400_problem(app, db, cast) -> None:
    auditor = Api(app, personal_token(db, cast.auditor, "audit:read"))
    answer = auditor.get("/audit-events?cursor=bm90LWEtY3Vyc29y")
    assert answer.status_code == 400 and answer.mimetype == PROBLEM


def test_roles_and_scopes(app, db, cast) -> None:
    it = Api(app, personal_token(db, cast.it, "people:read"))
    assert it.get("/audit-events").status_code == 403  # IT does not read the trail (nor may it hold audit:read)
    auditor_elsewhere = Api(app, personal_token(db, cast.auditor, "people:read"))
    refused = auditor_elsewhere.get("/audit-events")
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    denied = db.scalar(select(AuditEvent).where(AuditEvent.action == "authz.denied")
                       .order_by(AuditEvent.id.desc()).limit(1))
    assert denied is not None and denied.actor_user_id == cast.auditor.id
