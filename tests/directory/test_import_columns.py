"""The HR import's columns: header aliases of HR systems, and the dates accepted."""

from __future__ import annotations

from datetime import date

import pytest

from govern.directory import import_columns
from govern.directory.import_parse import parse_file
from tests.directory.helpers import csv_bytes


@pytest.mark.parametrize("header", [
    ["Employee Number", "Email Address", "Display Name", "Dept", "Title", "Manager Work Email", "Start Date", "Last Day", "Status"],
    ["employee id", "EMAIL", "Name", "department", "job title", "manager email", "start_date", "end date", "employee status"],
    ["EMPLOYEE_ID", " e-mail ", "Full Name", "Department", "Job_Title", "Manager-Email", "Start  Date", "End_Date", "STATUS"],
])
def test_header_aliases_ignore_case_spaces_and_punctuation(db, header):
    parsed = parse_file(csv_bytes([["1", "a@acme.example", "A", "D", "T", "", "2024-01-01", "", "active"]], header=header))
    assert parsed.errors == []
    assert set(parsed.columns) == set(import_columns.COLUMNS)


def test_dates_accept_iso_and_day_first_only():
    assert import_columns.parse_date("2026-03-04") == date(2026, 3, 4)
    assert import_columns.parse_date("2026-03-04T00:00:00Z") == date(2026, 3, 4)
    assert import_columns.parse_date("03/04/2026") == date(2026, 4, 3)
    for bad in ("03/25/2026", "4 March 2026", "2026/03/04", "31/04/2026", "20260304"):
        with pytest.raises(ValueError):
            import_columns.parse_date(bad)
