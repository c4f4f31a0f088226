"""Reading a password manager's CSV export into entries; the values stay inside the entries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from govern import tabular
from govern.accounts.models import PLATFORMS
from govern.errors import InvalidError

FORMATS = ("bitwarden", "1password", "keepass", "generic")
FORMAT_LABELS = {"bitwarden": "Bitwarden (CSV)", "1password": "1Password (CSV)", "keepass": "KeePassXC (CSV)",
                 "generic": "Generic CSV (govern's columns)"}
KINDS = ("password", "totp", "recovery_codes", "api_token", "note")
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
MAX_VALUE_LENGTH = 10_000
MAX_NOTES_LENGTH = 20_000
MAX_LABEL_LENGTH = 200
MAX_LOGIN_LENGTH = 320
MAX_URL_LENGTH = 500
#: At most this many rows are listed per section of a preview (the counts are always complete).


#: Header names of each format (compared after normalise_header). The first name is the one
#: the format's own export writes.
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "bitwarden": {
        "folder": ("folder", "collections"), "type": ("type",), "title": ("name",), "notes": ("notes",),
        "fields": ("fields",), "url": ("login uri",), "login": ("login username",),
        "password": ("login password",), "totp": ("login totp",),
    },
    "1password": {
        "title": ("title", "name"), "url": ("url", "website", "urls", "login url", "location"),
        "login": ("username", "user name", "login", "email", "login username"),
        "password": ("password", "login password"),
        "totp": ("otpauth", "one time password", "one time password totp", "otp", "totp", "2fa", "two factor secret"),
        "notes": ("notes", "notesplain", "notes plain", "note"), "type": ("type", "category"),
        "archived": ("archived",),
    },
    "keepass": {
        "folder": ("group", "group path"), "title": ("title", "account"), "login": ("username", "user name", "login name"),
        "password": ("password",), "url": ("url", "web site"), "notes": ("notes", "comments"),
        "totp": ("totp", "otp"),
    },
    "generic": {
        "account": ("account", "handle", "account handle", "account url"), "platform": ("platform",),
        "kind": ("kind", "type"), "title": ("label", "title", "name"), "login": ("login", "username", "email"),
        "url": ("url", "website", "login url"), "value": ("value", "secret", "password"),
        "expires": ("expires at", "expires", "expiry", "expires on"),
    },
}
#: Columns a file of each format must have.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "bitwarden": (("title",), ("password",), ("type",)),
    "1password": (("title",), ("password",)),
    "keepass": (("title",), ("password",)),
    "generic": (("value",), ("account", "url")),
}
#: Columns whose cells are values: never quoted in a message, never kept outside an Entry.
VALUE_COLUMNS = frozenset({"password", "totp", "notes", "fields", "value"})




class ImportFileError(InvalidError):
    """The file as a whole cannot be read; the message says why (never quoting a value)."""


@dataclass(frozen=True)
class RowProblem:
    """Why a row (line number of its first physical line) is not imported."""

    line: int
    reason: str


@dataclass
class Entry:
    """One item of the export. The value fields are excluded from repr, so no traceback shows them."""

    line: int
    title: str = ""
    url: str = ""
    login: str = ""
    folder: str = ""
    item_type: str = ""
    is_generic: bool = False
    account_ref: str = ""
    platform: str = ""
    kind: str = ""
    expires: str = ""
    password: str = field(default="", repr=False)
    totp: str = field(default="", repr=False)
    notes: str = field(default="", repr=False)
    value: str = field(default="", repr=False)


@dataclass
class ParsedFile:
    """Entries of an export, with the rows skipped while reading it."""

    format: str
    filename: str
    sha256: str
    rows: int = 0
    entries: list[Entry] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def _decode(content: bytes) -> str:
    try:
        return tabular.decode(content, utf16=True)
    except tabular.UndecodableError as exc:
        if exc.line is None:
            raise ImportFileError("The file says it is UTF-16 but is not valid UTF-16. Export it again as UTF-8.") from None
        raise ImportFileError(f"Line {exc.line} is not UTF-8 text. Export the file again as UTF-8 (password managers do by default).") from None


def _safe_filename(name: str) -> str:
    name = tabular.base_name(name)
    return re.sub(r"[^\w.\- ]", "_", name)[:120] or "import.csv"


def _map_header(header: list[str], fmt: str, parsed: ParsedFile) -> dict[int, str]:
    aliases = {alias: name for name, names in HEADERS[fmt].items() for alias in names}
    positions: dict[int, str] = {}
    for index, raw in enumerate(header):
        name = aliases.get(tabular.normalise_header(raw))
        if name is None or name in positions.values():
            if raw.strip():
                parsed.ignored_columns.append(raw.strip()[:60])
            continue
        positions[index] = name
    found = set(positions.values())
    missing = [names for names in REQUIRED[fmt] if not found & set(names)]
    if missing:
        wanted = " and ".join(" or ".join(f'"{HEADERS[fmt][n][0]}"' for n in names) for names in missing)
        raise ImportFileError(f"This is not a {FORMAT_LABELS[fmt]} export: the first line must name the columns, "
                              f"including {wanted}. Check the chosen format.")
    return positions


def _rows(text: str) -> Iterator[tabular.Record]:
    """Every record of the file; csv errors name the line."""
    try:
        yield from tabular.records(text)
    except tabular.RecordError as exc:
        problem = "a cell is too large" if "field larger" in str(exc.error) else "a quote is not closed or a cell is malformed"
        raise ImportFileError(f"The file cannot be read from line {exc.line}: {problem}. Export it again from the password manager.") from None


def parse_file(content: bytes, fmt: str, *, filename: str = "import.csv") -> ParsedFile:
    """Read an export of format ``fmt``; raise ImportFileError when the file as a whole is unusable."""
    if fmt not in FORMATS:
        raise ImportFileError("Choose the format of the file: " + ", ".join(FORMAT_LABELS.values()) + ".")
    if len(content) > MAX_FILE_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB. Split it and import the parts.")
    if not content.strip():
        raise ImportFileError("The file is empty.")
    parsed = ParsedFile(format=fmt, filename=_safe_filename(filename), sha256=tabular.digest(content))
    text = _decode(content)
    if "\x00" in text:
        raise ImportFileError("The file contains NUL bytes: it is not a CSV export.")
    rows = _rows(text)
    header: list[str] | None = None
    for record in rows:
        if not tabular.is_blank(record.cells):
            header = record.cells
            break
    if header is None:
        raise ImportFileError("The file has no lines with columns.")
    positions = _map_header(header, fmt, parsed)
    for record in rows:
        line, cells = record.line, record.cells
        if tabular.is_blank(cells):
            continue
        parsed.rows += 1
        if parsed.rows > MAX_ROWS:
            raise ImportFileError(f"The file has more than {MAX_ROWS} entries. Split it and import the parts.")
        entry, problem = _entry(fmt, line, tabular.cells_by_name(cells, positions))
        if problem is not None:
            parsed.problems.append(problem)
        if entry is not None:
            parsed.entries.append(entry)
    return parsed


def _text(value: str, limit: int) -> str:
    """Metadata cells: trimmed, control characters removed, cut to ``limit``."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()[:limit]


