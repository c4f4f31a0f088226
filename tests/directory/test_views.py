"""Directory pages: permissions and scope, list filters and paging, query counts, forms, import."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.offboarding.models import Offboarding
from tests.directory.helpers import count_people, count_statements, csv_bytes, person, signed_in
from tests.factories import make_account, make_grant, make_person, make_user, post

PERSON_FORM = {"full_name": "Ada Lovelace", "email": "ada@acme.example", "employee_id": "E-1", "department": "Comms",
               "title": "Social lead", "manager": "", "status": "active", "start_date": "2024-01-15", "end_date": ""}


# --- permissions and scope ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "hr", "it", "auditor"])
def test_readers_see_everyone(app, db, kit, role):
    stranger = make_person(db, full_name="Stranger Danger")
    db.commit()
    _, client = signed_in(app, db, kit, role)
    assert "Stranger Danger" in client.get("/people/").get_data(as_text=True)
    assert client.get(f"/people/{stranger.id}").status_code == 200


@pytest.mark.parametrize("role,allowed", [("admin", True), ("hr", True), ("it", False), ("manager", False), ("auditor", False)])
def test_only_hr_and_admins_change_people(app, db, kit, role, allowed):
    target = make_person(db)
    db.commit()
    who, client = signed_in(app, db, kit, role)
    if role == "manager":
        target.manager_id = who.user.person_id
        db.commit()
    for path in ("/people/new", f"/people/{target.id}/edit", "/people/import"):
        assert client.get(path).status_code == (200 if allowed else 403), path
    response = post(client, "/people/new", PERSON_FORM, token_page="/people/")
    assert (response.status_code == 302) is allowed
    assert (person(db, "ada@acme.example") is not None) is allowed
    page = client.get(f"/people/{target.id}").get_data(as_text=True)
    assert (f"/people/{target.id}/edit" in page) is allowed


def test_staff_may_not_see_the_directory(app, db, kit):
    target = make_person(db)
    db.commit()
    _, client = signed_in(app, db, kit)
    assert client.get("/people/").status_code == 403
    assert client.get(f"/people/{target.id}").status_code == 403
    assert post(client, "/people/export.csv", {}).status_code == 403


def test_a_manager_sees_only_their_reports_and_themselves(app, db, kit):
    boss, client = signed_in(app, db, kit, "manager")
    report = make_person(db, full_name="Rita Report", manager_id=boss.user.person_id)
    grand = make_person(db, full_name="Gina Grandreport", manager_id=report.id)
    stranger = make_person(db, full_name="Stan Stranger")
    db.commit()
    page = client.get("/people/").get_data(as_text=True)
    assert "Rita Report" in page and boss.user.person.full_name in page
    assert "Stan Stranger" not in page and "Gina Grandreport" not in page
    assert "You see your direct reports and yourself" in page
    assert client.get(f"/people/{report.id}").status_code == 200
    assert client.get(f"/people/{boss.user.person_id}").status_code == 200
    assert client.get(f"/people/{stranger.id}").status_code == 404
    assert client.get(f"/people/{grand.id}").status_code == 404
    assert "Stan Stranger" not in client.get("/people/?q=stan").get_data(as_text=True)
    exported = post(client, "/people/export.csv", {}, token_page="/people/").get_data(as_text=True)
    assert "Rita Report" in exported and "Stan Stranger" not in exported


def test_a_manager_who_is_also_it_sees_everyone(app, db, kit):
    stranger = make_person(db)
    db.commit()
    _, client = signed_in(app, db, kit, "manager", "it")
    assert client.get(f"/people/{stranger.id}").status_code == 200


# --- the list ----------------------------------------------------------------------------------------


def test_search_filters_and_pagination(app, db, kit):
    boss = make_person(db, full_name="Zoe Boss", email="zoe@acme.example", employee_id="B-1")
    make_person(db, full_name="Ada Lovelace", email="ada@acme.example", employee_id="E-77", department="Comms", manager_id=boss.id)
    make_person(db, full_name="Grace Hopper", email="grace@acme.example", department="Engineering", status="leaving")
    for n in range(55):
        make_person(db, full_name=f"Member {n:02d}", email=f"member{n}@acme.example", department="Sales")
    db.commit()
    _, client = signed_in(app, db, kit, "hr")

    def names(query):
        page = client.get("/people/" + query).get_data(as_text=True)
        return re.findall(r'<a href="/people/\d+">([^<]+)</a>', page)

    assert names("?q=lovelace") == ["Ada Lovelace"]
    assert names("?q=E-77") == ["Ada Lovelace"]
    assert names("?q=GRACE%40acme") == ["Grace Hopper"]
    assert names("?department=Engineering") == ["Grace Hopper"]
    assert names("?status=leaving") == ["Grace Hopper"]
    assert names("?manager=zoe%40acme.example") == ["Ada Lovelace"]
    assert names("?manager=B-1") == ["Ada Lovelace"]
    page = client.get("/people/?manager=ghost%40acme.example").get_data(as_text=True)
    assert "No one has the email or employee id ghost@acme.example" in page
    first = names("?department=Sales")
    second = names("?department=Sales&page=2")
    assert len(first) == 50 and len(second) == 5 and not set(first) & set(second)
    assert "page=2" in client.get("/people/?department=Sales").get_data(as_text=True)
    assert "department=Sales" in client.get("/people/?department=Sales").get_data(as_text=True)


@pytest.mark.parametrize("query", ["?page=abc", "?page=-3", "?page=99999999999", "?status=bogus", "?q=" + "x" * 5000,
                                   "?q=%25%5F%5C", "?department=%E2%80%AE", "?manager=@", "?manager=" + "9" * 400])
def test_bad_list_parameters_never_fail(app, db, kit, query):
    _, client = signed_in(app, db, kit, "admin")
    assert client.get("/people/" + query).status_code == 200


def test_list_query_count_does_not_grow_with_people(app, db, kit, connection):
    _, client = signed_in(app, db, kit, "hr")
    managers = [make_person(db, full_name=f"Manager {n}") for n in range(5)]
    db.commit()

    for n in range(10):
        make_person(db, department=f"D{n % 3}", manager_id=managers[n % 5].id)
    db.commit()
    with_few = count_statements(connection, client, "/people/")
    for n in range(50):
        make_person(db, department=f"D{n % 3}", manager_id=managers[n % 5].id)
    db.commit()
    with_many = count_statements(connection, client, "/people/")
    assert with_many == with_few, (with_few, with_many)


def test_export_downloads_the_filtered_list_and_is_audited(app, db, kit):
    boss = make_person(db, email="boss@acme.example")
    make_person(db, full_name="=HYPERLINK(1)", email="evil@acme.example", department="Comms", manager_id=boss.id)
    make_person(db, full_name="Other", email="other@acme.example", department="Sales")
    db.commit()
    _, client = signed_in(app, db, kit, "auditor")
    response = post(client, "/people/export.csv", {"department": "Comms"}, token_page="/people/")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = body.strip().splitlines()
    assert lines[0].startswith("employee_id,email,full_name") and len(lines) == 2
    assert "'=HYPERLINK(1)" in lines[1] and "boss@acme.example" in lines[1]
    event_row = db.scalars(select(AuditEvent).where(AuditEvent.action == "directory.exported")).one()
    assert json.loads(event_row.details_json)["filter"] == {"department": "Comms"}


# --- the person page ---------------------------------------------------------------------------------


def test_person_page_shows_details_login_grants_and_reports(app, db, kit):
    approver = make_user(db, kit, roles=("admin",), full_name="Anne Approver")
    holder = make_user(db, kit, full_name="Harriet Holder", roles=("manager",))
    person_row = holder.user.person
    person_row.department, person_row.employee_id = "Comms", "E-42"
    make_person(db, full_name="Rory Report", manager_id=person_row.id)
    account = make_account(db, display_name="Acme Instagram")
    old = make_account(db, display_name="Acme TikTok")
    make_grant(db, person_row, account, approved_by_id=approver.id)
    make_grant(db, person_row, old, role_code="analyst", status="revoked", revoked_by_id=approver.id,
               revoke_reason="Campaign ended")
    db.commit()
    _, admin_client = signed_in(app, db, kit, "admin")
    page = admin_client.get(f"/people/{person_row.id}").get_data(as_text=True)
    for text in ("Harriet Holder", "E-42", "Comms", "Acme Instagram", "Acme TikTok", "Anne Approver", "Campaign ended",
                 "Rory Report", f"/admin/users/{holder.id}", "manager"):
        assert text in page, text
    assert 'id="exposures"' in page and "Harriet Holder has not seen any secret." in page
    assert "Offboarding of" not in page  # no offboarding section without an offboarding
    _, hr_client = signed_in(app, db, kit, "hr")
    hr_page = hr_client.get(f"/people/{person_row.id}").get_data(as_text=True)
    assert "Harriet Holder" in hr_page and f"/admin/users/{holder.id}" not in hr_page


def test_person_page_query_count_does_not_grow_with_grants(app, db, kit, connection):
    holder = make_person(db)
    approvers = [make_user(db, kit, roles=("admin",)) for _ in range(3)]
    db.commit()
    _, client = signed_in(app, db, kit, "hr")

    make_grant(db, holder, make_account(db), approved_by_id=approvers[0].id)
    make_person(db, manager_id=holder.id)
    db.commit()
    few = count_statements(connection, client, f"/people/{holder.id}")
    for n in range(12):
        make_grant(db, holder, make_account(db), status="revoked" if n % 2 else "active",
                   approved_by_id=approvers[n % 3].id, revoked_by_id=approvers[(n + 1) % 3].id if n % 2 else None)
        make_person(db, manager_id=holder.id)
    db.commit()
    assert count_statements(connection, client, f"/people/{holder.id}") == few


def test_unknown_person_is_404(app, db, kit):
    _, client = signed_in(app, db, kit, "admin")
    assert client.get("/people/999999").status_code == 404
    assert client.get("/people/999999/edit").status_code == 404
    assert post(client, "/people/999999/edit", PERSON_FORM, token_page="/people/").status_code == 404


# --- create and edit ---------------------------------------------------------------------------------


def test_hr_adds_and_edits_a_person(app, db, kit):
    boss = make_person(db, email="boss@acme.example", employee_id="B-1")
    db.commit()
    _, client = signed_in(app, db, kit, "hr")
    response = post(client, "/people/new", {**PERSON_FORM, "email": "Ada@ACME.example", "manager": "B-1"}, token_page="/people/new")
    assert response.status_code == 302
    ada = person(db, "ada@acme.example")
    assert (ada.manager_id, ada.employee_id, ada.source, str(ada.start_date)) == (boss.id, "E-1", "manual", "2024-01-15")
    assert response.headers["Location"].endswith(f"/people/{ada.id}")
    last_day = (utcnow() + timedelta(days=30)).date()
    response = post(client, f"/people/{ada.id}/edit", {**PERSON_FORM, "title": "Head of social", "status": "leaving",
                                                       "end_date": last_day.isoformat(), "manager": "boss@acme.example"},
                    token_page=f"/people/{ada.id}/edit")
    assert response.status_code == 302
    ada = person(db, "ada@acme.example")
    # Leaving on a future day: the offboarding is scheduled for that day, the person stays active until then.
    assert (ada.title, ada.status, ada.end_date) == ("Head of social", "active", last_day)
    scheduled = db.scalars(select(Offboarding).where(Offboarding.person_id == ada.id)).one()
    assert (scheduled.status, scheduled.origin, scheduled.effective_at.date()) == ("scheduled", "manual", last_day)
    assert "scheduled for" in client.get(response.headers["Location"]).get_data(as_text=True)
    updated = db.scalars(select(AuditEvent).where(AuditEvent.action == "person.updated")).one()
    details = json.loads(updated.details_json)
    assert details["fields"] == ["end_date", "title"]
    assert details["changes"]["title"] == {"old": "Social lead", "new": "Head of social"}
    edit_page = client.get(f"/people/{ada.id}/edit").get_data(as_text=True)
    assert 'value="boss@acme.example"' in edit_page and 'value="E-1"' in edit_page


@pytest.mark.parametrize("fields,message", [
    ({"email": "TAKEN@acme.example"}, "already has the email taken@acme.example"),
    ({"employee_id": "T-1"}, "already has the employee id T-1"),
    ({"email": "nope"}, "Enter a valid email address."),
    ({"full_name": ""}, "Enter the person&#39;s full name"),
    ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "The end date cannot be before the start date."),
    ({"start_date": "01/02/2026"}, "Not a valid date value."),
    ({"manager": "ghost@acme.example"}, "No one in the directory has the email or employee id ghost@acme.example."),
    ({"status": "retired"}, "Not a valid choice."),
])
def test_form_errors_are_shown_next_to_their_fields(app, db, kit, fields, message):
    make_person(db, email="taken@acme.example", employee_id="T-1")
    db.commit()
    _, client = signed_in(app, db, kit, "admin")
    people = count_people(db)
    response = post(client, "/people/new", {**PERSON_FORM, **fields}, token_page="/people/new")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert count_people(db) == people


def test_every_problem_of_a_form_is_shown_at_once(app, db, kit):
    make_person(db, email="taken@acme.example")
    db.commit()
    _, client = signed_in(app, db, kit, "hr")
    page = post(client, "/people/new", {**PERSON_FORM, "full_name": "", "email": "TAKEN@acme.example", "manager": "ghost",
                                        "start_date": "2026-02-01", "end_date": "2026-01-01"},
                token_page="/people/new").get_data(as_text=True)
    for message in ("full name", "already has the email", "No one in the directory", "cannot be before the start date"):
        assert message in page, message


def test_edit_refuses_self_management_and_cycles(app, db, kit):
    top = make_person(db, full_name="Top", email="top@acme.example")
    low = make_person(db, full_name="Low", email="low@acme.example", manager_id=top.id)
    db.commit()
    _, client = signed_in(app, db, kit, "hr")
    form = {**PERSON_FORM, "full_name": "Top", "email": "top@acme.example", "employee_id": ""}
    own = post(client, f"/people/{top.id}/edit", {**form, "manager": "top@acme.example"}, token_page="/people/")
    assert "cannot be their own manager" in own.get_data(as_text=True)
    loop = post(client, f"/people/{top.id}/edit", {**form, "manager": "low@acme.example"}, token_page="/people/")
    assert "management cycle" in loop.get_data(as_text=True)
    assert person(db, "top@acme.example").manager_id is None and person(db, "low@acme.example").manager_id == top.id
    assert low.id


# --- the import --------------------------------------------------------------------------------------


def _upload(client, content, filename="hr.csv"):
    return post(client, "/people/import", {"file": (io.BytesIO(content), filename)}, token_page="/people/import",
                content_type="multipart/form-data")


def _staged(app) -> list[Path]:
    return sorted((Path(app.instance_path) / "imports").glob("*.csv"))


def test_import_previews_then_applies_once(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    content = csv_bytes([["E1", "ann@acme.example", "Ann", "Comms", "Lead", "", "2024-01-01", "", "Active"],
                         ["E2", "ben@acme.example", "Ben", "Comms", "Editor", "ann@acme.example", "2024-01-01", "2026-12-31", "Active"]],
                        header=["Employee ID", "Work Email", "Name", "Department", "Title", "Manager Email",
                                "Hire Date", "Termination Date", "Status"])
    people = count_people(db)
    preview = _upload(client, content)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Import 2 new and 0 updated" in page
    assert count_people(db) == people
    staged = _staged(app)
    assert len(staged) == 1 and staged[0].stat().st_mode & 0o777 == 0o600
    assert staged[0].read_bytes() == content
    assert staged[0].stem not in page  # the server-side name never reaches the browser
    applied = post(client, "/people/import/apply", {}, token_page="/people/import")
    assert applied.status_code == 302 and applied.headers["Location"].endswith("/people/")
    assert count_people(db) == people + 2
    assert person(db, "ben@acme.example").manager_id == person(db, "ann@acme.example").id
    assert _staged(app) == []
    event_row = db.scalars(select(AuditEvent).where(AuditEvent.action == "directory.imported")).one()
    assert json.loads(event_row.details_json)["file_name"] == "hr.csv"
    assert "Imported hr.csv: 2 new" in client.get("/people/").get_data(as_text=True)
    again = post(client, "/people/import/apply", {}, token_page="/people/import")
    assert again.status_code == 302 and count_people(db) == people + 2
    second = _upload(client, content).get_data(as_text=True)
    # Kept for the mapping step only: there is nothing to import.
    assert "already matches this file" in second and "/people/import/apply" not in second and len(_staged(app)) == 1


def test_an_import_whose_only_news_is_a_termination_offboards_the_employee(app, db, kit):
    """Workday's "Worker Status: Terminated" for someone still active: the preview says so, the import offboards."""
    _, client = signed_in(app, db, kit, "hr")
    worker = make_user(db, kit, email="wanda@acme.example", full_name="Wanda Worker")
    account = make_account(db)
    make_grant(db, worker.user.person, account, "publisher")
    db.commit()
    content = csv_bytes([["W-7", "wanda@acme.example", "Wanda Worker", "", "", "", "", "", "Terminated"]],
                        header=["Employee ID", "Work Email", "Name", "Department", "Title",
                                "Manager Work Email", "Hire Date", "Termination Date", "Worker Status"])
    page = _upload(client, content).get_data(as_text=True)
    assert "Leavers" in page and "offboard 1" in page
    applied = post(client, "/people/import/apply", {}, token_page="/people/import")
    assert applied.status_code == 302
    assert "1 offboarding(s) started" in client.get("/people/").get_data(as_text=True)
    db.expire_all()
    wanda = person(db, "wanda@acme.example")
    assert wanda.status == "leaving" and db.get(type(worker.user), worker.id).is_active is False
    assert db.scalar(select(Offboarding.status).where(Offboarding.person_id == wanda.id)) == "in_progress"
    assert db.scalar(select(Grant.status).where(Grant.person_id == wanda.id)) == "revoked"


