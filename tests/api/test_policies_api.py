"""Policies through the API: the current versions, publishing, accepting, and who has not accepted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.policies.models import Acknowledgement
from tests.api.helpers import Api, personal_token
from tests.factories import accept_policy
from tests.sql_capture import statements

PROBLEM = "application/problem+json"


@pytest.fixture
def cast(company):  # type: ignore[no-untyped-def]
    """Standard and privileged policies; Olga (a manager) owns Instagram, where Sam publishes and Pat
    administers; Xavier holds a grant on another account; only Pat accepted anything (the standard)."""
    company.add_staff("admin", "hr", "auditor")
    company.add_user("olga", "manager", full_name="Olga Owner")
    company.add_user("sam", full_name="Sam Staff")
    company.add_person("pat", full_name="Pat Privileged")
    company.add_person("xavier", full_name="Xavier Elsewhere", department="Sales")
    company.add_account("insta", display_name="Acme Instagram", handle="acme", owner=company.olga)
    company.add_account("other", display_name="Other account", handle="other")
    company.add_grant("sam_insta", company.sam, company.insta, "publisher")
    company.add_grant("pat_insta", company.pat, company.insta, "admin")
    company.add_grant("xavier_other", company.xavier, company.other, "publisher")
    company.add_policies()
    accept_policy(company.db, company.pat, company.standard)
    return company.commit()


def test_the_current_versions_and_what_the_caller_must_accept(app, db, cast) -> None:
    sam = Api(app, personal_token(db, cast.sam, "policies:read"))
    listed = sam.get("/policies")
    assert listed.status_code == 200, listed.json
    tiers = {t["tier"]: t for t in listed.json["items"]}
    assert listed.json["items"][0]["tier"] == "standard"
    assert tiers["standard"]["current"]["id"] == cast.standard.id and tiers["standard"]["must_accept"] is True
    assert tiers["privileged"]["current"]["id"] == cast.privileged.id
    assert tiers["standard"]["accepted_at"] is None
    one = sam.get(f"/policies/{cast.standard.id}")
    assert one.status_code == 200 and one.json["is_current"] is True and one.json["body_markdown"]
    assert sam.get("/policies/999999").status_code == 404


def test_an_admin_publishes_and_accepts(app, db, cast) -> None:
    admin = Api(app, personal_token(db, cast.admin, "policies:read", "policies:write"))
    body = {"tier": "standard", "title": "Social media policy v2", "body_markdown": "# Rules\n\nBe kind."}
    published = admin.post("/policies", body, headers={"Idempotency-Key": "publish-1"})
    assert published.status_code == 201, published.json
    assert published.json["version"] == cast.standard.version + 1 and published.json["is_current"] is True
    again = admin.post("/policies", body, headers={"Idempotency-Key": "publish-1"})
    assert again.status_code == 201 and again.json["id"] == published.json["id"]
    path = published.headers["Location"].removeprefix("/api/v1")
    assert admin.get(path).json["title"] == "Social media policy v2"
    assert admin.get(f"/policies/{cast.standard.id}").json["is_current"] is False
    accepted = admin.post(f"{path}/accept")
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["accepted_at"] is not None
    assert admin.post(f"{path}/accept").status_code == 200  # twice changes nothing
    assert db.scalar(select(Acknowledgement).where(Acknowledgement.person_id == cast.admin.user.person_id,
                                                   Acknowledgement.policy_version_id == published.json["id"]))
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.action.in_(("policy.published", "policy.accepted")))))
    assert sorted(e.action for e in events) == ["policy.accepted", "policy.published"]
    assert {e.actor_user_id for e in events} == {cast.admin.id}
    replaced = admin.post(f"/policies/{cast.standard.id}/accept")
    assert replaced.status_code == 409 and replaced.mimetype == PROBLEM  # an older version is not accepted
    assert admin.post("/policies/999999/accept").status_code == 404


@pytest.mark.parametrize("body", [
    {"tier": "Not A Tier", "title": "T", "body_markdown": "x"},
    {"tier": "standard", "title": "", "body_markdown": "x"},
    {"tier": "standard", "title": "T", "body_markdown": ""},
    {"tier": "standard", "title": "T"},
    {"tier": "standard", "title": "T", "body_markdown": "x", "extra": True},
])
def test_bad_versions_are_422_problems(app, db, cast, body) -> None:
    admin = Api(app, personal_token(db, cast.admin, "policies:write"))
    bad = admin.post("/policies", body)
    assert bad.status_code == 422 and bad.mimetype == PROBLEM, bad.json


def test_roles_and_scopes_are_both_needed(app, db, cast) -> None:
    reads = Api(app, personal_token(db, cast.admin, "policies:read"))
    refused = reads.post("/policies", {"tier": "standard", "title": "T", "body_markdown": "x"})
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    assert reads.post(f"/policies/{cast.standard.id}/accept").status_code == 403
    other_scope = Api(app, personal_token(db, cast.admin, "people:read"))
    assert other_scope.get("/policies").status_code == 403
    assert other_scope.get("/policies/unaccepted").status_code == 403
    sam = Api(app, personal_token(db, cast.sam, "policies:read"))
    assert sam.get("/policies/unaccepted").status_code == 403  # the report needs reports.read


def test_the_unaccepted_report_is_cursor_paged_and_filtered(app, db, cast) -> None:
    hr = Api(app, personal_token(db, cast.hr, "policies:read"))
    page = hr.get("/policies/unaccepted?limit=1")
    assert page.status_code == 200, page.json
    seen = [row["grant_id"] for row in page.json["items"]]
    while page.json["next"]:
        page = hr.client.get(page.json["next"], headers=hr.headers)
        seen += [row["grant_id"] for row in page.json["items"]]
    # Sam and Xavier (publisher: standard), Pat (admin: privileged, though Pat accepted the standard).
    assert sorted(seen) == seen and len(seen) == len(set(seen))
    assert set(seen) == {cast.sam_insta.id, cast.pat_insta.id, cast.xavier_other.id}
    every = {row["grant_id"]: row for row in hr.get("/policies/unaccepted").json["items"]}
    assert every[cast.pat_insta.id]["tier"] == "privileged" and every[cast.sam_insta.id]["tier"] == "standard"
    assert every[cast.sam_insta.id]["person_name"] == "Sam Staff"
    privileged = hr.get("/policies/unaccepted?tier=privileged").json["items"]
    assert [row["grant_id"] for row in privileged] == [cast.pat_insta.id]
    sales = hr.get("/policies/unaccepted?department=sales").json["items"]
    assert [row["grant_id"] for row in sales] == [cast.xavier_other.id]
    for bad in ("tier=Not%20A%20Tier", "tier=x", "limit=0", "colour=red"):
        answer = hr.get(f"/policies/unaccepted?{bad}")
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, bad


def test_a_manager_sees_their_accounts_only(app, db, cast) -> None:
    olga = Api(app, personal_token(db, cast.olga, "policies:read"))
    rows = olga.get("/policies/unaccepted").json["items"]
    assert {row["grant_id"] for row in rows} == {cast.sam_insta.id, cast.pat_insta.id}


def test_the_report_reads_the_same_statements_for_one_row_or_many(app, db, connection, cast) -> None:
    hr = Api(app, personal_token(db, cast.hr, "policies:read"))
    one = statements(connection, lambda: hr.get("/policies/unaccepted?limit=1"))
    many = statements(connection, lambda: hr.get("/policies/unaccepted?limit=200"))
    assert len(one) == len(many), many
