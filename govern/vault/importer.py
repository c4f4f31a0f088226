"""Import credentials from other password managers' CSV exports into the vault.

Formats: Bitwarden, 1Password, KeePassXC, and a generic CSV of govern's own. The flow is
"preview, then confirm": ``preview_import`` parses the file and matches every entry to an
account, writing nothing; ``apply_import`` does the same again and vaults the values through
``create_secret``, creating the accounts the user chose, in the caller's transaction.

Where the values may go: nowhere but into ``create_secret``. The file is parsed in memory
(the app keeps uploads in memory, never in a temporary file), the parsed entries live only for
the request that parsed them, their ``repr`` hides every value, and neither a problem
message nor the audit event quotes a value cell. The preview page therefore shows titles,
logins, URLs and kinds, never passwords, seeds or notes. For the confirm step the user
chooses the same file again (browsers cannot keep it for them): nothing about it is stored
between the two requests but the hidden SHA-256 digest of the previewed file, which the
confirm checks so that what is imported is exactly what was previewed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import PLATFORM_LABELS, PLATFORMS, Account
from govern.accounts.services import PLATFORM_RULES, AccountInput, create_account, normalise_handle
from govern.auth.models import User
from govern.crypto.keyring import Keyring
from govern.errors import AuditWriteError, GovernError, InvalidError
from govern.tabular import normalise_header
from govern.vault.models import Secret
from govern.vault.values import MAX_RECOVERY_CODE, MAX_RECOVERY_CODES, parse_totp
from govern.vault.values import MAX_VALUE as VAULT_MAX_VALUE
from govern.vault.versions import create_secret as vault_create_secret

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
MAX_LISTED = 500

Progress = Callable[[int], None]

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


# --- reading the file ----------------------------------------------------------------------------


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
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportFileError("The file says it is UTF-16 but is not valid UTF-16. Export it again as UTF-8.") from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise ImportFileError(f"Line {line} is not UTF-8 text. Export the file again as UTF-8 (password managers do by default).") from None


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^\w.\- ]", "_", name)[:120] or "import.csv"


def _map_header(header: list[str], fmt: str, parsed: ParsedFile) -> dict[int, str]:
    aliases = {alias: name for name, names in HEADERS[fmt].items() for alias in names}
    positions: dict[int, str] = {}
    for index, raw in enumerate(header):
        name = aliases.get(normalise_header(raw))
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


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every record; csv errors name the line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = "a cell is too large" if "field larger" in str(exc) else "a quote is not closed or a cell is malformed"
            raise ImportFileError(f"The file cannot be read from line {start}: {problem}. Export it again from the password manager.") from None
        yield start, cells
        start = reader.line_num + 1


def parse_file(content: bytes, fmt: str, *, filename: str = "import.csv") -> ParsedFile:
    """Read an export of format ``fmt``; raise ImportFileError when the file as a whole is unusable."""
    if fmt not in FORMATS:
        raise ImportFileError("Choose the format of the file: " + ", ".join(FORMAT_LABELS.values()) + ".")
    if len(content) > MAX_FILE_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB. Split it and import the parts.")
    if not content.strip():
        raise ImportFileError("The file is empty.")
    parsed = ParsedFile(format=fmt, filename=_safe_filename(filename), sha256=hashlib.sha256(content).hexdigest())
    text = _decode(content)
    if "\x00" in text:
        raise ImportFileError("The file contains NUL bytes: it is not a CSV export.")
    rows = _rows(text)
    header: list[str] | None = None
    for _line, cells in rows:
        if any(cell.strip() for cell in cells):
            header = cells
            break
    if header is None:
        raise ImportFileError("The file has no lines with columns.")
    positions = _map_header(header, fmt, parsed)
    for line, cells in rows:
        if not any(cell.strip() for cell in cells):
            continue
        parsed.rows += 1
        if parsed.rows > MAX_ROWS:
            raise ImportFileError(f"The file has more than {MAX_ROWS} entries. Split it and import the parts.")
        raw = {name: cells[index] if index < len(cells) else "" for index, name in positions.items()}
        entry, problem = _entry(fmt, line, raw)
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
        item_type=normalise_header(raw.get("type", "")), account_ref=_text(raw.get("account", ""), MAX_URL_LENGTH),
        platform=normalise_header(raw.get("platform", "")), kind=normalise_header(raw.get("kind", "")).replace(" ", "_"),
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


# --- values ---------------------------------------------------------------------------------------

def totp_problem(value: str) -> str | None:
    """Why ``value`` is not a usable TOTP seed or otpauth:// URI (None when it is); never quotes it."""
    try:
        parse_totp(value)
    except InvalidError as exc:
        return exc.message
    return None


