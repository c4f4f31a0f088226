"""Access review pages: who may open, see, decide and close; the reviewer's flow; the CSV report."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.grants.models import Grant, PlatformRemoval
from govern.reviews import services
from govern.reviews.models import ReviewCampaign, ReviewItem
from tests.factories import csrf_token, make_user, post


def _campaign(db, company, **fields):
    args = {"name": "Q3 review", "scope_kind": "all", "scope_value": None, "due_at": company.due, **fields}
    campaign = services.open_campaign(db, actor=company.admin.user, **args)
    db.commit()
    return campaign


def _item(db, campaign, grant):
    return db.scalar(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id, ReviewItem.grant_id == grant.id))


def _due(days=14):
    return (utcnow() + timedelta(days=days)).date().isoformat()


def test_admins_open_a_campaign_through_the_form(app, db, company):
    client = company.client_for(company.admin)
    assert client.get("/reviews/new").status_code == 200
    response = post(client, "/reviews/new", {"name": "Q3 review", "scope_kind": "platform", "platform": "x", "department": "",
                                             "due_on": _due()}, token_page="/reviews/new")
    assert response.status_code == 302, response.get_data(as_text=True)
    campaign = db.scalar(select(ReviewCampaign))
    assert response.headers["Location"].endswith(f"/reviews/{campaign.id}")
    assert (campaign.scope_kind, campaign.scope_value, campaign.due_at.date().isoformat()) == ("platform", "x", _due())
    assert db.scalar(select(func.count()).select_from(ReviewItem)) == 2
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Campaign opened with 2 item(s)" in page and "Nobody (unassigned)" in page and "Bea Boss" in page
    assert client.get("/reviews/").get_data(as_text=True).count("Q3 review") == 1


@pytest.mark.parametrize("fields", [
    {"name": ""},
    {"due_on": ""},
    {"due_on": "2020-13-45"},
    {"due_on": "2001-01-01"},
    {"scope_kind": "galaxy"},
    {"scope_kind": "platform", "platform": ""},
    {"scope_kind": "platform", "platform": "myspace"},
    {"scope_kind": "platform", "platform": "tiktok"},
    {"scope_kind": "department", "department": ""},
    {"scope_kind": "department", "department": "Nowhere"},
    {"name": "n" * 300},
])
def test_bad_campaigns_are_shown_on_the_form(app, db, company, fields):
    client = company.client_for(company.admin)
    data = {"name": "Review", "scope_kind": "all", "platform": "", "department": "", "due_on": _due(), **fields}
    response = post(client, "/reviews/new", data, token_page="/reviews/new")
    assert response.status_code == 200
    assert 'class="error"' in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(ReviewCampaign)) == 0


@pytest.mark.parametrize("role", ["staff", "manager", "hr", "it"])
def test_only_admins_and_auditors_see_campaigns(app, db, company, kit, role):
    campaign = _campaign(db, company)
    who = make_user(db, kit, roles=() if role == "staff" else (role,))
    client = company.client_for(who)
    for path in ("/reviews/", "/reviews/new", f"/reviews/{campaign.id}", f"/reviews/{campaign.id}/report.csv"):
        assert client.get(path).status_code == 403, path
    assert post(client, f"/reviews/{campaign.id}/close", {}).status_code == 403
    assert post(client, "/reviews/new", {"name": "x", "scope_kind": "all", "due_on": _due()}).status_code == 403
    assert client.get("/reviews/mine").status_code == 200
    assert db.get(ReviewCampaign, campaign.id).closed_at is None


def test_the_reviewer_sees_items_on_home_and_keeps_one(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.olga)
    home = client.get("/").get_data(as_text=True)
    assert "Your open review items (2)" in home and "Sam Staff" in home and "Q3 review" in home
    mine = client.get("/reviews/mine").get_data(as_text=True)
    assert "Acme Instagram" in mine and "Acme LinkedIn" in mine and "Acme News" not in mine
    item = _item(db, campaign, company.sam_insta)
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "keep", "next": "/reviews/mine"}, token_page="/reviews/mine",
                    follow_redirects=True)
    assert "Kept: Sam Staff keeps Publisher on Acme Instagram." in response.get_data(as_text=True)
    db.expire_all()
    item = db.get(ReviewItem, item.id)
    assert item.decision == "keep" and item.decided_by_id == company.olga.id
    assert "Your open review items (1)" in client.get("/").get_data(as_text=True)


def test_the_reviewer_revokes_with_a_reason(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.olga)
    item = _item(db, campaign, company.sam_insta)
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "revoke", "reason": ""}, token_page="/reviews/mine",
                    follow_redirects=True)
    assert "Say why this access should be revoked." in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(ReviewItem, item.id).decision is None
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "revoke", "reason": "Moved to finance"},
                    token_page="/reviews/mine")
    assert response.status_code == 302 and response.headers["Location"].endswith("/reviews/mine")
    db.expire_all()
    grant = db.get(Grant, company.sam_insta.id)
    assert grant.status == "revoked" and "Moved to finance" in grant.revoke_reason
    assert db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == grant.id)) is not None
    assert db.get(ReviewItem, item.id).decision == "revoke"
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.action.in_(("grant.revoked", "review.item_decided")))).all()
    assert sorted(actions) == ["grant.revoked", "review.item_decided"]


def test_a_refused_revocation_shows_its_message_and_leaves_the_item_open(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.bea)
    item = _item(db, campaign, company.olga_insta)  # Olga is the only admin of @acme
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "revoke", "reason": "Not needed"},
                    token_page="/reviews/mine", follow_redirects=True)
    assert "is the last admin of Acme Instagram" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(ReviewItem, item.id).decision is None
    assert db.get(Grant, company.olga_insta.id).status == "active"
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review.item_decided")) == 0


@pytest.mark.parametrize("who", ["sam", "bea", "auditor"])
def test_someone_elses_item_is_404(app, db, company, who):
    campaign = _campaign(db, company)
    item = _item(db, campaign, company.sam_insta)  # Olga's to review
    client = company.client_for(getattr(company, who))
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "revoke", "reason": "x"}, token_page="/reviews/mine")
    assert response.status_code == 404
    db.expire_all()
    assert db.get(ReviewItem, item.id).decision is None and db.get(Grant, item.grant_id).status == "active"
    assert post(client, "/reviews/items/999999/decide", {"decision": "keep"}, token_page="/reviews/mine").status_code == 404


def test_an_admin_decides_unassigned_items_from_the_progress_page(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.admin)
    page = client.get(f"/reviews/{campaign.id}?reviewer=none").get_data(as_text=True)
    item = _item(db, campaign, company.nell_x)
    assert "Nell Nomanager" in page and f"/reviews/items/{item.id}/decide" in page
    next_path = f"/reviews/{campaign.id}?reviewer=none"
    response = post(client, f"/reviews/items/{item.id}/decide", {"decision": "keep", "next": next_path}, token_page=next_path)
    assert response.status_code == 302 and response.headers["Location"].endswith(next_path)
    db.expire_all()
    assert db.get(ReviewItem, item.id).decided_by_id == company.admin.id


def test_auditors_see_progress_but_get_no_decision_forms(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.auditor)
    page = client.get(f"/reviews/{campaign.id}").get_data(as_text=True)
    assert "/decide" not in page and "Olga Owner" in page and "0%" in page


def test_the_progress_page_counts_and_filters(app, db, company):
    campaign = _campaign(db, company)
    services.decide_item(db, actor=company.olga.user, item=_item(db, campaign, company.sam_insta), decision="keep", reason="")
    db.commit()
    client = company.client_for(company.auditor)
    page = client.get(f"/reviews/{campaign.id}").get_data(as_text=True)
    assert "20%" in page and "Items <span class=\"muted\">(5)" in page
    page = client.get(f"/reviews/{campaign.id}?decision=keep").get_data(as_text=True)
    assert "Items <span class=\"muted\">(1)" in page and "Sam Staff" in page
    page = client.get(f"/reviews/{campaign.id}?decision=open&platform=x").get_data(as_text=True)
    assert "Items <span class=\"muted\">(2)" in page
    page = client.get(f"/reviews/{campaign.id}?q=nell").get_data(as_text=True)
    assert "Items <span class=\"muted\">(1)" in page
    for query in ("decision=zzz", "reviewer=abc", "reviewer=99999999999999999999", "platform=zzz", "page=-1",
                  "page=99999999999999999999", "q=" + "%" * 300):
        assert client.get(f"/reviews/{campaign.id}?{query}").status_code == 200, query
    assert client.get("/reviews/999999").status_code == 404


def test_auditors_read_campaigns_but_neither_open_nor_close_them(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.auditor)
    index = client.get("/reviews/").get_data(as_text=True)
    assert "Q3 review" in index and "Open a campaign" not in index
    page = client.get(f"/reviews/{campaign.id}")
    assert page.status_code == 200 and "Close the campaign" not in page.get_data(as_text=True)
    assert client.get(f"/reviews/{campaign.id}/report.csv").status_code == 200
    assert "Access reviews" in client.get("/").get_data(as_text=True)
    assert client.get("/reviews/new").status_code == 403
    token = csrf_token(client, f"/reviews/{campaign.id}")
    assert post(client, f"/reviews/{campaign.id}/close", {"csrf_token": token}).status_code == 403
    assert post(client, "/reviews/new", {"csrf_token": token, "name": "Auditor's", "scope_kind": "all",
                                         "due_on": _due()}).status_code == 403
    db.expire_all()
    assert db.get(ReviewCampaign, campaign.id).closed_at is None
    assert db.scalar(select(func.count()).select_from(ReviewCampaign)) == 1
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "authz.denied", AuditEvent.actor_user_id == company.auditor.id)) == 3


def test_closing_marks_open_items_and_the_csv_reports_everything(app, db, company):
    campaign = _campaign(db, company)
    services.decide_item(db, actor=company.olga.user, item=_item(db, campaign, company.sam_insta), decision="revoke",
                         reason="=cmd|' /C calc'!A0")
    db.commit()
    client = company.client_for(company.admin)
    response = post(client, f"/reviews/{campaign.id}/close", {}, token_page=f"/reviews/{campaign.id}", follow_redirects=True)
    assert "4 open item(s) marked not reviewed" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(ReviewCampaign, campaign.id).closed_by_id == company.admin.id
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review.campaign_closed")) == 1
    response = post(client, f"/reviews/{campaign.id}/close", {}, token_page=f"/reviews/{campaign.id}", follow_redirects=True)
    assert "closed already" in response.get_data(as_text=True)
    response = client.get(f"/reviews/{campaign.id}/report.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 5
    by_person = {(r["person"], r["account"]): r for r in rows}
    revoked = by_person[("Sam Staff", "Acme Instagram")]
    assert (revoked["decision"], revoked["reviewer"], revoked["role"], revoked["platform"]) == ("revoke", "Olga Owner", "Publisher", "instagram")
    assert revoked["reason"] == "'=cmd|' /C calc'!A0" and revoked["decided_by"] == company.olga.email and revoked["decided_at"]
    assert by_person[("Nell Nomanager", "Acme News")]["reviewer"] == ""
    assert {r["decision"] for r in rows} == {"revoke", "not_reviewed"}
    # Nothing can be decided any more, and the reviewer's list is empty.
    olga = company.client_for(company.olga)
    assert "Nothing to review" in olga.get("/reviews/mine").get_data(as_text=True)
    item = _item(db, campaign, company.sam_linkedin)
    response = post(olga, f"/reviews/items/{item.id}/decide", {"decision": "keep"}, token_page="/reviews/mine", follow_redirects=True)
    assert "This campaign is closed" in response.get_data(as_text=True)


def test_an_open_campaign_csv_says_open(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.admin)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/reviews/{campaign.id}/report.csv").get_data(as_text=True))))
    assert {r["decision"] for r in rows} == {"open"}
    assert client.get("/reviews/999999/report.csv").status_code == 404


def test_decide_without_csrf_is_refused(app, db, company):
    campaign = _campaign(db, company)
    client = company.client_for(company.olga)
    item = _item(db, campaign, company.sam_insta)
    assert client.post(f"/reviews/items/{item.id}/decide", data={"decision": "keep"}).status_code == 400
    token = csrf_token(client, "/reviews/mine")
    response = client.post(f"/reviews/items/{item.id}/decide", data={"csrf_token": token, "decision": "keep", "reason": "r" * 3000})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(ReviewItem, item.id).decision is None
