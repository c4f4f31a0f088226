"""The person picker's search endpoint (issue 16): who may ask, what it answers, how much."""

from __future__ import annotations

import pytest

from tests.directory.helpers import signed_in
from tests.factories import make_account, make_person


@pytest.fixture
def people(db):
    rows = [make_person(db, full_name=f"Zora Quill {n:02d}", email=f"zora.quill{n:02d}@example.com",
                        employee_id=f"ZQ{n:02d}", department="Comms") for n in range(12)]
    make_person(db, full_name="Zora Quillgone", email="gone@example.com", status="departed")
    db.commit()
    return rows


@pytest.mark.parametrize("role", ["admin", "hr", "it", "manager"])
def test_roles_that_pick_people_get_the_first_matches_by_name(app, db, kit, people, role):
    _, client = signed_in(app, db, kit, role)
    response = client.get("/people/pick?q=quill")
    assert response.status_code == 200 and response.is_json
    data = response.get_json()
    assert [p["name"] for p in data["people"]] == [f"Zora Quill {n:02d}" for n in range(10)]
    assert data["more"] is True
    assert set(data["people"][0]) == {"id", "name", "email", "employee_id", "department"}
    assert response.headers["Cache-Control"] == "no-store"


def test_the_search_matches_email_and_employee_id_and_only_active_people(app, db, kit, people):
    _, client = signed_in(app, db, kit, "manager")
    assert [p["email"] for p in client.get("/people/pick?q=zq07").get_json()["people"]] == ["zora.quill07@example.com"]
    assert [p["name"] for p in client.get("/people/pick?q=quill03@").get_json()["people"]] == ["Zora Quill 03"]
    assert client.get("/people/pick?q=gone@").get_json() == {"people": [], "more": False}


@pytest.mark.parametrize("query", ["", "q=", "q=z", "q=%25%25", "q=" + "x" * 5000, "q=%ff%fe"])
def test_short_or_odd_fragments_answer_nothing_or_little_never_an_error(app, db, kit, people, query):
    _, client = signed_in(app, db, kit, "hr")
    response = client.get("/people/pick?" + query)
    assert response.status_code == 200
    assert len(response.get_json()["people"]) <= 10


def test_staff_and_auditors_and_anonymous_visitors_may_not_search(app, db, kit, people):
    for role in ((), ("auditor",)):
        _, client = signed_in(app, db, kit, *role)
        assert client.get("/people/pick?q=quill").status_code == 403
    anonymous = app.test_client().get("/people/pick?q=quill")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_every_form_that_picks_a_person_wires_the_picker(app, db, kit):
    _, client = signed_in(app, db, kit, "admin")
    account = make_account(db)
    db.commit()
    for path in ("/people/", f"/grants/new?account_id={account.id}", "/offboarding/new", "/accounts/new", "/people/new"):
        html = client.get(path).get_data(as_text=True)
        assert 'data-person-picker="/people/pick"' in html, path
        assert 'autocomplete="off"' in html, path


def test_the_people_filter_offers_the_picker_only_to_those_who_may_search(app, db, kit):
    _, auditor = signed_in(app, db, kit, "auditor")
    html = auditor.get("/people/").get_data(as_text=True)
    assert "data-person-picker" not in html and 'name="manager"' in html