def clean_url(url: str) -> str | None:
    """An address the vault accepts as metadata (http or https), or None (app links and the like)."""
    url = url.strip()
    if url and not _URL_SCHEME.match(url) and re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?", url):
        url = "https://" + url
    parts = urlsplit(url) if url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH:
        return None
    return url


def recovery_codes(value: str) -> list[str]:
    """Split a cell of recovery codes on newlines, commas, semicolons or runs of spaces."""
    return [code for code in re.split(r"[\s,;]+", value.strip()) if code]


# --- matching -------------------------------------------------------------------------------------

#: Hosts beyond the registry's profile hosts that mean a platform (login and business pages).
EXTRA_HOSTS: dict[str, str] = {
    "fb.com": "facebook", "messenger.com": "facebook", "business.facebook.com": "facebook",
    "twitter.com": "x", "accounts.google.com": "youtube", "youtu.be": "youtube", "studio.youtube.com": "youtube",
    "bsky.social": "bluesky", "accounts.snapchat.com": "snapchat", "threads.com": "threads", "pin.it": "pinterest",
}
KNOWN_MASTODON_HOSTS = ("mastodon.social", "mastodon.online", "mstdn.social", "fosstodon.org", "hachyderm.io",
                        "mas.to", "infosec.exchange", "mastodon.world")
#: First path segments that are pages of the platform, not a profile.
RESERVED_SEGMENTS = frozenset({
    "accounts", "account", "login", "signin", "sign_in", "signup", "logout", "home", "explore", "settings", "p", "reel",
    "reels", "stories", "direct", "about", "i", "intent", "search", "messages", "notifications", "compose", "hashtag",
    "share", "help", "privacy", "legal", "tos", "business", "pages", "groups", "profile.php", "home.php", "watch",
    "feed", "results", "channel", "pin", "ideas", "auth", "oauth", "web", "embed", "tv", "v", "u", "add", "company",
    "in", "showcase", "school", "c", "user", "profile", "uas", "checkpoint", "recover", "password", "challenge",
})
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _split_url(url: str) -> tuple[str, list[str], str]:
    """(host without www./m./mobile., lower-cased path segments, query) of an address; scheme optional."""
    text = url.strip()
    if not text:
        return "", [], ""
    if not _URL_SCHEME.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "", [], ""
    for prefix in ("www.", "m.", "mobile.", "web."):
        if host.startswith(prefix):
            host = host[len(prefix):]
    segments = [unquote(s).lower() for s in parts.path.split("/") if s]
    return host, segments, parts.query


def platform_of_host(host: str) -> str | None:
    """The platform a host belongs to, or None."""
    if not host:
        return None
    for known, platform in EXTRA_HOSTS.items():
        if host == known or host.endswith("." + known):
            return platform
    for platform, rules in PLATFORM_RULES.items():
        if any(host == h or host.endswith("." + h) for h in rules.hosts):
            return platform
    if re.fullmatch(r"(.+\.)?pinterest\.[a-z.]{2,6}", host):
        return "pinterest"
    if host in KNOWN_MASTODON_HOSTS or host.startswith(("mastodon.", "mstdn.")):
        return "mastodon"
    return None


