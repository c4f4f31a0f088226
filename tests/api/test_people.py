"""People through the API: scope, object-level rules, create, ETag/If-Match, idempotency, problems."""

from __future__ import annotations

import pytest

from tests.api.helpers import Api, personal_token


@pytest.fixture
def staff(company):  # type: ignore[no-untyped-def]
    company.add_staff("hr", "it", "auditor")
    company.add_user("manager", "manager")
    company.add_user("other_manager", "manager")
    company.add_person("report", manager=company.manager, full_name="Rita Report")
    company.add_person("other_report", manager=company.other_manager, full_name="Oscar Other")
    return company.commit()


def test_list_and_get_within_scope(app, db, staff) -> None:
    hr = Api(app, personal_token(db, staff.hr, "people:read"))
    listed = hr.get("/people?limit=2")
    assert listed.status_code == 200, listed.json
    assert len(listed.json["items"]) == 2 and listed.json["next"]
    assert listed.headers["Link"].endswith('rel="next"')
    seen = [p["id"] for p in listed.json["items"]]
    while listed.json["next"]:
        listed = hr.client.get(listed.json["next"], headers=hr.headers)
        seen += [p["id"] for p in listed.json["items"]]
    assert len(seen) == len(set(seen)) >= 7 and seen == sorted(seen)


def test_a_managers_token_sees_only_their_people(app, db, staff) -> None:
    mine = Api(app, personal_token(db, staff.manager, "people:read"))
    ids = {p["id"] for p in mine.get("/people").json["items"]}
    assert staff.report.id in ids and staff.other_report.id not in ids
    assert mine.get(f"/people/{staff.other_report.id}").status_code == 404
    assert mine.get(f"/people/{staff.report.id}").status_code == 200


def test_create_update_with_etag_and_idempotency(app, db, staff) -> None:
    hr = Api(app, personal_token(db, staff.hr, "people:read", "people:write"))
    body = {"full_name": "Nina New", "email": "nina@example.com", "department": "Marketing"}
    first = hr.post("/people", body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.json
    again = hr.post("/people", body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201 and again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = hr.post("/people", {**body, "email": "x@example.com"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.mimetype == "application/problem+json"
    path = first.headers["Location"].removeprefix("/api/v1")
    read = hr.get(path)
    etag = read.headers["ETag"]
    changed = hr.patch(path, {"title": "Lead"}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json["title"] == "Lead"
    stale = hr.patch(path, {"title": "Other"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json["type"] == "urn:govern:problem:precondition-failed"


def test_bad_input_is_a_problem_and_changes_nothing(app, db, staff) -> None:
    hr = Api(app, personal_token(db, staff.hr, "people:read", "people:write"))
    bad = hr.post("/people", {"full_name": "", "email": "nope", "extra": 1})
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert {e["field"] for e in bad.json["errors"]} >= {"full_name", "extra"}
    worse = hr.post("/people", {"full_name": "A", "email": "not-an-email"})
    assert worse.status_code == 422 and worse.json["errors"][0]["field"] == "email"
    raw = hr.client.post("/api/v1/people", data="{", headers={**hr.headers, "Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.mimetype == "application/problem+json"
    assert hr.get("/people?cursor=zzz").status_code == 400
    assert hr.get("/nowhere").status_code == 404


def test_scope_caps_below_roles(app, db, staff) -> None:
    reader = Api(app, personal_token(db, staff.hr, "people:read"))
    refused = reader.post("/people", {"full_name": "X Y", "email": "xy@example.com"})
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    nobody = Api(app, "govp_" + "A" * 46)
    assert nobody.get("/people").status_code == 401
