"""Real-looking exports of Workday, BambooHR, Personio, SAP SuccessFactors and ADP; column mappings;
broken CSV files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from govern.directory.import_parse import parse_file
from govern.directory.import_plan import preview_import
from govern.offboarding.lifecycle import import_people
from tests.directory.helpers import person

FILES = Path(__file__).parent / "files"


def _parse(name, **kwargs):
    return parse_file((FILES / name).read_bytes(), filename=name, **kwargs)


def test_the_workday_export_of_the_issue_imports_as_it_is(db):
    parsed = _parse("workday.csv")
    assert parsed.errors == [] and parsed.ignored_columns == []
    assert parsed.columns == {
        "employee_id": "Employee ID", "full_name": "Legal Name", "email": "Work Email",
        "department": "Supervisory Organization", "title": "Business Title", "manager_email": "Manager Work Email",
        "start_date": "Hire Date", "end_date": "Termination Date", "status": "Worker Status"}
    report = import_people(db, parsed, actor=None)
    db.commit()
    assert (report.new, report.error_count) == (4, 0)
    camille, lea = person(db, "camille.durand@acme.example"), person(db, "lea.martin@acme.example")
    assert (camille.employee_id, camille.full_name, camille.department, camille.title, camille.start_date) == (
        "21001", "Camille Durand", "Communications (Camille Durand)", "Head of Communications", date(2019, 3, 4))
    assert (lea.department, lea.title, lea.manager_id) == ("Communications, Paris (Camille Durand)", "Social Media Manager", camille.id)
    assert person(db, "noah.petit@acme.example").end_date == date(2026, 12, 31)


#: file, (employee id, full name, department, title, start date) of its first person, and the
#: columns listed as ignored.
VENDORS = [
    ("bamboohr.csv", ("104", "Priya Shah", "Marketing", "Marketing Director", date(2018, 5, 14)),
     ["Preferred Name", "Division", "Supervisor", "Location"]),
    ("personio.csv", ("1001", "Lukas Schneider", "Marketing", "Head of Brand", date(2019, 4, 1)),
     ["Gender", "Supervisor", "Office", "Subcompany"]),
    ("successfactors.csv", ("jdoe", "Jane Doe", "Corporate Communications", "VP Communications", date(2017, 1, 9)),
     ["Username", "Division", "Manager", "Location"]),
    ("adp.csv", ("G3K9QZ2B1", "Maria Lopez", "Marketing", "Director of Marketing", date(2016, 7, 11)),
     ["Payroll Company Code", "File Number", "Personal Contact: Personal Email", "Home Department Code",
      "Reports To Legal Name", "Reports To Associate ID"]),
]


@pytest.mark.parametrize(("name", "first", "ignored"), VENDORS, ids=[v[0] for v in VENDORS])
def test_each_vendor_export_is_read_with_its_own_column_names(db, name, first, ignored):
    parsed = _parse(name)
    assert parsed.errors == []
    assert parsed.ignored_columns == ignored
    # Nothing is dropped silently: every ignored column says why.
    assert set(parsed.ignored_reasons) == set(ignored) and all(parsed.ignored_reasons.values())
    report = import_people(db, parsed, actor=None)
    db.commit()
    assert (report.new, report.error_count) == (3, 0)
    email = parsed.rows[0].cells["email"]
    found = person(db, email)
    assert (found.employee_id, found.full_name, found.department, found.title, found.start_date) == first


def test_manager_name_columns_say_why_they_are_ignored():
    parsed = _parse("bamboohr.csv")
    assert "manager" in parsed.ignored_reasons["Supervisor"] and "email" in parsed.ignored_reasons["Supervisor"]
    assert "'Department' is used" in parsed.ignored_reasons["Division"]
    assert "map" in _parse("personio.csv").ignored_reasons["Office"]


def test_day_first_dates_with_dots_are_read():
    rows = _parse("personio.csv").rows
    assert rows[2].cells["start_date"] == date(2023, 5, 2) and rows[2].cells["end_date"] == date(2027, 6, 30)


# --- mapping --------------------------------------------------------------------------------------------


HEADER = b"Badge,Person,Mail,Team,Role,Notes\r\n"
ROW = b"B-7,Ada Lovelace,ada@acme.example,Comms,Lead,likes tea\r\n"


def test_a_mapping_reads_columns_the_names_do_not_give(db):
    refused = parse_file(HEADER + ROW)
    assert {e.column for e in refused.errors} == {"email", "full_name"}
    mapping = {"Badge": "employee_id", "person": "full_name", "MAIL": "email", "Team": "department", "Role": "title",
               "Notes": "ignore"}
    parsed = parse_file(HEADER + ROW, mapping=mapping)
    assert parsed.errors == []
    assert parsed.assignment == ["employee_id", "full_name", "email", "department", "title", None]
    assert parsed.ignored_columns == ["Notes"] and parsed.ignored_reasons["Notes"] == "mapped to ignore"
    import_people(db, parsed, actor=None)
    ada = person(db, "ada@acme.example")
    assert (ada.employee_id, ada.full_name, ada.department, ada.title) == ("B-7", "Ada Lovelace", "Comms", "Lead")


def test_a_mapping_overrides_the_names_of_a_vendor_file(db):
    # Preferred Name instead of first and last name; Division instead of Department.
    parsed = _parse("bamboohr.csv", mapping={"Preferred Name": "full_name", "Division": "department", "Department": "ignore"})
    assert parsed.errors == [] and parsed.columns["full_name"] == "Preferred Name"
    assert parsed.ignored_reasons["Department"] == "mapped to ignore"
    report = preview_import(db, parsed)
    assert report.new == 3 and [r.cells["department"] for r in parsed.rows] == ["North America", "North America", "EMEA"]
    assert parsed.rows[1].cells["full_name"] == "Dan"


def test_a_column_the_mapping_moves_away_from_a_name_leaves_the_name_to_it():
    parsed = parse_file(b"Email,Name,Display Name\r\na@acme.example,Ann,Annie\r\n", mapping={"Display Name": "full_name"})
    assert parsed.errors == [] and parsed.rows[0].cells["full_name"] == "Annie"
    assert parsed.ignored_columns == ["Name"] and "as mapped" in parsed.ignored_reasons["Name"]


@pytest.mark.parametrize(("mapping", "expected"), [
    ({"Person": "nickname", "Mail": "email"}, "'nickname' is not a field"),
    ({"Person": "full_name", "Mail": "full_name"}, "both mapped to full_name"),
    ({"Nope": "email", "Mail": "email", "Person": "full_name"}, "the file has no column 'Nope'"),
    ({"Person": "full_name"}, "no email column"),
    ({"Mail": "email", "person": "full_name", "PERSON": "ignore"}, "mapped twice"),
])
def test_a_bad_mapping_is_a_clear_error(mapping, expected):
    parsed = parse_file(HEADER + ROW, mapping=mapping)
    assert parsed.rows == []
    assert any(expected in e.reason for e in parsed.errors), parsed.errors


# --- broken files ----------------------------------------------------------------------------------------


def test_an_unterminated_quote_is_reported_with_its_line():
    content = (b"Email,Name,Department\r\na@acme.example,Ann,Comms\r\nb@acme.example,\"Ben,Comms\r\n"
               b"c@acme.example,Cee,Comms\r\n")
    parsed = parse_file(content)
    assert [(e.line, e.column) for e in parsed.errors] == [(3, "file")]
    assert "quote" in parsed.errors[0].reason and "never closed" in parsed.errors[0].reason


def test_an_unterminated_quote_in_the_header_is_not_a_missing_name_column():
    parsed = parse_file(b"Email,\"Name,Department\r\na@acme.example,Ann,Comms\r\n")
    assert [(e.line, e.column) for e in parsed.errors] == [(1, "file")]
    assert "quote" in parsed.errors[0].reason and "name column" not in parsed.errors[0].reason


def test_text_after_a_closing_quote_and_a_cell_over_two_lines_are_explained():
    stray = parse_file(b"Email,Name\r\na@acme.example,\"Ann\" Lee\r\n")
    assert stray.errors[0].line == 2 and "closing quote" in stray.errors[0].reason
    multiline = parse_file(b"Email,Name\r\na@acme.example,\"Ann\r\nLee\"\r\nb@acme.example,Ben\r\n")
    assert [(e.line, e.column) for e in multiline.errors] == [(2, "full_name")]
    assert "line break" in multiline.errors[0].reason