def handle_from_url(platform: str, host: str, segments: list[str], query: str) -> str | None:
    """The profile handle an address points to on ``platform``, if it is a profile address."""
    if not segments:
        return None
    first = segments[0]
    if platform == "linkedin":
        return segments[1] if len(segments) > 1 and first in ("company", "showcase", "school", "in") else None
    if platform == "bluesky":
        return segments[1] if len(segments) > 1 and first == "profile" else None
    if platform == "snapchat":
        if first == "add" and len(segments) > 1:
            return segments[1]
        return first[1:] if first.startswith("@") else None
    if platform == "youtube":
        if first.startswith("@"):
            return first[1:]
        return segments[1] if len(segments) > 1 and first in ("c", "user") else None
    if platform == "mastodon":
        return f"{first[1:]}@{host}" if first.startswith("@") and len(first) > 1 else None
    if platform == "facebook" and first == "profile.php":
        ids = parse_qs(query).get("id")
        return ids[0] if ids else None
    if first.startswith("@"):
        return first[1:] or None
    if first in RESERVED_SEGMENTS or platform in ("tiktok", "threads"):
        return None  # TikTok and Threads profiles always have the @
    return first


def normalise_url(url: str) -> str:
    """Host (without www. and the like) and path, lower-cased, for comparing addresses."""
    host, segments, _query = _split_url(url)
    return host + "/" + "/".join(segments) if host else ""


@dataclass
class AccountIndex:
    """The registry, read once per import: accounts by (platform, handle) and by address."""

    by_handle: dict[tuple[str, str], Account] = field(default_factory=dict)
    by_url: dict[str, list[Account]] = field(default_factory=dict)
    by_host: dict[str, list[Account]] = field(default_factory=dict)
    by_any_handle: dict[str, list[Account]] = field(default_factory=dict)


def build_index(session: Session) -> AccountIndex:
    """Read every account once (one query)."""
    index = AccountIndex()
    for account in session.scalars(select(Account)):
        index.by_handle[(account.platform, account.handle)] = account
        index.by_url.setdefault(normalise_url(account.url), []).append(account)
        index.by_host.setdefault(_split_url(account.url)[0], []).append(account)
        index.by_any_handle.setdefault(account.handle, []).append(account)
    return index


def _valid_handle(platform: str, handle: str) -> bool:
    return bool(re.fullmatch(PLATFORM_RULES[platform].handle, handle)) and len(handle) <= 120


@dataclass
class Match:
    """Where an entry goes: an existing account, an account to create, or nowhere (with why)."""

    account: Account | None = None
    platform: str | None = None
    handle: str | None = None
    reason: str = ""

    @property
    def new_key(self) -> str | None:
        """The key of the account to create (platform:handle), when the entry proposes one."""
        return f"{self.platform}:{self.handle}" if self.account is None and self.platform and self.handle else None


def _candidates(entry: Entry, platform: str, host: str, segments: list[str], query: str) -> list[str]:
    """Possible handles, most trustworthy first: the address, an @handle in the title, the login."""
    found: list[str] = []
    from_url = handle_from_url(platform, host, segments, query)
    if from_url:
        found.append(from_url)
    for token in re.findall(r"@([A-Za-z0-9._-]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)", entry.title):
        found.append(token)
    login = entry.login.strip()
    if login and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", login) and not re.fullmatch(r"\+?[\d\s()-]{6,}", login):
        found.append(f"{login.lstrip('@')}@{host}" if platform == "mastodon" and "@" not in login.lstrip("@") and host else login)
    cleaned = []
    for handle in found:
        handle = normalise_handle(platform, handle).rstrip(".")
        if handle and handle not in cleaned:
            cleaned.append(handle)
    return cleaned