def _entry(fmt: str, line: int, raw: dict[str, str]) -> tuple[Entry | None, RowProblem | None]:
    entry = Entry(
        line=line, is_generic=fmt == "generic", title=_text(raw.get("title", ""), MAX_LABEL_LENGTH), url=_first_url(raw.get("url", "")),
        login=_text(raw.get("login", ""), MAX_LOGIN_LENGTH), folder=_text(raw.get("folder", ""), 200),
        item_type=tabular.normalise_header(raw.get("type", "")), account_ref=_text(raw.get("account", ""), MAX_URL_LENGTH),
        platform=tabular.normalise_header(raw.get("platform", "")), kind=tabular.normalise_header(raw.get("kind", "")).replace(" ", "_"),
        expires=_text(raw.get("expires", ""), 40),
        # Passwords and values are kept exactly as exported: a space may be part of them.
        password=raw.get("password", ""), totp=raw.get("totp", "").strip(), value=raw.get("value", ""),
        notes=raw.get("notes", "").strip(),
    )
    fields = raw.get("fields", "").strip()
    if fields:
        # Bitwarden's custom fields ("name: value" lines) may hold secrets: they go into the note.
        entry.notes = f"{entry.notes}\n\n{fields}".strip()
    if fmt == "keepass" and "recycle bin" in entry.folder.lower():
        return None, RowProblem(line, "in KeePass's recycle bin; deleted entries are not imported")
    if fmt == "bitwarden" and entry.item_type not in ("login", "note", "securenote", "secure note", ""):
        return None, RowProblem(line, f"a Bitwarden {entry.item_type[:20]} item; only logins and secure notes are imported")
    if fmt == "1password" and raw.get("archived", "").strip().lower() in ("true", "yes", "1"):
        return None, RowProblem(line, "archived in 1Password; archived items are not imported")
    if fmt == "1password" and entry.item_type and entry.item_type not in ("login", "password", "secure note", "securenote", "note", "api credential", "server"):
        return None, RowProblem(line, f"a 1Password {entry.item_type[:30]} item; only logins, passwords and notes are imported")
    for name, limit in (("password", MAX_VALUE_LENGTH), ("totp", MAX_VALUE_LENGTH), ("value", MAX_VALUE_LENGTH), ("notes", MAX_NOTES_LENGTH)):
        if len(getattr(entry, name)) > limit:
            return None, RowProblem(line, f"its {name} is longer than {limit} characters")
    if "\x00" in entry.password + entry.value + entry.notes:
        return None, RowProblem(line, "a value contains a NUL character")
    if entry.is_generic:
        if not entry.kind:
            entry.kind = "password"
        if entry.kind not in KINDS:
            return None, RowProblem(line, f"the kind {entry.kind[:30]!r} is not one of {', '.join(KINDS)}")
        if not entry.value.strip():
            return None, RowProblem(line, "the value is empty")
        if entry.platform and entry.platform not in PLATFORMS:
            return None, RowProblem(line, f"the platform {entry.platform[:30]!r} is not one govern knows")
    elif not (entry.password or entry.totp or entry.notes):
        return None, RowProblem(line, "has no password, one-time password seed or notes to import")
    return entry, None


def _first_url(cell: str) -> str:
    """The first address of a cell (Bitwarden puts several URIs in one cell, separated by commas)."""
    for part in re.split(r"[,\s]+", cell.strip()):
        if part:
            return _text(part, MAX_URL_LENGTH)
    return ""


