"""Reading an HR export: the header mapped to fields, every cell checked on its own (no directory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from govern import tabular
from govern.directory.import_columns import (
    ALIAS_TO_FIELD,
    FALLBACK_TO_FIELD,
    HEADER_ALIASES,
    IGNORE,
    KNOWN_UNUSED,
    STATUS_VALUES,
    check_mapping,
    header_key,
    parse_date,
)
from govern.directory.services import (
    MAX_DEPARTMENT_LENGTH,
    MAX_EMPLOYEE_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    normalise_email,
)

MAX_ROWS = 100_000


@dataclass(frozen=True)
class LineError:
    """One problem in the file: its line number (1 is the header), the column and why."""

    line: int
    column: str
    reason: str


@dataclass
class ImportRow:
    """One data line of the file, cleaned; None means the column is absent or the cell empty."""

    line: int
    cells: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedFile:
    """The file read into rows, with the problems found without looking at the directory."""

    filename: str
    sha256: str
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    delimiter: str = ","
    #: The header line's cells as written, and the field each one was read as (None: ignored).
    header: list[str] = field(default_factory=list)
    assignment: list[str | None] = field(default_factory=list)
    #: Why an ignored column is not imported, when govern knows (a manager's name, a fallback ...).
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    #: The line the header is on (2 after Excel's "sep=" line).
    header_line: int = 1




def _map_headers(header: list[str], parsed: ParsedFile, mapping: Mapping[str, str] | None = None) -> dict[int, str]:
    """Map each cell index of the header to a column name; record problems on line 1.

    An explicit ``mapping`` (header text -> field or "ignore") decides the columns it names; the
    others are read by their names (HEADER_ALIASES, then FALLBACK_ALIASES).
    """
    keys = [header_key(raw) for raw in header]
    texts = [raw.strip()[:80] for raw in header]
    explicit: dict[int, str] = {}
    for problem in check_mapping(mapping or {}):
        parsed.errors.append(LineError(1, "mapping", problem))
    for column, target in (mapping or {}).items():
        matches = [index for index, key in enumerate(keys) if key and key == header_key(column)]
        if not matches:
            parsed.errors.append(LineError(1, "mapping", f"the file has no column {column.strip()[:80]!r}; its columns are "
                                                         + ", ".join(repr(t) for t in texts if t)))
        elif len(matches) > 1:
            parsed.errors.append(LineError(1, "mapping", f"the file has {len(matches)} columns named {column.strip()[:80]!r}; rename one in the file"))
        else:
            explicit[matches[0]] = target.strip().lower()
    positions: dict[int, str] = {}
    seen: dict[str, str] = {}
    reasons: dict[int, str] = {}
    for index, target in explicit.items():
        if target == IGNORE:
            reasons[index] = "mapped to ignore"
        elif target in seen:
            parsed.errors.append(LineError(1, "mapping", f"the columns {seen[target]!r} and {texts[index]!r} are both mapped to {target}; map one of them to {IGNORE}"))
        else:
            seen[target], positions[index] = texts[index], target
    mapped = set(seen)
    for index in range(len(header)):
        name = ALIAS_TO_FIELD.get(keys[index])
        if index in explicit or name is None:
            continue
        if name in mapped:
            reasons[index] = f"{name} is read from {seen[name]!r}, as mapped"
        elif name in seen:
            parsed.errors.append(LineError(1, texts[index], f"the columns {seen[name]!r} and {texts[index]!r} both mean {name}; keep one of them, or map one to {IGNORE}"))
            reasons[index] = f"also means {name}"
        else:
            seen[name], positions[index] = texts[index], name
    for index in range(len(header)):
        name = FALLBACK_TO_FIELD.get(keys[index])
        if index in explicit or index in positions or index in reasons or name is None:
            continue
        if name in seen:
            reasons[index] = f"also means {name}; {seen[name]!r} is used"
        else:
            seen[name], positions[index] = texts[index], name
    for index, text in enumerate(texts):
        if index in positions or not text or any(e.column == text for e in parsed.errors):
            continue
        parsed.ignored_columns.append(text)
        reason = reasons.get(index) or KNOWN_UNUSED.get(keys[index])
        parsed.ignored_reasons[text] = reason or "not a column govern knows: map it to a field to import it"
    parsed.header = texts
    parsed.assignment = [positions.get(index) for index in range(len(header))]
    parsed.columns = dict(seen)
    if "email" not in seen:
        parsed.errors.append(LineError(1, "email", "no email column (accepted names: " + ", ".join(f'"{a}"' for a in HEADER_ALIASES["email"][:4]) + "; or map a column to email)"))
    if "full_name" not in seen and not ("first_name" in seen or "last_name" in seen):
        parsed.errors.append(LineError(1, "full_name", "no name column (\"full_name\", \"Name\", \"Legal Name\", or \"First Name\" with \"Last Name\"; or map a column to full_name)"))
    return positions


def _clean_text(value: str, column: str, limit: int, line: int, errors: list[LineError]) -> str | None:
    value = value.strip()
    if "\n" in value or "\r" in value:
        errors.append(LineError(line, column, "holds a line break: a quoted cell runs over several lines (a quote not closed?)"))
        return None
    if any(ord(ch) < 32 for ch in value):
        errors.append(LineError(line, column, "contains control characters"))
        return None
    if len(value) > limit:
        errors.append(LineError(line, column, f"is longer than {limit} characters"))
        return None
    return value or None


def _email(value: str, column: str, line: int, errors: list[LineError]) -> str | None:
    email = normalise_email(value)
    if not email:
        return None
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or any(ch.isspace() or ord(ch) < 32 for ch in email):
        errors.append(LineError(line, column, f"{value.strip()[:80]!r} is not a valid email address"))
        return None
    return email


def _clean_row(line: int, raw: dict[str, str], errors: list[LineError]) -> ImportRow:
    """Check one line's cells on their own (no directory lookups)."""
    row = ImportRow(line)
    cells = row.cells
    if "employee_id" in raw:
        cells["employee_id"] = _clean_text(raw["employee_id"], "employee_id", MAX_EMPLOYEE_ID_LENGTH, line, errors)
        if cells["employee_id"] and "@" in cells["employee_id"]:
            errors.append(LineError(line, "employee_id", "an employee id cannot contain @"))
    email_raw = raw.get("email", "")
    cells["email"] = _email(email_raw, "email", line, errors)
    if cells["email"] is None and not email_raw.strip():
        errors.append(LineError(line, "email", "is empty; every person needs a work email"))
    before = len(errors)  # so a name already refused is not also reported as empty
    name = _clean_text(raw.get("full_name", ""), "full_name", MAX_NAME_LENGTH, line, errors) if "full_name" in raw else None
    if not name and ("first_name" in raw or "last_name" in raw):
        first = raw.get("first_name", "").strip()
        last = raw.get("last_name", "").strip()
        name = _clean_text(f"{first} {last}", "full_name", MAX_NAME_LENGTH, line, errors)
    if not name and len(errors) == before:
        errors.append(LineError(line, "full_name", "is empty; every person needs a name"))
    cells["full_name"] = name
    for column, limit in (("department", MAX_DEPARTMENT_LENGTH), ("title", MAX_TITLE_LENGTH)):
        if column in raw:
            cells[column] = _clean_text(raw[column], column, limit, line, errors)
    if "manager_email" in raw:
        cells["manager_email"] = _email(raw["manager_email"], "manager_email", line, errors)
    for column in ("start_date", "end_date"):
        if column in raw:
            text = raw[column].strip()
            try:
                cells[column] = parse_date(text) if text else None
            except ValueError as exc:
                errors.append(LineError(line, column, str(exc)))
    if cells.get("start_date") and cells.get("end_date") and cells["end_date"] < cells["start_date"]:
        errors.append(LineError(line, "end_date", "is before the start date"))
    if "status" in raw:
        text = tabular.normalise_header(raw["status"])
        if text and text not in STATUS_VALUES:
            errors.append(LineError(line, "status", f"{raw['status'].strip()[:40]!r} is not a status we know (use Active, Leaving or Terminated)"))
        cells["status"] = STATUS_VALUES.get(text) if text else None
    return row