def match_entry(index: AccountIndex, entry: Entry) -> Match:
    """Find the account an entry belongs to (see the module's documentation for the order)."""
    reference = entry.account_ref.strip()
    if reference and "/" not in reference:
        # A handle in the generic format's account column, with or without a platform.
        handle_text = reference
        if entry.platform:
            handle = normalise_handle(entry.platform, handle_text)
            account = index.by_handle.get((entry.platform, handle))
            if account is not None:
                return Match(account=account)
            if _valid_handle(entry.platform, handle) and entry.platform != "other":
                return Match(platform=entry.platform, handle=handle)
            return Match(reason=f"no {PLATFORM_LABELS[entry.platform]} account @{handle[:60]} and that is not a valid handle")
        accounts = index.by_any_handle.get(normalise_handle("other", handle_text), [])
        if len(accounts) == 1:
            return Match(account=accounts[0])
        if len(accounts) > 1:
            return Match(reason=f"@{handle_text[:60].lstrip('@')} exists on several platforms; add a platform column")
        return Match(reason=f"no account has the handle @{handle_text[:60].lstrip('@')}; add a platform column to create it")
    url = reference or entry.url
    if not url:
        return Match(reason="no address and no account to match it to")
    exact = index.by_url.get(normalise_url(url), [])
    if len(exact) == 1:
        return Match(account=exact[0])
    host, segments, query = _split_url(url)
    platform = entry.platform or platform_of_host(host)
    if platform is None or platform == "other":
        same_host = [a for a in index.by_host.get(host, []) if a.platform == "other"]
        if len(same_host) == 1:
            return Match(account=same_host[0])
        return Match(reason=f"{host[:80] or 'the address'} is not a social media platform govern knows")
    candidates = _candidates(entry, platform, host, segments, query)
    for handle in candidates:
        account = index.by_handle.get((platform, handle))
        if account is not None:
            return Match(account=account)
    label = PLATFORM_LABELS[platform]
    for handle in candidates:
        if _valid_handle(platform, handle):
            return Match(platform=platform, handle=handle)
    if candidates:
        return Match(reason=f"no {label} account matches, and {candidates[0][:60]!r} is not a valid {label} handle")
    return Match(reason=f"a {label} entry without a handle: the login is an email or phone number and the address is "
                        f"not a profile; put @handle in the entry's title")


# --- planning and applying ------------------------------------------------------------------------


@dataclass
class PlannedSecret:
    """A secret an entry becomes (its kind and label; the value stays in the Entry)."""

    kind: str
    label: str
    #: The account has a secret of this name already: it is left as it is, not imported again.
    exists: bool = False


@dataclass
class RowPlan:
    """What happens to one entry (shown in the preview: no values)."""

    line: int
    title: str
    login: str
    url: str
    status: str  # "matched", "new_account", "unmatched"
    account_id: int | None = None
    account_label: str = ""
    new_key: str | None = None
    reason: str = ""
    #: Matched to no account by itself: the user chose its account (--account, or the web preview).
    is_assigned: bool = False
    secrets: list[PlannedSecret] = field(default_factory=list)
    entry: Entry | None = field(default=None, repr=False)


@dataclass
class NewAccount:
    """An account the file mentions that the registry does not have."""

    key: str
    platform: str
    handle: str
    display_name: str
    lines: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        """"@handle on Platform"."""
        return f"@{self.handle} on {PLATFORM_LABELS[self.platform]}"


@dataclass
class ImportReport:
    """The outcome of a preview or an apply: counts, and rows without values."""

    format: str
    filename: str
    sha256: str
    rows: int = 0
    matched: list[RowPlan] = field(default_factory=list)
    proposed: list[RowPlan] = field(default_factory=list)
    unmatched: list[RowPlan] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)
    new_accounts: dict[str, NewAccount] = field(default_factory=dict)
    secrets_by_kind: dict[str, int] = field(default_factory=dict)
    created_by_kind: dict[str, int] = field(default_factory=dict)
    accounts_created: int = 0
    #: Secrets of the file whose account has a secret of the same name already (left alone).
    already_vaulted: int = 0
    created_keys: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def secret_count(self) -> int:
        """How many secrets the matched rows (and the proposed ones) would make."""
        return sum(self.secrets_by_kind.values())

    def listed(self, rows: list[Any]) -> list[Any]:
        """The first MAX_LISTED rows of a section."""
        return rows[:MAX_LISTED]

    @property
    def assigned(self) -> int:
        """Rows that match no account by themselves and go where the user chose."""
        return sum(1 for row in self.matched if row.is_assigned)

    def to_import(self, create: set[str] | frozenset[str]) -> list[RowPlan]:
        """The rows an apply with ``create`` (keys of new accounts) vaults, in file order."""
        rows = [*self.matched, *(r for r in self.proposed if r.new_key in create)]
        return sorted(rows, key=lambda r: r.line)

    def vault_counts(self, create: set[str] | frozenset[str]) -> dict[str, int]:
        """Secrets by kind an apply with ``create`` vaults (those the vault has already are left alone)."""
        kinds: Counter[str] = Counter(p.kind for row in self.to_import(create) for p in row.secrets if not p.exists)
        return dict(sorted(kinds.items()))


