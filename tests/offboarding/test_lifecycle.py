"""Every path that ends someone's employment ends their access: the person form, the HR import
(web and CLI), SCIM. Each starts (or schedules) the offboarding; none writes a status by itself.

The leaver invariants are checked after each of these tests by tests/conftest.py as well.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from govern.auth.models import User, WebSession
from govern.db import utcnow
from govern.directory.import_parse import parse_file
from govern.directory.import_plan import preview_import
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.offboarding import invariants
from govern.offboarding.lifecycle import import_people
from govern.offboarding.models import Offboarding
from govern.offboarding.settings import Settings, end_of_last_day
from govern.rotation.models import RotationTask
from tests.directory.helpers import csv_bytes
from tests.factories import login, make_person, offboard, post
from tests.offboarding.helpers import make_secrets
from tests.vault.conftest import keyring, ring  # noqa: F401 - fixtures


@pytest.fixture
def app_overrides(keyring: Any) -> dict[str, Any]:  # noqa: F811
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def leaver(app, db, company, ring):  # noqa: F811
    """Lea with her grants, a pending request, a live session, and passwords on her three accounts."""
    with app.test_request_context():
        made = make_secrets(db, company, ring)
    db.add(WebSession(id="s" * 64, public_id="p" * 32, user_id=company.lea.id, authenticated_at=utcnow()))
    db.commit()
    return made


def _offboardings(db, person_id):
    return list(db.scalars(select(Offboarding).where(Offboarding.person_id == person_id).order_by(Offboarding.id)))


def _assert_access_ended(db, company):
    """The start happened: login blocked, sessions gone, grants revoked, rotations open, leaving."""
    db.expire_all()
    person = db.get(Person, company.person.id)
    assert person.status == "leaving"
    assert db.get(User, company.lea.id).is_active is False
    assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == company.lea.id)) == 0
    statuses = sorted(db.scalars(select(Grant.status).where(Grant.person_id == person.id)))
    assert statuses == ["rejected", "revoked", "revoked", "revoked"]
    tasks = db.scalars(select(RotationTask)).all()
    assert len(tasks) == 3 and all(t.reason == "offboarding" and t.status == "open" for t in tasks)
    (run,) = _offboardings(db, person.id)
    assert run.status == "in_progress"
    assert invariants.find_violations(db) == []
    return run


# --- the person form ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["departed", "leaving"])
def test_hr_marking_someone_departed_or_leaving_on_their_page_starts_the_offboarding(app, db, company, leaver, status):
    client = app.test_client()
    login(client, db, company.users["hr"])
    page = f"/people/{company.person.id}/edit"
    form = {"full_name": company.person.full_name, "email": company.person.email, "employee_id": "", "department": "",
            "title": "", "manager": company.max.email, "status": status, "start_date": "", "end_date": ""}
    response = post(client, page, form, token_page=page)
    assert response.status_code == 302, response.get_data(as_text=True)
    run = _assert_access_ended(db, company)
    assert (run.origin, run.kind, run.created_by_id) == ("manual", "immediate", company.hr.id)
    assert f"Offboarding #{run.id} started" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_past_end_date_on_the_person_page_starts_it_and_a_future_one_schedules_it(app, db, company, leaver):
    client = app.test_client()
    login(client, db, company.users["hr"])
    page = f"/people/{company.person.id}/edit"
    form = {"full_name": company.person.full_name, "email": company.person.email, "employee_id": "", "department": "",
            "title": "", "manager": company.max.email, "status": "active", "start_date": "", "end_date": ""}
    later = (utcnow() + timedelta(days=20)).date()
    assert post(client, page, {**form, "end_date": later.isoformat()}, token_page=page).status_code == 302
    (scheduled,) = _offboardings(db, company.person.id)
    assert scheduled.status == "scheduled" and scheduled.effective_at == end_of_last_day(later, Settings())
    assert db.get(Person, company.person.id).status == "active"
    # The end date moves: the offboarding follows. Then it is yesterday: it starts now.
    sooner = later - timedelta(days=5)
    assert post(client, page, {**form, "end_date": sooner.isoformat()}, token_page=page).status_code == 302
    db.refresh(scheduled)
    assert scheduled.effective_at.date() == sooner
    yesterday = (utcnow() - timedelta(days=1)).date()
    assert post(client, page, {**form, "end_date": yesterday.isoformat()}, token_page=page).status_code == 302
    run = _assert_access_ended(db, company)
    assert run.id == scheduled.id and run.kind == "immediate"


def test_a_leaver_whose_offboarding_runs_cannot_be_rehired_on_their_page(app, db, company, leaver):
    client = app.test_client()
    login(client, db, company.users["hr"])
    page = f"/people/{company.person.id}/edit"
    form = {"full_name": company.person.full_name, "email": company.person.email, "employee_id": "", "department": "",
            "title": "", "manager": company.max.email, "status": "departed", "start_date": "", "end_date": ""}
    assert post(client, page, form, token_page=page).status_code == 302
    response = post(client, page, {**form, "status": "active", "title": "Back"}, token_page=page)
    assert response.status_code == 200 and "must finish before a rehire" in response.get_data(as_text=True)
    _assert_access_ended(db, company)
    assert db.get(Person, company.person.id).title is None


def test_hr_cannot_mark_themselves_departed_and_nothing_is_saved(app, db, company):
    client = app.test_client()
    hr = company.users["hr"]
    login(client, db, hr)
    page = f"/people/{hr.user.person_id}/edit"
    form = {"full_name": hr.user.person.full_name, "email": hr.email, "employee_id": "", "department": "",
            "title": "New title", "manager": "", "status": "departed", "start_date": "", "end_date": ""}
    response = post(client, page, form, token_page=page)
    assert response.status_code == 200 and "cannot offboard yourself" in response.get_data(as_text=True)
    db.expire_all()
    person = db.get(Person, hr.user.person_id)
    assert (person.status, person.title) == ("active", None)


def test_rehiring_on_the_person_page(app, db, company):
    client = app.test_client()
    login(client, db, company.users["hr"])
    gone = make_person(db, full_name="Greta Gone", email="greta@acme.example", status="departed")
    db.commit()
    page = f"/people/{gone.id}/edit"
    assert gone.end_date is not None  # the offboarding recorded the day she left; the form shows it
    form = {"full_name": "Greta Gone", "email": "greta@acme.example", "employee_id": "", "department": "",
            "title": "", "manager": "", "status": "active", "start_date": "", "end_date": gone.end_date.isoformat()}
    response = post(client, page, form, token_page=page)
    assert response.status_code == 302
    db.expire_all()
    assert (db.get(Person, gone.id).status, db.get(Person, gone.id).end_date) == ("active", None)
    assert [r.status for r in _offboardings(db, gone.id)] == ["completed"]
    assert "rehired" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_new_person_entered_as_departed_is_offboarded_with_nothing_to_take(app, db, company):
    client = app.test_client()
    login(client, db, company.users["hr"])
    form = {"full_name": "Old Timer", "email": "old@acme.example", "employee_id": "", "department": "", "title": "",
            "manager": "", "status": "departed", "start_date": "", "end_date": ""}
    assert post(client, "/people/new", form, token_page="/people/new").status_code == 302
    person = db.scalar(select(Person).where(Person.email == "old@acme.example"))
    (run,) = _offboardings(db, person.id)
    assert (person.status, run.status) == ("departed", "completed")


# --- the HR import -----------------------------------------------------------------------------------


def _row(company, status="", end=""):
    return [["", company.person.email, company.person.full_name, "", "", "", "", end, status]]


@pytest.mark.parametrize("status,end", [("Terminated", ""), ("Active", "2020-01-31"), ("Terminated", "2020-01-31"),
                                        ("Notice period", "")])
def test_an_import_row_saying_an_employee_left_starts_their_offboarding(app, db, company, leaver, status, end):
    parsed = parse_file(csv_bytes(_row(company, status, end)))
    assert preview_import(db, parsed).leavers == 1
    with app.test_request_context():
        report = import_people(db, parsed, actor=company.hr, settings=Settings())
    db.commit()
    assert report.offboardings_started == 1 and not report.offboarding_problems
    run = _assert_access_ended(db, company)
    assert run.origin == "import"
    # The same file again: nothing more happens, nothing is counted as a leaver.
    again = parse_file(csv_bytes(_row(company, status, end)))
    assert preview_import(db, again).leavers == 0
    with app.test_request_context():
        assert import_people(db, again, actor=company.hr, settings=Settings()).offboardings_started == 0
    db.commit()
    assert len(_offboardings(db, company.person.id)) == 1


def test_an_import_with_a_future_termination_date_schedules_it(app, db, company, leaver):
    day = (utcnow() + timedelta(days=9)).date()
    with app.test_request_context():
        report = import_people(db, parse_file(csv_bytes(_row(company, "Active", day.isoformat()))), actor=company.hr,
                              settings=Settings())
    db.commit()
    assert (report.offboardings_started, report.offboardings_scheduled) == (0, 1)
    (run,) = _offboardings(db, company.person.id)
    assert run.status == "scheduled" and run.effective_at == end_of_last_day(day, Settings())
    assert db.get(Person, company.person.id).status == "active"


def test_a_terminated_row_brings_a_scheduled_offboarding_forward(app, db, company, leaver):
    day = (utcnow() + timedelta(days=9)).date()
    with app.test_request_context():
        import_people(db, parse_file(csv_bytes(_row(company, "Active", day.isoformat()))), actor=company.hr,
                     settings=Settings())
        report = import_people(db, parse_file(csv_bytes(_row(company, "Terminated", day.isoformat()))),
                              actor=company.hr, settings=Settings())
    db.commit()
    assert report.offboardings_started == 1
    _assert_access_ended(db, company)


def test_an_active_row_never_rehires_a_leaver(app, db, company):
    gone = make_person(db, full_name="Greta Gone", email="greta@acme.example", status="departed")
    db.commit()
    with app.test_request_context():
        report = import_people(db, parse_file(csv_bytes([["", "greta@acme.example", "Greta Gone", "", "", "", "", "",
                                                          "Active"]])), actor=company.hr, settings=Settings())
    db.commit()
    assert report.offboarding_problems and "rehire them on their page" in report.offboarding_problems[0]
    db.expire_all()
    assert db.get(Person, gone.id).status == "departed"


# --- leavers made by the tests' factory -----------------------------------------------------------------


def test_the_factory_offboards_for_real(app, db):
    with app.test_request_context():
        leaving, departed = make_person(db, status="leaving"), make_person(db, status="departed")
    assert [r.status for r in _offboardings(db, leaving.id)] == ["in_progress"]
    assert [r.status for r in _offboardings(db, departed.id)] == ["completed"]
    with pytest.raises(AssertionError):
        offboard(db, make_person(db), "active")


# --- a leaver's login stays blocked ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["leaving", "departed"])
def test_a_leavers_login_cannot_be_reactivated_or_recovered(app, db, kit, status):
    from govern.auth import users as auth
    from govern.errors import ConflictError
    from tests.factories import make_user

    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit, roles=("admin",))
    with app.test_request_context():
        offboard(db, who.user.person, status)
        assert who.user.is_active is False
        with pytest.raises(ConflictError, match=f"is {status}"):
            auth.reactivate_user(db, actor=admin.user, user=who.user)
        with pytest.raises(ConflictError, match=f"is {status}"):
            auth.bootstrap_admin(db, kit, email=who.email)
    assert who.user.is_active is False


# --- a first HR import lists years of leavers ---------------------------------------------------------


def test_people_an_import_adds_as_already_gone_are_offboarded_in_bulk(app, db, connection):
    """A fixed number of statements for 2 or 40 newcomers who left years ago: each gets a completed
    offboarding (nothing to take: they did not exist) and is departed."""
    from govern.audit.models import AuditEvent
    from tests.sql_capture import sent

    def terminated(n, start):
        return parse_file(csv_bytes([[f"T{i}", f"t{i}@acme.example", f"Gone {i}", "", "", "", "", "2019-05-31",
                                      "Terminated"] for i in range(start, start + n)]))

    counts = []
    for n, start in ((1, 500), (2, 0), (40, 100)):  # the first is a warm-up (statements sent once per session)
        parsed = terminated(n, start)
        with app.test_request_context():
            statements = [s for s, _p in sent(connection, lambda parsed=parsed: import_people(db, parsed, actor=None,
                                                                                             settings=Settings()))]
        # The bulk INSERT ... RETURNING of the people (the importer's) and of their offboardings is
        # one statement, which SQLAlchemy may send in batches (it does row by row inside the tests'
        # savepoint on SQLite); everything else must not grow with the number of people.
        counts.append(len([s for s in statements if not s.startswith(("INSERT INTO people", "INSERT INTO offboardings"))]))
        assert sum(s.startswith("INSERT INTO offboardings") for s in statements) <= n
    assert counts[1] == counts[2], counts
    people = db.scalars(select(Person).where(Person.email.like("t%@acme.example"))).all()
    people = [p for p in people if p.email != "t500@acme.example"]
    assert len(people) == 42 and {p.status for p in people} == {"departed"}
    assert {str(p.end_date) for p in people} == {"2019-05-31"}
    runs = db.scalars(select(Offboarding).where(Offboarding.person_id.in_([p.id for p in people]))).all()
    assert len(runs) == 42 and {(r.status, r.origin, r.kind) for r in runs} == {("completed", "import", "immediate")}
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "offboarding.completed")) == 43


def test_a_newcomer_who_somehow_holds_something_goes_through_the_full_offboarding(app, db, company):
    from govern.offboarding.lifecycle import depart_newcomers

    fresh = make_person(db, full_name="Fresh")
    with app.test_request_context():
        held = depart_newcomers(db, actor=None, people={company.person.id: None, fresh.id: None}, settings=Settings(),
                                origin="import")
    assert held == [company.person.id]
    assert db.get(Person, company.person.id).status == "active" and db.get(Person, fresh.id).status == "departed"
