"""The HR import's plan and apply: dry run, refusal of a file with errors, idempotent upsert, managers, speed."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.directory.import_parse import parse_file
from govern.directory.import_plan import ImportInvalidError, preview_import
from govern.directory.models import Person
from govern.offboarding.lifecycle import import_people
from tests.directory.helpers import count_events, count_people, csv_bytes, person
from tests.factories import make_person


def _apply(db, content, filename="hr.csv"):
    report = import_people(db, parse_file(content, filename=filename), actor=None)
    db.commit()
    return report


def _errors(report):
    return [(e.line, e.column, e.reason) for e in report.errors]


def test_common_hr_export_headers_are_understood(db):
    content = csv_bytes(
        [["W-1", "Ada@Acme.example", "Ada", "Lovelace", "Comms", "Lead", "", "15/01/2024", "", "Active"],
         ["W-2", "bob@acme.example", "Bob", "Stone", "Comms", "Editor", "ada@acme.example", "2024-02-01", "2026-12-31", "Leave of absence"]],
        header=["Worker ID", "Work Email", "First Name", "Last Name", "Cost Center", "Position", "Supervisor Email",
                "Hire Date", "Termination Date", "Employment Status"],
        delimiter=";", bom=True,
    )
    parsed = parse_file(content, filename="workday.csv")
    assert parsed.delimiter == ";" and parsed.errors == []
    assert parsed.columns["employee_id"] == "Worker ID" and parsed.columns["end_date"] == "Termination Date"
    report = _apply(db, content)
    assert (report.new, report.updated, report.unchanged, report.error_count) == (2, 0, 0, 0)
    ada, bob = person(db, "ada@acme.example"), person(db, "bob@acme.example")
    assert (ada.full_name, ada.employee_id, ada.department, ada.title, ada.start_date) == ("Ada Lovelace", "W-1", "Comms", "Lead", date(2024, 1, 15))
    assert (bob.manager_id, bob.end_date, bob.status, bob.source) == (ada.id, date(2026, 12, 31), "active", "csv")


def test_dry_run_writes_nothing(db):
    content = csv_bytes([["E1", "a@acme.example", "A", "", "", "", "", "", ""]])
    people, events = count_people(db), count_events(db)
    report = preview_import(db, parse_file(content))
    db.commit()
    assert report.new == 1 and not report.applied
    assert (count_people(db), count_events(db)) == (people, events)


def test_apply_refuses_the_whole_file_while_any_line_has_an_error(db):
    content = csv_bytes([["E1", "a@acme.example", "A", "", "", "", "", "", ""],
                         ["E2", "b@acme.example", "B", "", "", "", "31/02/2024", "", ""]])
    people, events = count_people(db), count_events(db)
    with pytest.raises(ImportInvalidError) as caught:
        import_people(db, parse_file(content), actor=None)
    assert caught.value.report.error_count == 1 and "nothing was imported" in caught.value.message
    assert (count_people(db), count_events(db)) == (people, events)


def test_importing_the_same_file_twice_changes_nothing_the_second_time(db):
    content = csv_bytes([["E1", "a@acme.example", "Ann", "Comms", "Lead", "", "2024-01-01", "", "Active"],
                         ["E2", "b@acme.example", "Ben", "Comms", "Editor", "a@acme.example", "2024-01-01", "2026-03-31", "Active"]])
    first = _apply(db, content)
    before = {p.id: (p.updated_at, p.manager_id) for p in db.scalars(select(Person))}
    second = _apply(db, content)
    assert (first.new, second.new, second.updated, second.unchanged) == (2, 0, 0, 2)
    assert {p.id: (p.updated_at, p.manager_id) for p in db.scalars(select(Person).execution_options(populate_existing=True))} == before
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "directory.imported").order_by(AuditEvent.id)).all()
    assert len(events) == 2
    details = json.loads(events[-1].details_json)
    assert details["file_name"] == "hr.csv" and (details["new"], details["updated"], details["unchanged"]) == (0, 0, 2)
    assert "Ann" not in events[0].details_json and "a@acme.example" not in events[0].details_json


def test_upsert_matches_on_employee_id_then_email(db):
    by_id = make_person(db, full_name="Old Name", email="old@acme.example", employee_id="E1", department="Comms")
    by_email = make_person(db, full_name="Manual", email="manual@acme.example")
    db.commit()
    report = _apply(db, csv_bytes([
        ["E1", "new@acme.example", "New Name", "Comms", "", "", "", "", ""],
        ["E2", "MANUAL@acme.example", "Manual", "", "", "", "", "", ""],
    ]))
    assert (report.new, report.updated) == (0, 2)
    assert report.changed_fields == {"email": 1, "employee_id": 1, "full_name": 1}
    assert person(db, "new@acme.example").id == by_id.id
    matched = person(db, "manual@acme.example")
    assert matched.id == by_email.id and matched.employee_id == "E2" and matched.source == "csv"


def test_email_of_someone_else_is_refused(db):
    make_person(db, email="ann@acme.example", employee_id="E1")
    make_person(db, email="ben@acme.example", employee_id="E2")
    report = preview_import(db, parse_file(csv_bytes([["E1", "ben@acme.example", "Ann", "", "", "", "", "", ""]])))
    assert _errors(report)[0][:2] == (2, "email") and "belongs to someone else" in _errors(report)[0][2]


def test_manager_may_come_later_in_the_file_or_already_exist(db):
    existing_boss = make_person(db, email="ceo@acme.example")
    db.commit()
    report = _apply(db, csv_bytes([
        ["E1", "ann@acme.example", "Ann", "", "", "zed@acme.example", "", "", ""],
        ["E2", "ben@acme.example", "Ben", "", "", "CEO@acme.example", "", "", ""],
        ["E3", "zed@acme.example", "Zed", "", "", "ceo@acme.example", "", "", ""],
    ]))
    assert report.new == 3
    zed = person(db, "zed@acme.example")
    assert person(db, "ann@acme.example").manager_id == zed.id
    assert person(db, "ben@acme.example").manager_id == existing_boss.id
    assert zed.manager_id == existing_boss.id


def test_management_cycles_are_refused_within_the_file_and_with_the_directory(db):
    report = preview_import(db, parse_file(csv_bytes([
        ["E1", "a@acme.example", "A", "", "", "b@acme.example", "", "", ""],
        ["E2", "b@acme.example", "B", "", "", "c@acme.example", "", "", ""],
        ["E3", "c@acme.example", "C", "", "", "a@acme.example", "", "", ""],
    ])))
    assert [(e.line, e.column) for e in report.errors] == [(2, "manager_email"), (3, "manager_email"), (4, "manager_email")]
    assert "cycle" in report.errors[0].reason
    boss = make_person(db, email="boss@acme.example", employee_id="B")
    make_person(db, email="report@acme.example", employee_id="R", manager_id=boss.id)
    loop = preview_import(db, parse_file(csv_bytes([["B", "boss@acme.example", "Boss", "", "", "report@acme.example", "", "", ""]])))
    assert loop.error_count == 1 and "boss@acme.example → report@acme.example → boss@acme.example" in loop.errors[0].reason


def test_end_date_and_statuses_are_recorded(db):
    _apply(db, csv_bytes([
        ["E1", "a@acme.example", "A", "", "", "", "2020-01-01", "2026-12-31", "Active"],
        ["E2", "b@acme.example", "B", "", "", "", "", "31/01/2025", "Terminated"],
        ["E3", "c@acme.example", "C", "", "", "", "", "", "Notice period"],
        ["E4", "d@acme.example", "D", "", "", "", "", "", ""],
    ]))
    a, b, c, d = (person(db, f"{x}@acme.example") for x in "abcd")
    assert (a.end_date, a.status) == (date(2026, 12, 31), "active")
    # Leaving and departed come only from an offboarding: a terminated row and a notice period with no
    # end date start one at once; B and C never had access, so theirs completes at once (departed).
    assert (b.end_date, b.status) == (date(2025, 1, 31), "departed")
    assert (c.status, d.status) == ("departed", "active")


def test_empty_cells_clear_but_missing_columns_and_empty_ids_keep(db):
    boss = make_person(db, email="boss@acme.example")
    make_person(db, email="a@acme.example", employee_id="E1", department="Comms", title="Lead", manager_id=boss.id, status="leaving")
    db.commit()
    _apply(db, b"Email,Name,Department\r\na@acme.example,A,\r\n")
    a = person(db, "a@acme.example")
    assert (a.department, a.title, a.manager_id, a.employee_id, a.status) == (None, "Lead", boss.id, "E1", "leaving")
    _apply(db, csv_bytes([["", "a@acme.example", "A", "", "", "", "", "", ""]]))
    a = person(db, "a@acme.example")
    assert (a.manager_id, a.employee_id, a.status) == (None, "E1", "leaving")


def test_ten_thousand_rows_import_in_one_go(db):
    rows = []
    for i in range(10_000):
        manager = f"p{(i // 10) * 10}@acme.example" if i % 10 else ""
        rows.append([f"E{i:05d}", f"P{i}@acme.example", f"Person {i}", f"Dept {i % 12}", "Staff", manager,
                     "2021-06-01", "2026-12-31" if i % 100 == 1 else "", "Terminated" if i % 500 == 7 else "Active"])
    content = csv_bytes(rows, header=["Employee Number", "Work Email", "Full Name", "Department", "Job Title",
                                      "Manager Email", "Hire Date", "Termination Date", "Employment Status"])
    report = _apply(db, content, filename="big.csv")
    assert (report.rows, report.new, report.error_count) == (10_000, 10_000, 0)
    assert count_people(db) >= 10_000
    sample = person(db, "p4321@acme.example")
    assert sample.manager.email == "p4320@acme.example" and sample.department == "Dept 1"
    assert person(db, "p101@acme.example").end_date == date(2026, 12, 31)
    assert person(db, "p507@acme.example").status == "departed"
    assert db.scalar(select(Person).where(Person.email == "p4320@acme.example")).manager_id is None
    again = preview_import(db, parse_file(content))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 10_000)
