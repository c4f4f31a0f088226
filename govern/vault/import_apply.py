"""The import from password managers: plan every entry (preview), then vault them (apply).

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

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import PLATFORM_LABELS, PLATFORMS, Account
from govern.accounts.services import AccountInput, create_account, normalise_handle
from govern.auth.models import User
from govern.crypto.keyring import Keyring
from govern.errors import AuditWriteError, GovernError, InvalidError
from govern.vault.import_matching import URL_SCHEME, build_index, match_entry, normalise_url
from govern.vault.import_parse import MAX_LABEL_LENGTH, MAX_URL_LENGTH, Entry, ParsedFile, RowProblem
from govern.vault.models import Secret
from govern.vault.values import MAX_RECOVERY_CODE, MAX_RECOVERY_CODES, parse_totp
from govern.vault.values import MAX_VALUE as VAULT_MAX_VALUE
from govern.vault.versions import create_secret as vault_create_secret

#: At most this many rows are listed per section of a preview (the counts are always complete).
MAX_LISTED = 500

Progress = Callable[[int], None]


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
    if url and not URL_SCHEME.match(url) and re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?", url):
        url = "https://" + url
    parts = urlsplit(url) if url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH:
        return None
    return url


def recovery_codes(value: str) -> list[str]:
    """Split a cell of recovery codes on newlines, commas, semicolons or runs of spaces."""
    return [code for code in re.split(r"[\s,;]+", value.strip()) if code]


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

