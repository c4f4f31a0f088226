"""Access reviews through the API: campaigns, items, the reviewer's own items, decisions, closing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.grants.models import Grant
from govern.reviews.models import ReviewItem
from tests.api.helpers import Api, personal_token
from tests.sql_capture import statements

PROBLEM = "application/problem+json"


@pytest.fixture
def cast(company):  # type: ignore[no-untyped-def]
    """Olga owns Instagram (reviews Sam's grant); Bea is Olga's manager (reviews Olga's and Mo's grants);
    X has no owner, so Mo's grant goes to Mo's manager Bea and Nell's (no manager) to nobody."""
    company.add_staff("admin", "auditor", "hr")
    company.add_user("bea", "manager", full_name="Bea Boss")
    company.add_user("olga", "manager", full_name="Olga Owner", manager=company.bea)
    company.add_user("sam", full_name="Sam Staff", manager=company.olga)
    company.add_person("mo", full_name="Mo Member", manager=company.bea)
    company.add_person("nell", full_name="Nell Nomanager")
    company.add_account("insta", display_name="Acme Instagram", handle="acme", owner=company.olga)
    company.add_account("x", display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news")
    company.add_grant("sam_insta", company.sam, company.insta, "publisher")
    company.add_grant("olga_insta", company.olga, company.insta, "admin")
    company.add_grant("mo_x", company.mo, company.x, "analyst")
    company.add_grant("nell_x", company.nell, company.x, "admin")
    return company.commit()


def _due(days: int = 14) -> str:
    return (utcnow() + timedelta(days=days)).isoformat()


def _open(api: Api, **fields: object) -> dict:  # type: ignore[type-arg]
    response = api.post("/reviews", {"name": "Q4 review", "scope_kind": "all", "due_at": _due(), **fields})
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def _walk(api: Api, path: str) -> list[int]:
    page = api.get(path)
    assert page.status_code == 200, page.json
    seen = [row["id"] for row in page.json["items"]]
    while page.json["next"]:
        page = api.client.get(page.json["next"], headers=api.headers)
        seen += [row["id"] for row in page.json["items"]]
    return seen


def test_an_admin_opens_a_campaign_and_reads_its_progress(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    body = {"name": "Q4 review", "scope_kind": "all", "due_at": _due()}
    first = admin.post("/reviews", body, headers={"Idempotency-Key": "campaign-1"})
    assert first.status_code == 201, first.json
    assert first.json["progress"] == {"total": 4, "open": 4, "keep": 0, "revoke": 0, "not_reviewed": 0, "percent": 0}
    loads = {r["reviewer_id"]: r["total"] for r in first.json["reviewers"]}
    assert loads == {cast.olga.user.person_id: 1, cast.bea.user.person_id: 2, None: 1}
    replayed = admin.post("/reviews", body, headers={"Idempotency-Key": "campaign-1"})
    assert replayed.status_code == 201 and replayed.json["id"] == first.json["id"]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    other = admin.post("/reviews", {"name": "Other", "scope_kind": "all", "due_at": _due()},
                       headers={"Idempotency-Key": "campaign-1"})
    assert other.status_code == 422 and other.json["type"] == "urn:govern:problem:idempotency-key-reused"
    path = first.headers["Location"].removeprefix("/api/v1")
    assert admin.get(path).json["name"] == "Q4 review"
    listed = admin.get("/reviews").json["items"]
    assert [c["id"] for c in listed] == [first.json["id"]] and listed[0]["progress"]["total"] == 4
    assert admin.get("/reviews?status=closed").json["items"] == []
    opened = db.scalar(select(AuditEvent).where(AuditEvent.action == "review.campaign_opened"))
    assert opened is not None and opened.actor_user_id == cast.admin.id


def test_a_platform_campaign_covers_that_platform_only(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:write"))
    assert _open(admin, scope_kind="platform", platform="x")["progress"]["total"] == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"due_at": "2030-01-01T00:00:00"}, "due_at"),  # no time zone
    ({"due_at": (utcnow() - timedelta(days=1)).isoformat()}, "due_at"),  # the service: in the past
    ({"scope_kind": "platform"}, "platform"),  # the service: which platform?
    ({"scope_kind": "platform", "platform": "myspace"}, "platform"),
    ({"scope_kind": "everything"}, "scope_kind"),
    ({"name": ""}, "name"),
    ({"extra": 1}, "extra"),
])
def test_bad_campaigns_are_422_problems(app, db, cast, fields, field) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    bad = admin.post("/reviews", {"name": "Q4", "scope_kind": "all", "due_at": _due(), **fields})
    assert bad.status_code == 422 and bad.mimetype == PROBLEM, bad.json
    assert field in {e["field"] for e in bad.json["errors"]}
    assert admin.get("/reviews").json["items"] == []


