"""Grants, accounts and offboardings through the API, under the pages' object-level rules."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.grants.models import Grant
from govern.offboarding.models import Offboarding
from tests.api.helpers import Api, personal_token


def _team(company):  # type: ignore[no-untyped-def]
    company.add_staff("admin", "hr", "it")
    company.add_user("manager", "manager")
    company.add_user("other_manager", "manager")
    company.add_user("report", manager=company.manager, full_name="Rita Report")
    company.add_person("other_report", manager=company.other_manager, full_name="Oscar Other")
    company.add_account("account", owner=company.manager, display_name="Acme Instagram")
    company.add_account("other_account", owner=company.other_manager, display_name="Other Instagram")
    company.add_grant("other_grant", company.other_report, company.other_account, "publisher")
    company.add_policies(accepted_by=[company.report, company.other_report])
    return company.commit()


def test_a_managers_token_cannot_see_or_change_another_managers_grants(app, db, company) -> None:
    team = _team(company)
    mine = Api(app, personal_token(db, team.manager, "grants:read", "grants:write"))
    listed = mine.get("/grants").json["items"]
    assert team.other_grant.id not in {g["id"] for g in listed}
    assert mine.get(f"/grants/{team.other_grant.id}").status_code == 404
    assert mine.post(f"/grants/{team.other_grant.id}/revoke", {"reason": "mine now"}).status_code == 404
    refused = mine.post("/grants", {"person_id": team.other_report.id, "account_id": team.other_account.id,
                                    "role_code": "analyst", "reason": "no"})
    assert refused.status_code == 403
    db.expire_all()
    assert team.other_grant.status == "active"


def test_four_eyes_through_the_api(app, db, company) -> None:
    team = _team(company)
    manager = Api(app, personal_token(db, team.manager, "grants:read", "grants:write"))
    made = manager.post("/grants", {"person_id": team.report.user.person_id, "account_id": team.account.id,
                                    "role_code": "owner", "reason": "holiday cover"},
                        headers={"Idempotency-Key": "grant-1"})
    assert made.status_code == 201, made.json
    assert made.json["status"] == "requested"
    grant_id = made.json["id"]
    assert manager.post(f"/grants/{grant_id}/approve", {}).status_code == 403  # who asked cannot approve
    admin = Api(app, personal_token(db, team.admin, "grants:read", "grants:write"))
    approved = admin.post(f"/grants/{grant_id}/approve", {"note": "ok"})
    assert approved.status_code == 200 and approved.json["status"] == "active"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "grant.approved"))
    assert event.actor_label == team.admin.email and event.session_ref and event.session_ref.startswith("token:")
    revoked = admin.post(f"/grants/{grant_id}/revoke", {"reason": "cover over"})
    assert revoked.status_code == 409  # the account's last owner: the pages' rule holds here too
    db.expire_all()
    assert db.get(Grant, grant_id).status == "active"


def test_a_staff_token_requests_for_itself(app, db, company) -> None:
    team = _team(company)
    report = Api(app, personal_token(db, team.report, "grants:write", "grants:read"))
    asked = report.post("/grants", {"account_id": team.account.id, "role_code": "analyst", "reason": "reports"})
    assert asked.status_code == 201 and asked.json["status"] == "requested"
    assert asked.json["person_id"] == team.report.user.person_id
    assert report.post(f"/grants/{asked.json['id']}/approve", {}).status_code == 403  # no grants.manage


def test_accounts_create_update_and_etag(app, db, company) -> None:
    team = _team(company)
    it = Api(app, personal_token(db, team.it, "accounts:read", "accounts:write"))
    made = it.post("/accounts", {"platform": "instagram", "handle": "@acme_news", "display_name": "Acme News"})
    assert made.status_code == 201, made.json
    path = f"/accounts/{made.json['id']}"
    etag = it.get(path).headers["ETag"]
    assert it.patch(path, {"display_name": "Acme Newsroom"}, headers={"If-Match": etag}).status_code == 200
    assert it.patch(path, {"display_name": "Stale"}, headers={"If-Match": etag}).status_code == 412
    assert it.patch(path, {"handle": None}).status_code == 422
    clash = it.post("/accounts", {"platform": "instagram", "handle": "acme_news", "display_name": "Again"})
    assert clash.status_code == 409 and clash.mimetype == "application/problem+json"
    manager = Api(app, personal_token(db, team.manager, "accounts:read"))
    assert {a["id"] for a in manager.get("/accounts").json["items"]} == {team.account.id}
    assert manager.get(f"/accounts/{team.other_account.id}").status_code == 404


def test_hr_offboards_through_the_api_and_reads_the_evidence(app, db, company) -> None:
    team = _team(company)
    hr = Api(app, personal_token(db, team.hr, "offboarding:read", "offboarding:write", "people:read"))
    started = hr.post("/offboardings", {"person_id": team.other_report.id}, headers={"Idempotency-Key": "leave-1"})
    assert started.status_code == 201, started.json
    body = started.json
    assert body["status"] == "in_progress" and body["progress"]["total"] >= 1
    db.expire_all()
    assert db.get(Grant, team.other_grant.id).status == "revoked"
    again = hr.post("/offboardings", {"person_id": team.other_report.id}, headers={"Idempotency-Key": "leave-1"})
    assert again.status_code == 201 and again.json["id"] == body["id"]
    assert len(db.scalars(select(Offboarding).where(Offboarding.person_id == team.other_report.id)).all()) == 1
    it = Api(app, personal_token(db, team.it, "offboarding:read", "offboarding:write"))
    removal = next(i for i in body["items"] if i["kind"] == "platform_removal")
    done = it.post(f"/offboardings/{body['id']}/items/{removal['id']}/complete", {"note": "Removed in Meta"})
    assert done.status_code == 200, done.json
    assert next(i for i in done.json["items"] if i["id"] == removal["id"])["status"] == "done"
    evidence = hr.get(f"/offboardings/{body['id']}/evidence")
    assert evidence.status_code == 200 and evidence.json["offboarding"]["id"] == body["id"]
    assert evidence.json["grants_before"] and evidence.json["items"]
    manager = Api(app, personal_token(db, team.manager, "offboarding:read"))
    assert manager.get(f"/offboardings/{body['id']}").status_code == 404


@pytest.mark.parametrize("moment", ["2030-01-01T09:00:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_moments_without_a_zone_or_past_the_calendar_in_utc_are_refused(app, db, company, moment) -> None:
    """A time without a zone is ambiguous, and a far offset at the calendar's ends does not exist in UTC: each
    is a 422 naming the field, and nothing changes (they reached the database and failed with a 500 before)."""
    team = _team(company)
    admin = Api(app, personal_token(db, team.admin, "grants:write", "offboarding:write", "audit:read", "accounts:read"))
    grants_before = db.scalar(select(func.count()).select_from(Grant))
    for path, body, field in (
            ("/grants", {"account_id": team.account.id, "role_code": "publisher", "reason": "cover",
                         "person_id": team.report.id, "expires_at": moment}, "expires_at"),
            ("/offboardings", {"person_id": team.report.id, "effective_at": moment}, "effective_at")):
        answer = admin.post(path, body)
        assert answer.status_code == 422, (path, answer.json)
        assert any(e["field"] == field for e in answer.json["errors"])
    for path in (f"/audit-events?since={quote(moment)}", f"/accounts/{team.account.id}/platform-members?at={quote(moment)}"):
        answer = admin.get(path)
        assert answer.status_code == 422, (path, answer.json)
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Grant)) == grants_before
    assert db.scalar(select(func.count()).select_from(Offboarding)) == 0