def test_import_with_errors_shows_them_and_offers_no_apply(app, db, kit):
    _, client = signed_in(app, db, kit, "admin")
    content = csv_bytes([["E1", "ann@acme.example", "Ann", "", "", "", "2024-13-01", "", ""],
                         ["E2", "not-an-email", "Ben", "", "", "", "", "", ""]])
    page = _upload(client, content).get_data(as_text=True)
    assert "Nothing can be imported while the file has errors" in page
    assert re.search(r"<td>2</td><td><code>start_date</code></td>", page)
    assert re.search(r"<td>3</td><td><code>email</code></td>", page)
    # Kept for the mapping step (mapping a column may fix a file), never importable as it is.
    assert "/people/import/apply" not in page and len(_staged(app)) == 1


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00\x00garbage", "Email,Name\r\nzoé@x.example,Zoé\r\n".encode("latin-1"),
                                     b"\x89PNG\r\n\x1a\n\x00\x00", b"a" * 300_000, b'"unterminated\r\n'])
def test_bad_uploads_get_messages_not_errors(app, db, kit, content):
    _, client = signed_in(app, db, kit, "hr")
    response = _upload(client, content, filename="../../etc/passwd")
    assert response.status_code == 200
    assert count_people(db) >= 0 and _staged(app) == []