def test_roles_and_scopes_are_both_needed(app, db, cast) -> None:
    admin_reads = Api(app, personal_token(db, cast.admin, "reviews:read"))
    refused = admin_reads.post("/reviews", {"name": "Q4", "scope_kind": "all", "due_at": _due()})
    assert refused.status_code == 403 and refused.mimetype == PROBLEM  # the scope, though the role may
    admin_writes = Api(app, personal_token(db, cast.admin, "reviews:write"))
    assert admin_writes.get("/reviews").status_code == 403  # reading needs reviews:read
    auditor = Api(app, personal_token(db, cast.auditor, "reviews:read", "reviews:write"))
    assert auditor.get("/reviews").status_code == 200
    assert auditor.post("/reviews", {"name": "Q4", "scope_kind": "all", "due_at": _due()}).status_code == 403
    hr = Api(app, personal_token(db, cast.hr, "reviews:write"))
    assert hr.get("/reviews").status_code == 403  # HR's role does not read campaigns
    campaign = _open(admin_writes)
    assert auditor.post(f"/reviews/{campaign['id']}/close").status_code == 403
    assert hr.get(f"/reviews/{campaign['id']}/items").status_code == 403


def test_items_are_cursor_paged_and_filtered(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    campaign = _open(admin)
    items = f"/reviews/{campaign['id']}/items"
    seen = _walk(admin, f"{items}?limit=1")
    assert len(seen) == 4 and len(set(seen)) == 4 and seen == sorted(seen)
    every = admin.get(items).json["items"]
    sam = next(i for i in every if i["grant_id"] == cast.sam_insta.id)
    assert sam["person_name"] == "Sam Staff" and sam["reviewer_name"] == "Olga Owner" and sam["decision"] is None
    assert sam["account_name"] == "Acme Instagram" and sam["platform"] == "instagram" and sam["role_code"] == "publisher"

    def grants(query: str) -> set[int]:
        answer = admin.get(f"{items}?{query}")
        assert answer.status_code == 200, answer.json
        return {i["grant_id"] for i in answer.json["items"]}

    assert grants("platform=x") == {cast.mo_x.id, cast.nell_x.id}
    assert grants("reviewer=none") == {cast.nell_x.id}
    assert grants(f"reviewer={cast.bea.user.person_id}") == {cast.olga_insta.id, cast.mo_x.id}
    assert grants("q=sam") == {cast.sam_insta.id}
    assert grants("decision=open") == {cast.sam_insta.id, cast.olga_insta.id, cast.mo_x.id, cast.nell_x.id}
    assert grants("decision=keep") == set()
    for bad in ("decision=maybe", "reviewer=abc", "reviewer=0", "platform=myspace", "limit=0", "limit=201", "sort=id"):
        answer = admin.get(f"{items}?{bad}")
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, (bad, answer.status_code)
    assert admin.get(f"{items}?cursor=nope").status_code == 400
    assert admin.get("/reviews/999999/items").status_code == 404
    assert admin.get("/reviews/999999").status_code == 404


def test_campaigns_are_cursor_paged(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    made = [_open(admin, name=f"Review {n}")["id"] for n in range(3)]
    assert _walk(admin, "/reviews?limit=2") == made


def test_a_reviewer_lists_their_items_and_decides_them(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:write"))
    campaign = _open(admin)
    olga = Api(app, personal_token(db, cast.olga, "reviews:read", "reviews:write"))
    mine = olga.get("/review-items/mine")
    assert mine.status_code == 200, mine.json
    assert mine.json["total"] == 1 and mine.json["items"][0]["grant_id"] == cast.sam_insta.id
    item = mine.json["items"][0]
    assert item["campaign_name"] == "Q4 review" and item["person_name"] == "Sam Staff"
    kept = olga.post(f"/review-items/{item['id']}/decide", {"decision": "keep"})
    assert kept.status_code == 200, kept.json
    assert kept.json["decision"] == "keep" and kept.json["decided_by_id"] == cast.olga.id
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "review.item_decided",
                                               AuditEvent.target_id == str(item["id"])))
    assert event is not None and event.actor_user_id == cast.olga.id and event.actor_label == cast.olga.email
    assert olga.get("/review-items/mine").json == {"items": [], "total": 0}
    twice = olga.post(f"/review-items/{item['id']}/decide", {"decision": "revoke", "reason": "changed my mind"})
    assert twice.status_code == 409 and twice.mimetype == PROBLEM
    # Bea's items are not Olga's to decide: they do not exist for her.
    beas = db.scalar(select(ReviewItem.id).where(ReviewItem.campaign_id == campaign["id"],
                                                 ReviewItem.grant_id == cast.mo_x.id))
    assert olga.post(f"/review-items/{beas}/decide", {"decision": "keep"}).status_code == 404
    assert olga.post("/review-items/999999/decide", {"decision": "keep"}).status_code == 404


def test_a_revocation_needs_a_reason_and_revokes_the_grant(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:write"))
    _open(admin)
    bea = Api(app, personal_token(db, cast.bea, "reviews:read", "reviews:write"))
    item = next(i for i in bea.get("/review-items/mine").json["items"] if i["grant_id"] == cast.mo_x.id)
    no_reason = bea.post(f"/review-items/{item['id']}/decide", {"decision": "revoke"})
    assert no_reason.status_code == 422 and no_reason.json["errors"][0]["field"] == "reason"
    bad = bea.post(f"/review-items/{item['id']}/decide", {"decision": "maybe"})
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    revoked = bea.post(f"/review-items/{item['id']}/decide", {"decision": "revoke", "reason": "left the team"})
    assert revoked.status_code == 200 and revoked.json["decision"] == "revoke"
    db.expire_all()
    assert db.get(Grant, cast.mo_x.id).status == "revoked"


def test_the_decide_scope_and_the_mine_scope(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:write"))
    _open(admin)
    olga_reads = Api(app, personal_token(db, cast.olga, "reviews:read"))
    assert olga_reads.get("/review-items/mine").status_code == 200  # reading her items needs reviews:read
    item_id = db.scalar(select(ReviewItem.id).where(ReviewItem.grant_id == cast.sam_insta.id))
    assert olga_reads.post(f"/review-items/{item_id}/decide", {"decision": "keep"}).status_code == 403
    olga_decides = Api(app, personal_token(db, cast.olga, "reviews:write"))
    assert olga_decides.get("/review-items/mine").status_code == 403  # deciding needs reviews:write, not reading
    # An admin may decide any item, the unassigned ones too (as on the progress page).
    nobody = db.scalar(select(ReviewItem.id).where(ReviewItem.grant_id == cast.nell_x.id))
    assert admin.post(f"/review-items/{nobody}/decide", {"decision": "keep"}).status_code == 200


def test_closing_marks_open_items_and_ends_decisions(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    campaign = _open(admin)
    closed = admin.post(f"/reviews/{campaign['id']}/close")
    assert closed.status_code == 200, closed.json
    assert closed.json["closed_at"] and closed.json["closed_by_id"] == cast.admin.id
    assert closed.json["progress"]["not_reviewed"] == 4 and closed.json["progress"]["open"] == 0
    assert admin.post(f"/reviews/{campaign['id']}/close").status_code == 409
    assert admin.post("/reviews/999999/close").status_code == 404
    assert admin.get("/reviews?status=open").json["items"] == []
    olga = Api(app, personal_token(db, cast.olga, "reviews:read", "reviews:write"))
    assert olga.get("/review-items/mine").json["total"] == 0
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "review.campaign_closed"))
    assert event is not None and event.actor_user_id == cast.admin.id


def test_lists_read_the_same_statements_for_one_row_or_many(app, db, connection, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "reviews:read", "reviews:write"))
    campaign = _open(admin)
    _open(admin, name="Another")
    for path in ("/reviews", f"/reviews/{campaign['id']}/items"):
        one = statements(connection, lambda path=path: admin.get(f"{path}?limit=1"))
        many = statements(connection, lambda path=path: admin.get(f"{path}?limit=200"))
        assert len(one) == len(many), (path, many)
    # Olga has two items (one per campaign), Bea four; a list that is not full is not counted.
    olga = Api(app, personal_token(db, cast.olga, "reviews:read", "reviews:write"))
    bea = Api(app, personal_token(db, cast.bea, "reviews:read", "reviews:write"))
    assert len(olga.get("/review-items/mine").json["items"]) == 2
    assert len(bea.get("/review-items/mine").json["items"]) == 4
    assert len(statements(connection, lambda: olga.get("/review-items/mine"))) == \
        len(statements(connection, lambda: bea.get("/review-items/mine")))
