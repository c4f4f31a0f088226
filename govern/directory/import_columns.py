"""The HR import's columns: the header names of each HR system, mappings, statuses and dates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from govern import tabular

#: The canonical columns, in the order the documentation lists them.
COLUMNS = ("employee_id", "email", "full_name", "department", "title", "manager_email", "start_date",
           "end_date", "status")
#: Header names accepted for each column, compared after lower-casing, reading "#" as "number" and
#: turning every run of spaces, underscores and punctuation into one space ("Work-Email" reads as
#: "work email"). They cover the exports of Workday, BambooHR, Personio, SAP SuccessFactors and ADP
#: Workforce Now as their standard employee reports name the columns.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "employee_id": ("employee id", "employee number", "employee no", "employee code", "emp id", "worker id",
                    "staff id", "personnel number", "person id", "id", "user id", "associate id", "person number"),
    "email": ("email", "work email", "email address", "work email address", "business email", "e mail",
              "e mail address", "email work", "primary work email", "work contact work email"),
    "full_name": ("full name", "name", "display name", "employee name", "worker name", "legal name",
                  "legal full name", "worker"),
    "first_name": ("first name", "given name", "firstname", "legal first name", "legal name first name"),
    "last_name": ("last name", "surname", "family name", "lastname", "legal last name", "legal name last name"),
    "department": ("department", "dept", "department name", "supervisory organization", "supervisory organisation",
                   "organization", "organisation", "home department description", "home department"),
    "title": ("title", "job title", "position title", "business title", "job title description", "position"),
    "manager_email": ("manager email", "supervisor email", "manager work email", "manager email address",
                      "line manager email", "reports to email", "supervisor work email", "reports to work email"),
    "start_date": ("start date", "hire date", "date of hire", "employment start date", "joining date"),
    "end_date": ("end date", "termination date", "last day", "last working day", "leaving date", "term date",
                 "separation date"),
    "status": ("status", "employment status", "employee status", "worker status", "position status"),
}
#: Header names that mean a column only when the file has none of its names above: a BambooHR file
#: has both "Department" and "Division", a Workday one may have both "Hire Date" and "Original Hire
#: Date". The one not used is listed among the ignored columns, with why.
FALLBACK_ALIASES: dict[str, tuple[str, ...]] = {
    "employee_id": ("file number",),
    "first_name": ("preferred first name",),
    "last_name": ("preferred last name",),
    "department": ("division", "cost center", "cost centre", "cost center name"),
    "title": ("job", "job profile", "job name"),
    "start_date": ("original hire date", "rehire date", "seniority date"),
    "end_date": ("contract end date", "contract ends"),
}
#: Columns of those exports that govern recognises and does not import, and why (the import page
#: and the CLI list them with the reason, so nothing is dropped silently).
KNOWN_UNUSED: dict[str, str] = {
    **dict.fromkeys(("manager", "supervisor", "reports to", "reports to name", "reports to legal name",
                     "manager name", "supervisor name", "line manager", "reporting to", "manager id", "supervisor id",
                     "reports to associate id", "manager user id", "reports to position id", "manager employee id"),
                    "a manager's name or id: govern finds managers by their work email (a manager email column)"),
    **dict.fromkeys(("preferred name", "middle name", "legal middle name", "nickname"),
                    "govern keeps one full name, the legal one (map this column to full_name to use it instead)"),
    **dict.fromkeys(("personal email", "home email", "private email", "personal contact personal email"),
                    "a private address: govern keeps work emails only"),
}
#: The fields a column can be mapped to (the web import's choices and the CLI's --map).
FIELDS: tuple[str, ...] = tuple(HEADER_ALIASES)
FIELD_LABELS = {
    "employee_id": "Employee id", "email": "Work email", "full_name": "Full name", "first_name": "First name",
    "last_name": "Last name", "department": "Department", "title": "Job title", "manager_email": "Manager's email",
    "start_date": "Start date", "end_date": "End date", "status": "Status",
}
#: What a mapping says of a column that is not imported.
IGNORE = "ignore"
ALIAS_TO_FIELD = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
FALLBACK_TO_FIELD = {alias: name for name, aliases in FALLBACK_ALIASES.items() for alias in aliases}
#: What HR systems write in their status column, and the directory status it means. "Leave"
#: is a leave of absence: still employed, so active.
STATUS_VALUES: dict[str, str] = {
    "active": "active", "employed": "active", "current": "active", "leave": "active", "on leave": "active",
    "leave of absence": "active", "loa": "active", "paid leave": "active", "unpaid leave": "active",
    "leaving": "leaving", "notice": "leaving", "notice period": "leaving", "pending termination": "leaving",
    "terminating": "leaving",
    "departed": "departed", "terminated": "departed", "inactive": "departed", "former": "departed",
    "left": "departed", "resigned": "departed", "retired": "departed", "separated": "departed",
    "withdrawn": "departed",
}
#: The date forms accepted: ISO 8601 (a time part after it is ignored) and day-first with slashes
#: or dots. Month-first dates (US style) are not accepted: 03/04/2026 always means 3 April.
DATE_FORMATS_TEXT = "YYYY-MM-DD (ISO 8601) or DD/MM/YYYY or DD.MM.YYYY (day first)"
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?")
_DMY_DATE = re.compile(r"(\d{1,2})([/.])(\d{1,2})\2(\d{4})")


def parse_date(text: str) -> date:
    """Read an ISO or day-first date; raise ValueError with a message for people."""
    text = text.strip()
    match = _ISO_DATE.fullmatch(text)
    if match:
        year, month, day = (int(part) for part in match.groups())
    else:
        match = _DMY_DATE.fullmatch(text)
        if not match:
            raise ValueError(f"{text[:40]!r} is not a date; use {DATE_FORMATS_TEXT}.")
        day, month, year = (int(part) for part in match.group(1, 3, 4))
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a real date; use {DATE_FORMATS_TEXT}.") from None



def header_key(text: str) -> str:
    """How a header cell is compared with the names above and with a mapping's columns."""
    return tabular.normalise_header(text.replace("#", " number "))


def check_mapping(mapping: Mapping[str, str]) -> list[str]:
    """Problems of a mapping on its own (unknown fields, a column named twice); empty when fine."""
    problems = []
    columns: dict[str, str] = {}
    for column, target in mapping.items():
        if target.strip().lower() not in (*FIELDS, IGNORE):
            problems.append(f"{column!r} → {target!r}: {target!r} is not a field; use one of {', '.join(FIELDS)} or {IGNORE}")
        key = header_key(column)
        if not key:
            problems.append(f"{column!r} is not a column name")
        elif key in columns:
            problems.append(f"the column {column!r} is mapped twice (as {columns[key]!r} too)")
        columns.setdefault(key, column)
    return problems


