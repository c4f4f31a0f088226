"""Reading an HR export: unknown columns, Excel's sep line, per-line errors, structural problems, line numbers."""

from __future__ import annotations

from govern.directory.import_parse import parse_file
from govern.directory.import_plan import preview_import
from tests.directory.helpers import csv_bytes
from tests.factories import make_person


def _errors(report):
    return [(e.line, e.column, e.reason) for e in report.errors]


def test_unknown_columns_are_ignored_and_excel_sep_line_is_honoured(db):
    content = b"sep=;\r\nEmail;Name;Favourite colour\r\nc@acme.example;Cee;blue\r\n"
    parsed = parse_file(content)
    assert parsed.delimiter == ";" and parsed.ignored_columns == ["Favourite colour"] and parsed.errors == []
    report = preview_import(db, parsed)
    assert report.new == 1


def test_every_bad_line_is_reported_with_line_column_and_reason(db):
    make_person(db, email="taken@acme.example", employee_id="E-OLD")
    content = csv_bytes([
        ["E1", "good@acme.example", "Good", "", "", "", "2024-01-01", "", "Active"],          # line 2
        ["E2", "not an email", "Bad Email", "", "", "", "", "", ""],                            # 3
        ["E3", "date@acme.example", "Bad Date", "", "", "", "03/25/2024", "", ""],             # 4
        ["E4", "status@acme.example", "Bad Status", "", "", "", "", "", "Sabbatical-ish"],     # 5
        ["E5", "GOOD@acme.example", "Duplicate", "", "", "", "", "", ""],                      # 6
        ["E6", "nomanager@acme.example", "No Manager", "", "", "ghost@acme.example", "", "", ""],  # 7
        ["E7", "", "No Email", "", "", "", "", "", ""],                                         # 8
        ["E8", "noname@acme.example", "", "", "", "", "", "", ""],                              # 9
        ["E9", "order@acme.example", "Ends Early", "", "", "", "2024-05-01", "2024-04-30", ""],  # 10
        ["E10", "taken@acme.example", "Wrong Id", "", "", "", "", "", ""],                      # 11
        ["E11", "self@acme.example", "Self", "", "", "self@acme.example", "", "", ""],         # 12
        ["E12", "feb@acme.example", "Feb", "", "", "", "2023-02-29", "", ""],                  # 13
        ["E13", "bad email", "", "", "", "", "", "", ""],                                      # 14
    ])
    report = preview_import(db, parse_file(content))
    found = {(line, column) for line, column, _ in _errors(report)}
    assert found == {(3, "email"), (4, "start_date"), (5, "status"), (6, "email"), (7, "manager_email"),
                     (8, "email"), (9, "full_name"), (10, "end_date"), (11, "employee_id"), (12, "manager_email"),
                     (13, "start_date"), (14, "email"), (14, "full_name")}
    reasons = {(line, column): reason for line, column, reason in _errors(report)}
    assert "also on line 2" in reasons[(6, "email")]
    assert "DD/MM/YYYY" in reasons[(4, "start_date")]
    assert "ghost@acme.example" in reasons[(7, "manager_email")]
    assert "E-OLD" in reasons[(11, "employee_id")]
    assert report.error_count == 13 and report.new == 1


def test_structural_problems_of_the_file(db):
    missing = preview_import(db, parse_file(b"Name,Department\r\nAda,Comms\r\n"))
    assert [(e.line, e.column) for e in missing.errors] == [(1, "email")]
    twice = parse_file(b"Email,Work Email,Name\r\na@x.example,b@x.example,A\r\n")
    assert twice.errors and "both mean email" in twice.errors[0].reason
    latin1 = parse_file("Email,Name\r\nzoe@acme.example,Zoë\r\n".encode("latin-1"))
    assert latin1.errors[0].line == 0 and "UTF-8" in latin1.errors[0].reason and "line 2" in latin1.errors[0].reason
    assert parse_file(b"").errors[0].reason.startswith("the file is empty")
    extra = parse_file(b"Email,Name\r\na@acme.example,Doe, Jane\r\n")
    assert (extra.errors[0].line, extra.errors[0].column) == (2, "file")
    nul = parse_file(b"Email,Name\r\na@acme.example,A\x00\r\n")
    assert nul.errors and "NUL" in nul.errors[0].reason


def test_quoted_cells_and_multiline_values_keep_line_numbers(db):
    content = b'Email,Name,Notes\r\na@acme.example,"Doe, Jane","Two\nlines"\r\nbad,B,T\r\nc@acme.example,"C\nD",\r\n'
    report = preview_import(db, parse_file(content))
    assert [e[:2] for e in _errors(report)] == [(4, "email"), (5, "full_name")]
    assert report.new == 1