def test_upload_without_a_file_and_apply_without_a_preview(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    response = post(client, "/people/import", {}, token_page="/people/import")
    assert response.status_code == 200 and "Choose the CSV file" in response.get_data(as_text=True)
    response = post(client, "/people/import/apply", {}, token_page="/people/import")
    assert response.status_code == 302
    assert "no previewed file" in client.get("/people/import").get_data(as_text=True)


def test_cancel_discards_the_staged_upload(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    _upload(client, csv_bytes([["E1", "ann@acme.example", "Ann", "", "", "", "", "", ""]]))
    assert len(_staged(app)) == 1
    assert post(client, "/people/import/cancel", {}, token_page="/people/import").status_code == 302
    assert _staged(app) == []
    people = count_people(db)
    post(client, "/people/import/apply", {}, token_page="/people/import")
    assert count_people(db) == people


def test_apply_rechecks_against_the_directory(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    _upload(client, csv_bytes([["E1", "ann@acme.example", "Ann", "", "", "", "", "", ""],
                               ["E2", "ben@acme.example", "Ben", "", "", "", "", "", ""]]))
    # Between the preview and the apply, someone adds ben@ by hand with another employee id.
    make_person(db, email="ben@acme.example", employee_id="X-9")
    db.commit()
    people = count_people(db)
    response = post(client, "/people/import/apply", {}, token_page="/people/import")
    assert response.status_code == 200 and "nothing was imported" in response.get_data(as_text=True).lower()
    assert count_people(db) == people and db.scalar(select(Person).where(Person.email == "ann@acme.example")) is None