def _too_long(kind: str, value: str | list[str]) -> str | None:
    """The vault's own limits, checked up front so that one entry cannot make the whole import fail."""
    if isinstance(value, list):
        if len(value) > MAX_RECOVERY_CODES or any(len(code) > MAX_RECOVERY_CODE for code in value):
            return f"more than {MAX_RECOVERY_CODES} recovery codes, or a code longer than {MAX_RECOVERY_CODE} characters"
        return None
    limit = VAULT_MAX_VALUE.get(kind)
    return f"its {kind.replace('_', ' ')} is longer than {limit} characters" if limit and len(value) > limit else None


def _planned_secrets(entry: Entry) -> tuple[list[PlannedSecret], str | None]:
    title = entry.title or entry.login or "Imported"
    if entry.is_generic:  # one secret per row
        if entry.kind == "totp":
            problem = totp_problem(entry.value.strip())
            if problem:
                return [], problem
        if entry.kind == "recovery_codes" and not recovery_codes(entry.value):
            return [], "no recovery codes in the value"
        if entry.kind == "api_token" and entry.expires and _expiry(entry.expires) is None:
            return [], "the expiry date is not YYYY-MM-DD"
        problem = _too_long(entry.kind, recovery_codes(entry.value) if entry.kind == "recovery_codes" else entry.value)
        return ([], problem) if problem else ([PlannedSecret(entry.kind, title)], None)
    planned: list[PlannedSecret] = []
    if entry.password.strip():
        planned.append(PlannedSecret("password", title))
    if entry.totp:
        problem = totp_problem(entry.totp)
        if problem:
            return [], problem
        planned.append(PlannedSecret("totp", f"{title} (2FA)"))
    if entry.notes:
        planned.append(PlannedSecret("note", f"{title} (notes)"))
    for kind, value in (("password", entry.password), ("note", entry.notes)):
        problem = _too_long(kind, value)
        if problem:
            return [], problem
    if not planned:
        return [], "has no password, one-time password seed or notes to import"
    return planned, None