def parse_file(content: bytes, *, filename: str = "import.csv", mapping: Mapping[str, str] | None = None) -> ParsedFile:
    """Read an HR export: UTF-8 (with or without BOM), comma or semicolon separated, one header line.

    ``mapping`` (header text -> field or "ignore") overrides how the columns it names are read.
    """
    parsed = ParsedFile(filename=_safe_filename(filename), sha256=tabular.digest(content))
    try:
        text = tabular.decode(content)
    except tabular.UndecodableError as exc:
        message = f"line {exc.line} is not UTF-8 text. Save the export as \"CSV UTF-8\" and upload it again."
        parsed.errors.append(LineError(0, "file", message))
        return parsed
    if "\x00" in text:
        parsed.errors.append(LineError(0, "file", "the file contains NUL bytes; it is not a CSV export"))
        return parsed
    lines = text.splitlines(keepends=True)
    skipped = 0
    # Excel writes "sep=;" on a line of its own to say which separator it used.
    separator = tabular.excel_separator(lines[0]) if lines else None
    if separator is not None:
        parsed.delimiter = separator
        lines, skipped = lines[1:], 1
    elif lines:
        parsed.delimiter = tabular.sniff_delimiter(lines[0])
    if parsed.delimiter not in (",", ";"):
        parsed.errors.append(LineError(1, "file", "separate the columns with commas or semicolons"))
        return parsed
    records = tabular.records("".join(lines), delimiter=parsed.delimiter, first_line=1 + skipped)
    try:
        first = next(records, None)
    except tabular.RecordError as exc:
        parsed.errors.append(LineError(exc.line, "file", f"the header line cannot be read: {tabular.csv_problem(exc.error)}"))
        return parsed
    if first is None or tabular.is_blank(first.cells):
        parsed.errors.append(LineError(1 + skipped, "file", "the file is empty; the first line must name the columns"))
        return parsed
    header = first.cells
    positions = _map_headers(header, parsed, mapping)
    header_line = parsed.header_line = first.end
    if any(e.line == 1 for e in parsed.errors) and header_line != 1:
        parsed.errors = [LineError(header_line, e.column, e.reason) if e.line == 1 else e for e in parsed.errors]
    if parsed.errors:
        return parsed
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except tabular.RecordError as exc:
            parsed.errors.append(LineError(exc.line, "file", f"this line cannot be read: {tabular.csv_problem(exc.error)}"))
            break
        line, cells = record.line, record.cells
        if tabular.is_blank(cells):
            continue  # blank lines (spreadsheets leave them at the end)
        if len(parsed.rows) >= MAX_ROWS:
            parsed.errors.append(LineError(line, "file", f"the file has more than {MAX_ROWS} rows; split it"))
            break
        if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):]):
            parsed.errors.append(LineError(line, "file", f"this line has {len(cells)} cells but the header has {len(header)} (a separator inside an unquoted value?)"))
            continue
        parsed.rows.append(_clean_row(line, tabular.cells_by_name(cells, positions), parsed.errors))
    return parsed


def read_header(content: bytes) -> list[str]:
    """The header line's cells ([] when it cannot be read), without reading the rows."""
    lines = content.split(b"\n", 2)
    head = b"\n".join(lines[:2] if lines[0].strip().lower().startswith(b"sep=") else lines[:1])
    return parse_file(head).header


def _safe_filename(name: str) -> str:
    name = "".join(ch for ch in tabular.base_name(name) if ch.isprintable())[:200]
    return name or "import.csv"


def count_data_lines(content: bytes) -> int:
    """A cheap upper bound of the rows, for a progress bar's length."""
    return max(0, content.count(b"\n") + (0 if content.endswith(b"\n") else 1) - 1)