def _expiry(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _account_label(account: Account) -> str:
    return f"@{account.handle} on {account.platform_label}"


def _value_in_metadata(entry: Entry, planned: list[PlannedSecret]) -> bool:
    """The vault refuses metadata that contains the value; say so in the preview instead of failing."""
    values = [entry.value] if entry.is_generic else [entry.password, entry.totp]
    metadata = [entry.title, entry.login, entry.url, *(p.label for p in planned)]
    return any(len(v.strip()) >= 6 and any(v.strip() in m for m in metadata if m) for v in values if v)


def resolve_account(session: Session, reference: str) -> Account:
    """The account named by its id, by "platform:handle", by "@handle" (when one platform has it) or
    by its address; raise InvalidError saying why not. An archived account takes no new secrets."""
    text = reference.strip()
    account: Account | None = None
    if re.fullmatch(r"#?\d{1,10}", text):
        account = session.get(Account, int(text.lstrip("#")))
    elif ":" in text and "/" not in text and text.split(":", 1)[0].strip().lower() in PLATFORMS:
        platform, handle = (part.strip() for part in text.split(":", 1))
        platform = platform.lower()
        account = session.scalar(select(Account).where(Account.platform == platform,
                                                       Account.handle == normalise_handle(platform, handle)))
    elif text:
        index = build_index(session)
        if "/" in text:
            found = index.by_url.get(normalise_url(text), [])
        else:
            found = index.by_any_handle.get(normalise_handle("other", text), [])
        if len(found) > 1:
            raise InvalidError(f"{text[:80]!r} names {len(found)} accounts; give its id or platform:handle")
        account = found[0] if found else None
    if account is None:
        raise InvalidError(f"no account {text[:80]!r}: give its id, platform:handle (instagram:acme) or its address")
    if account.status == "archived":
        raise InvalidError(f"{_account_label(account)} is archived; it takes no new secrets")
    return account


def plan_import(session: Session, parsed: ParsedFile, *, assign: Mapping[int, Account] | None = None,
                fallback: Account | None = None) -> ImportReport:
    """Match every entry to an account; writes nothing.

    An entry that matches no account goes to ``assign[its line]``, else to ``fallback``, when given.
    """
    report = ImportReport(format=parsed.format, filename=parsed.filename, sha256=parsed.sha256, rows=parsed.rows,
                          skipped=list(parsed.problems))
    index = build_index(session)
    for entry in parsed.entries:
        row = RowPlan(line=entry.line, title=entry.title, login=entry.login, url=entry.url[:200], status="unmatched", entry=entry)
        secrets, problem = _planned_secrets(entry)
        if not problem and _value_in_metadata(entry, secrets):
            problem = "the entry's title, login or address contains its password or seed; fix the entry first"
        if problem:
            report.skipped.append(RowProblem(entry.line, problem))
            continue
        row.secrets = secrets
        match = match_entry(index, entry)
        if match.account is not None and match.account.status == "archived":
            report.skipped.append(RowProblem(entry.line, f"{_account_label(match.account)} is archived; it takes no new secrets"))
        elif match.account is not None:
            row.status, row.account_id, row.account_label = "matched", match.account.id, _account_label(match.account)
            report.matched.append(row)
        elif match.new_key is not None:
            assert match.platform is not None and match.handle is not None
            row.status, row.new_key = "new_account", match.new_key
            row.account_label = f"@{match.handle} on {PLATFORM_LABELS[match.platform]}"
            proposal = report.new_accounts.setdefault(
                match.new_key, NewAccount(match.new_key, match.platform, match.handle, entry.title or match.handle))
            proposal.lines.append(entry.line)
            report.proposed.append(row)
        elif (chosen := (assign or {}).get(entry.line) or fallback) is not None:
            row.status, row.account_id, row.account_label = "matched", chosen.id, _account_label(chosen)
            row.is_assigned, row.reason = True, match.reason
            report.matched.append(row)
        else:
            row.reason = match.reason
            report.unmatched.append(row)
    _settle_labels(session, report)
    report.skipped.sort(key=lambda p: p.line)
    return report


def _settle_labels(session: Session, report: ImportReport) -> None:
    """Mark secrets the vault has already (same account and name) and make the file's own labels unique."""
    account_ids = {r.account_id for r in report.matched if r.account_id is not None}
    existing: dict[Any, set[str]] = {}
    if account_ids:
        for account_id, label in session.execute(select(Secret.account_id, Secret.label).where(Secret.account_id.in_(account_ids))):
            existing.setdefault(account_id, set()).add(label)
    taken: dict[Any, set[str]] = {}
    kinds: Counter[str] = Counter()
    for row in sorted([*report.matched, *report.proposed], key=lambda r: r.line):
        key = row.account_id if row.account_id is not None else row.new_key
        vaulted = existing.get(key, set())
        used = taken.setdefault(key, set())
        for planned in row.secrets:
            planned.label = planned.label[:MAX_LABEL_LENGTH]
            if planned.label in vaulted:
                planned.exists = True
                report.already_vaulted += 1
                continue
            if planned.label in used:
                planned.label = f"{planned.label[:MAX_LABEL_LENGTH - 14]} (line {row.line})"
            used.add(planned.label)
            if row.status == "matched":
                kinds[planned.kind] += 1
    report.secrets_by_kind = dict(sorted(kinds.items()))


def preview_import(session: Session, parsed: ParsedFile, *, assign: Mapping[int, Account] | None = None,
                   fallback: Account | None = None) -> ImportReport:
    """What the import would do; writes nothing."""
    return plan_import(session, parsed, assign=assign, fallback=fallback)


class ImportFailedError(InvalidError):
    """A row could not be vaulted; nothing was imported."""


SecretCreator = Callable[..., Any]


def apply_import(session: Session, parsed: ParsedFile, *, actor: User, keyring: Keyring | None,
                 create_accounts: set[str] | frozenset[str] = frozenset(), progress: Progress | None = None,
                 create_secret: SecretCreator | None = None, assign: Mapping[int, Account] | None = None,
                 fallback: Account | None = None) -> ImportReport:
    """Vault every matched entry (and those of the accounts chosen for creation, and the unmatched
    ones given an account with ``assign``/``fallback``); one audit event."""
    if create_secret is None:
        create_secret = vault_create_secret
    report = plan_import(session, parsed, assign=assign, fallback=fallback)
    accounts: dict[str, Account] = {}
    for key in sorted(create_accounts & set(report.new_accounts)):
        proposal = report.new_accounts[key]
        try:
            accounts[key] = create_account(session, actor=actor, data=AccountInput(
                platform=proposal.platform, handle=proposal.handle, display_name=proposal.display_name[:200] or proposal.handle))
        except AuditWriteError:
            raise
        except GovernError as exc:
            raise ImportFailedError(f"The account {proposal.label} could not be created: {exc.message} Nothing was imported.") from None
    report.accounts_created = len(accounts)
    report.created_keys = sorted(accounts)
    rows = report.to_import(set(accounts))
    created: Counter[str] = Counter()
    by_id = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_({r.account_id for r in rows if r.account_id})))}
    for row in rows:
        account = by_id[row.account_id] if row.account_id is not None else accounts[row.new_key or ""]
        entry = row.entry
        assert entry is not None
        for planned in row.secrets:
            if planned.exists:
                continue
            try:
                create_secret(session, actor=actor, keyring=keyring, account=account, kind=planned.kind,
                              label=planned.label[:MAX_LABEL_LENGTH], **_secret_fields(entry, planned.kind))
            except AuditWriteError:
                raise  # the app answers 503: nothing is done that cannot be recorded
            except GovernError as exc:
                raise ImportFailedError(f"Line {row.line} could not be vaulted ({planned.kind}): {exc.message} Nothing was imported.") from None
            created[planned.kind] += 1
        if progress is not None:
            progress(1)
    if progress is not None:
        progress(len(parsed.entries) - len(rows))  # entries left out: the bar still ends at 100 %
    report.created_by_kind = dict(sorted(created.items()))
    report.applied = True
    not_created = [r for r in report.proposed if r.new_key not in accounts]
    audit.record(session, "vault.imported", actor=actor, details={
        "format": report.format, "file_name": report.filename, "sha256": report.sha256, "rows": report.rows,
        "rows_imported": len(rows), "secrets_created": [{"kind": k, "count": n} for k, n in report.created_by_kind.items()],
        "already_vaulted": report.already_vaulted, "accounts_created": report.accounts_created,
        "rows_assigned": report.assigned, "rows_unmatched": len(report.unmatched), "rows_skipped": len(report.skipped),
        "rows_for_accounts_not_created": len(not_created),
    })
    session.flush()
    return report


def _secret_fields(entry: Entry, kind: str) -> dict[str, Any]:
    """The value and metadata handed to create_secret for one secret of an entry."""
    login = entry.login or None
    url = clean_url(entry.url)
    if entry.is_generic:
        raw = entry.value
        value: str | list[str] = raw
        if kind == "totp":
            value = raw.strip()
        elif kind == "recovery_codes":
            value = recovery_codes(raw)
        elif kind in ("api_token",):
            value = raw.strip()
        return {"value": value, "login": login, "url": url,
                "token_expires_at": _expiry(entry.expires) if kind == "api_token" and entry.expires else None}
    if kind == "password":
        return {"value": entry.password, "login": login, "url": url}
    if kind == "totp":
        return {"value": entry.totp, "login": login, "url": url}
    return {"value": entry.notes, "login": None, "url": url}
