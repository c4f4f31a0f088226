"""Account registry rules: validation per platform, visibility, risk flags, the role catalogue."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import BindParameter, Row, Select, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from govern import audit
from govern.accounts.models import (
    ACCOUNT_STATUSES,
    ACCOUNT_TIERS,
    PLATFORM_LABELS,
    PLATFORMS,
    Account,
    PlatformRoleName,
    Role,
)
from govern.audit.services import Actor
from govern.auth.roles import sees_all_accounts
from govern.directory.models import Person
from govern.errors import ConflictError, InvalidError, NotFoundError, get_or_raise
from govern.grants.models import Grant, PlatformRemoval
from govern.paging import Page, page_of, read_page
from govern.policies.services import unaccepted_count_in_grants, unaccepted_grant_ids


@dataclass(frozen=True)
class PlatformRules:
    """How a platform spells handles and where its profiles live."""

    handle: str  # regular expression for the handle (without @)
    hosts: tuple[str, ...]  # accepted URL hosts (suffix match)
    profile_url: str | None  # canonical URL from a handle, "{handle}" substituted
    example: str


PLATFORM_RULES: dict[str, PlatformRules] = {
    "facebook": PlatformRules(r"[A-Za-z0-9.]{5,50}", ("facebook.com", "fb.com"), "https://www.facebook.com/{handle}", "acme.official"),
    "instagram": PlatformRules(r"[A-Za-z0-9._]{1,30}", ("instagram.com",), "https://www.instagram.com/{handle}", "acme"),
    "x": PlatformRules(r"[A-Za-z0-9_]{1,15}", ("x.com", "twitter.com"), "https://x.com/{handle}", "acme_news"),
    "linkedin": PlatformRules(r"[A-Za-z0-9-]{2,100}", ("linkedin.com",), "https://www.linkedin.com/company/{handle}", "acme-corp"),
    "tiktok": PlatformRules(r"[A-Za-z0-9._]{2,24}", ("tiktok.com",), "https://www.tiktok.com/@{handle}", "acme"),
    "youtube": PlatformRules(r"[A-Za-z0-9._-]{3,30}", ("youtube.com",), "https://www.youtube.com/@{handle}", "AcmeTV"),
    "threads": PlatformRules(r"[A-Za-z0-9._]{1,30}", ("threads.net", "threads.com"), "https://www.threads.net/@{handle}", "acme"),
    "pinterest": PlatformRules(r"[A-Za-z0-9_]{3,30}", ("pinterest.com",), "https://www.pinterest.com/{handle}", "acmehome"),
    "snapchat": PlatformRules(r"[A-Za-z][A-Za-z0-9._-]{2,14}", ("snapchat.com",), "https://www.snapchat.com/add/{handle}", "acme"),
    "bluesky": PlatformRules(r"(?=.{3,253}$)([A-Za-z0-9-]+\.)+[A-Za-z]{2,}", ("bsky.app",), "https://bsky.app/profile/{handle}", "acme.bsky.social"),
    "mastodon": PlatformRules(r"[A-Za-z0-9_]{1,30}@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}", (), None, "acme@mastodon.social"),
    "other": PlatformRules(r"[^\s]{1,120}", (), None, "acme"),
}


@dataclass
class AccountInput:
    """What a form or import says about an account (validated by ``validate_account``)."""

    platform: str
    handle: str
    display_name: str
    url: str = ""
    business_owner_id: int | None = None
    crisis_contact_id: int | None = None
    recovery_email_person_id: int | None = None
    recovery_email_label: str = ""
    recovery_phone_person_id: int | None = None
    recovery_phone_label: str = ""
    tier: str = "standard"
    status: str = "active"
    rotation_interval_days: int = 90
    max_credential_holders: int = 3
    min_admins: int = 2
    notes: str = ""


def normalise_handle(platform: str, handle: str) -> str:
    """Trim, drop a leading @ (except inside Mastodon's user@instance) and lower-case."""
    handle = handle.strip()
    if handle.startswith("@"):
        handle = handle[1:]
    return handle.lower()


def canonical_url(platform: str, handle: str) -> str | None:
    """The profile URL a handle implies, where the platform has one."""
    if platform == "mastodon" and "@" in handle:
        user, instance = handle.split("@", 1)
        return f"https://{instance}/@{user}"
    rules = PLATFORM_RULES[platform]
    return rules.profile_url.format(handle=handle) if rules.profile_url else None


def validate_account(data: AccountInput) -> dict[str, Any]:
    """Check an account's fields; return clean values or raise InvalidError with every reason."""
    errors: dict[str, str] = {}
    platform = data.platform.strip().lower()
    if platform not in PLATFORMS:
        errors["platform"] = "Choose a platform from the list."
        raise InvalidError("Choose a platform from the list.", errors)
    rules = PLATFORM_RULES[platform]
    handle = normalise_handle(platform, data.handle)
    if not re.fullmatch(rules.handle, handle):
        errors["handle"] = f"That is not a valid {PLATFORM_LABELS[platform]} handle (for example @{rules.example})."
    url = data.url.strip() or (canonical_url(platform, handle) or "" if "handle" not in errors else "")
    if not url:
        errors.setdefault("url", "Enter the account's web address.")
    else:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not host:
            errors["url"] = "Enter the full address starting with https://."
        elif rules.hosts and not any(host == h or host.endswith("." + h) for h in rules.hosts):
            errors["url"] = f"A {PLATFORM_LABELS[platform]} address is on {' or '.join(rules.hosts)}."
        elif len(url) > 500:
            errors["url"] = "That address is too long."
    display_name = data.display_name.strip()
    if not display_name or len(display_name) > 200:
        errors["display_name"] = "Enter the name the account shows (up to 200 characters)."
    if data.tier not in ACCOUNT_TIERS:
        errors["tier"] = "Choose a tier from the list."
    if data.status not in ACCOUNT_STATUSES:
        errors["status"] = "Choose a status from the list."
    for name, low, high in (("rotation_interval_days", 1, 3650), ("max_credential_holders", 1, 100), ("min_admins", 1, 20)):
        value = getattr(data, name)
        if not isinstance(value, int) or not low <= value <= high:
            errors[name] = f"Use a whole number from {low} to {high}."
    for label_name in ("recovery_email_label", "recovery_phone_label"):
        if len(getattr(data, label_name).strip()) > 200:
            errors[label_name] = "Use at most 200 characters."
    if errors:
        raise InvalidError(next(iter(errors.values())), errors)
    return {
        "platform": platform, "handle": handle, "url": url, "display_name": display_name,
        "business_owner_id": data.business_owner_id, "crisis_contact_id": data.crisis_contact_id,
        "recovery_email_person_id": data.recovery_email_person_id,
        "recovery_email_label": data.recovery_email_label.strip() or None,
        "recovery_phone_person_id": data.recovery_phone_person_id,
        "recovery_phone_label": data.recovery_phone_label.strip() or None,
        "tier": data.tier, "status": data.status, "rotation_interval_days": data.rotation_interval_days,
        "max_credential_holders": data.max_credential_holders, "min_admins": data.min_admins,
        "notes": data.notes.strip() or None,
    }


def _check_people_exist(session: Session, values: Mapping[str, Any]) -> None:
    ids = {values[k] for k in ("business_owner_id", "crisis_contact_id", "recovery_email_person_id", "recovery_phone_person_id") if values.get(k)}
    if ids:
        found = set(session.scalars(select(Person.id).where(Person.id.in_(ids))))
        if found != ids:
            raise InvalidError("One of the chosen people does not exist.")


def create_account(session: Session, *, actor: Actor | None, data: AccountInput) -> Account:
    """Register an official account."""
    values = validate_account(data)
    _check_people_exist(session, values)
    if session.scalar(select(Account.id).where(Account.platform == values["platform"], Account.handle == values["handle"])):
        raise ConflictError(f"@{values['handle']} on {PLATFORM_LABELS[values['platform']]} is registered already.")
    account = Account(**values)
    session.add(account)
    session.flush()
    audit.record(session, "account.created", actor=actor, target_type="account", target_id=account.id,
                 details={"platform": account.platform, "handle": account.handle})
    return account


def update_account(session: Session, *, actor: Actor, account: Account, data: AccountInput) -> list[str]:
    """Change an account's registry entry; returns the names of the fields that changed."""
    values = validate_account(data)
    _check_people_exist(session, values)
    clash = session.scalar(select(Account.id).where(Account.platform == values["platform"], Account.handle == values["handle"], Account.id != account.id))
    if clash:
        raise ConflictError(f"@{values['handle']} on {PLATFORM_LABELS[values['platform']]} is registered already.")
    changes = {k: {"from": _plain(getattr(account, k)), "to": _plain(v)} for k, v in values.items() if getattr(account, k) != v}
    for key in changes:
        setattr(account, key, values[key])
    if changes:
        session.flush()
        audit.record(session, "account.updated", actor=actor, target_type="account", target_id=account.id,
                     details={"changes": {k: v for k, v in changes.items() if k != "notes"}, "notes_changed": "notes" in changes})
    return sorted(changes)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, int | str | bool) else str(value)


def get_account(session: Session, account_id: int) -> Account:
    """Return the account or raise NotFoundError."""
    return get_or_raise(session, Account, account_id, "No such account.")


# --- visibility ------------------------------------------------------------------------------------


def visible_accounts_clause(user: Any) -> Any:
    """SQL condition limiting accounts to those ``user`` may see."""
    if sees_all_accounts(user.roles):
        return True
    return or_(Account.business_owner_id == user.person_id, Account.crisis_contact_id == user.person_id)


def can_see_account(user: Any, account: Account) -> bool:
    """Object-level check of ``visible_accounts_clause`` for one account."""
    return sees_all_accounts(user.roles) or user.person_id in (account.business_owner_id, account.crisis_contact_id)


# --- risk flags ------------------------------------------------------------------------------------

RISK_FLAGS = {
    "few_admins": "Fewer admins than the minimum",
    "too_many_holders": "More credential holders than allowed",
    "inactive_contact": "Owner, crisis contact or recovery holder is not active",
    "no_owner": "No business owner",
    "policy_missing": "Holders who have not accepted the current policy",
    "unconfirmed_removals": "Removals from the platform not yet confirmed",
}


@dataclass
class AccountStats:
    """Per-account counts behind the risk flags, computed for many accounts in a few queries."""

    admins: int = 0
    holders: int = 0
    active_grants: int = 0
    unaccepted: int = 0
    unconfirmed_removals: int = 0
    flags: list[str] = field(default_factory=list)
    #: Filled only when asked for (the account page marks those grants); lists need the count only.
    unaccepted_grant_ids: set[int] = field(default_factory=set)


def account_stats(session: Session, accounts: Sequence[Any], *, with_grant_ids: bool = False) -> dict[int, AccountStats]:
    """Counts and risk flags of ``accounts`` (Account objects, or rows with their id, status, owner id and
    limits): one query, whatever their number.

    ``with_grant_ids`` also names the grants whose holder has not accepted the policy (one more query,
    when there are any).
    """
    ids = [a.id for a in accounts]
    stats = {account_id: AccountStats() for account_id in ids}
    if not ids:
        return stats
    inactive: set[int] = set()
    for account_id, total, admins, holders, removals, unaccepted, contact_inactive in session.execute(
        _stats_statement(), {"account_ids": ids}
    ):
        s = stats[account_id]
        s.active_grants, s.admins, s.holders = total, admins, holders
        s.unconfirmed_removals, s.unaccepted = removals, unaccepted
        if contact_inactive:
            inactive.add(account_id)
    lacking = [account_id for account_id in ids if stats[account_id].unaccepted]
    if with_grant_ids and lacking:
        for account_id, grant_ids in unaccepted_grant_ids(session, lacking).items():
            stats[account_id].unaccepted_grant_ids = grant_ids
    for account in accounts:
        s = stats[account.id]
        if account.status != "archived" and s.admins < account.min_admins:
            s.flags.append("few_admins")
        if s.holders > account.max_credential_holders:
            s.flags.append("too_many_holders")
        if account.id in inactive:
            s.flags.append("inactive_contact")
        if account.business_owner_id is None:
            s.flags.append("no_owner")
        if s.unaccepted:
            s.flags.append("policy_missing")
        if s.unconfirmed_removals:
            s.flags.append("unconfirmed_removals")
    return stats


def _stats_statement() -> Select[*tuple[Any, ...]]:
    """Per account of the expanding parameter ``account_ids``: active grants, admins, credential holders,
    unconfirmed removals, grants lacking policy acceptance, and whether a named contact is not active.

    One statement: each grouped derived table reads the grants (or removals) of these accounts once
    through the account index. (Correlated subqueries per column read them three times over, which
    cost PostgreSQL 3 ms.)
    """
    account_ids: BindParameter[list[int]] = bindparam("account_ids", expanding=True)
    current_policy, unaccepted = unaccepted_count_in_grants()
    grants = (
        select(
            Grant.account_id,
            func.count().label("total"),
            # People, not grants: someone who is both owner and admin is one admin, and one holder.
            func.count(func.distinct(case((Role.is_admin_role.is_(True), Grant.person_id)))).label("admins"),
            func.count(func.distinct(case((Role.may_reveal.is_(True), Grant.person_id)))).label("holders"),
            unaccepted.label("unaccepted"),
        )
        .join(Role, Role.code == Grant.role_code)
        .outerjoin(current_policy, current_policy.c.tier == Role.policy_tier)
        .where(Grant.account_id.in_(account_ids), Grant.status == "active")
        .group_by(Grant.account_id)
        .subquery()
    )
    removals = (
        select(PlatformRemoval.account_id, func.count().label("open"))
        .where(PlatformRemoval.account_id.in_(account_ids), PlatformRemoval.confirmed_at.is_(None))
        .group_by(PlatformRemoval.account_id)
        .subquery()
    )
    contacts = (Account.business_owner_id, Account.crisis_contact_id, Account.recovery_email_person_id,
                Account.recovery_phone_person_id)
    return (
        select(
            Account.id,
            func.coalesce(grants.c.total, 0),
            func.coalesce(grants.c.admins, 0),
            func.coalesce(grants.c.holders, 0),
            func.coalesce(removals.c.open, 0),
            func.coalesce(grants.c.unaccepted, 0),
            select(Person.id).where(Person.id.in_(contacts), Person.status != "active").exists(),
        )
        .outerjoin(grants, grants.c.account_id == Account.id)
        .outerjoin(removals, removals.c.account_id == Account.id)
        .where(Account.id.in_(account_ids))
    )


@dataclass
class AccountFilter:
    """Filters of the accounts list."""

    platform: str | None = None
    owner_id: int | None = None
    department: str | None = None
    status: str | None = None
    risk: str | None = None
    q: str | None = None


def accounts_query(user: Any, flt: AccountFilter) -> Select[Account]:
    """Accounts visible to ``user`` matching ``flt`` (risk flags are applied afterwards)."""
    query = select(Account)
    scope = visible_accounts_clause(user)
    if scope is not True:  # seeing everyone adds no condition: SQLite then counts from the b-tree alone
        query = query.where(scope)
    if flt.platform:
        query = query.where(Account.platform == flt.platform)
    if flt.owner_id:
        query = query.where(Account.business_owner_id == flt.owner_id)
    if flt.status:
        query = query.where(Account.status == flt.status)
    if flt.department:
        owner = select(Person.id).where(Person.department == flt.department)
        query = query.where(Account.business_owner_id.in_(owner))
    if flt.q:
        term = f"%{flt.q.strip().lower().lstrip('@')}%"
        query = query.where(or_(Account.handle.like(term), func.lower(Account.display_name).like(term)))
    return query.order_by(Account.platform, Account.handle)


#: The business owner of a listed account, joined by id for their name.
_OWNER = aliased(Person)

#: What the accounts list shows and its risk flags read: plain rows, not ORM objects (building and
#: later expiring 50 accounts and their owners as objects cost more than the page's statements).
_LIST_COLUMNS = (Account.id, Account.platform, Account.handle, Account.display_name, Account.status,
                 Account.business_owner_id, Account.min_admins, Account.max_credential_holders,
                 _OWNER.full_name.label("owner_name"))


def list_accounts(session: Session, user: Any, flt: AccountFilter, *, page: int, per_page: int = 50) -> tuple[Page[Row[*tuple[Any, ...]]], dict[int, AccountStats]]:
    """One page of accounts (rows of ``_LIST_COLUMNS``, with the owner's name), counted, and their stats."""
    query = accounts_query(user, flt)
    rows_query = query.with_only_columns(*_LIST_COLUMNS).outerjoin(_OWNER, _OWNER.id == Account.business_owner_id)
    if flt.risk:
        # Flags are computed, not stored: compute them for the (at most a few thousand) matches.
        candidates = list(session.execute(rows_query))
        stats = account_stats(session, candidates)
        return page_of([a for a in candidates if flt.risk in stats[a.id].flags], page, per_page), stats
    # Counted straight over accounts, not over a subquery of whole rows (SQLite materialises that).
    # Seeing every account, unfiltered: no parameter but the page (see page_bounds).
    accounts = read_page(session, rows_query, page, per_page, in_sql=query.whereclause is None,
                         count=query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None))
    return accounts, account_stats(session, accounts.items)


# --- role catalogue ----------------------------------------------------------------------------------


def roles(session: Session) -> list[Role]:
    """The role catalogue in display order."""
    return list(session.scalars(select(Role).order_by(Role.sort_order)))


def roles_and_platform_names(session: Session, platform: str) -> tuple[list[Role], dict[str, list[PlatformRoleName]]]:
    """``roles`` and ``platform_role_names`` of one platform in one query (the account page needs both)."""
    catalogue: list[Role] = []
    names: dict[str, list[PlatformRoleName]] = {}
    for role, name in session.execute(
        select(Role, PlatformRoleName)
        .outerjoin(PlatformRoleName, and_(PlatformRoleName.role_code == Role.code, PlatformRoleName.platform == platform))
        .order_by(Role.sort_order, PlatformRoleName.id)
    ):
        if not catalogue or catalogue[-1] is not role:
            catalogue.append(role)
        if name is not None:
            names.setdefault(role.code, []).append(name)
    return catalogue, names


def platform_role_names(session: Session, platform: str) -> dict[str, list[PlatformRoleName]]:
    """The platform's own names for each catalogue role, by role code."""
    names: dict[str, list[PlatformRoleName]] = {}
    for row in session.scalars(select(PlatformRoleName).where(PlatformRoleName.platform == platform).order_by(PlatformRoleName.id)):
        names.setdefault(row.role_code, []).append(row)
    return names


def platform_role_label(session: Session, account: Account, role_code: str) -> str:
    """e.g. "LinkedIn Super admin"; falls back to the catalogue role's name."""
    row = session.scalar(
        select(PlatformRoleName).where(PlatformRoleName.platform == account.platform, PlatformRoleName.role_code == role_code)
        .order_by(PlatformRoleName.id).limit(1)
    )
    role = session.get(Role, role_code)
    name = row.platform_role if row else (role.name if role else role_code)
    return f"{account.platform_label} {name}"


def platform_role_labels(session: Session, pairs: Iterable[tuple[Account, str]]) -> dict[tuple[int, str], str]:
    """``platform_role_label`` of many (account, role code) pairs, by (account id, role code): two queries."""
    pairs = list(pairs)
    if not pairs:
        return {}
    platforms = sorted({a.platform for a, _ in pairs})
    codes = sorted({code for _, code in pairs})
    names: dict[tuple[str, str], str] = {}
    for row in session.scalars(select(PlatformRoleName).where(PlatformRoleName.platform.in_(platforms),
                                                              PlatformRoleName.role_code.in_(codes))
                               .order_by(PlatformRoleName.id)):
        names.setdefault((row.platform, row.role_code), row.platform_role)  # the lowest id, as above
    roles = {r.code: r.name for r in session.scalars(select(Role).where(Role.code.in_(codes)))}
    return {(a.id, code): f"{a.platform_label} {names[(a.platform, code)] if (a.platform, code) in names else roles.get(code, code)}"
            for a, code in pairs}


def set_platform_role_name(session: Session, *, actor: Actor, mapping_id: int, platform_role: str) -> PlatformRoleName:
    """Edit one mapping (admins keep it in line with the platforms' changes)."""
    row = session.get(PlatformRoleName, mapping_id)
    if row is None:
        raise NotFoundError("No such mapping.")
    name = platform_role.strip()
    if not name or len(name) > 120:
        raise InvalidError("Enter the platform's role name (up to 120 characters).")
    if name != row.platform_role:
        audit.record(session, "role_mapping.updated", actor=actor, target_type="platform_role_name", target_id=row.id,
                     details={"platform": row.platform, "role": row.role_code, "system": row.system, "from": row.platform_role, "to": name})
        row.platform_role = name
    return row


def add_platform_role_name(session: Session, *, actor: Actor, platform: str, role_code: str, system: str, platform_role: str) -> PlatformRoleName:
    """Add a mapping for a platform's role system."""
    if platform not in PLATFORMS or session.get(Role, role_code) is None:
        raise InvalidError("Choose a platform and a role from the lists.")
    system, platform_role = system.strip(), platform_role.strip()
    if not system or not platform_role or len(system) > 80 or len(platform_role) > 120:
        raise InvalidError("Enter the role system and the platform's role name.")
    if session.scalar(select(PlatformRoleName.id).where(and_(PlatformRoleName.platform == platform, PlatformRoleName.role_code == role_code, PlatformRoleName.system == system))):
        raise ConflictError("That mapping exists already; edit it instead.")
    row = PlatformRoleName(platform=platform, role_code=role_code, system=system, platform_role=platform_role)
    session.add(row)
    session.flush()
    audit.record(session, "role_mapping.created", actor=actor, target_type="platform_role_name", target_id=row.id,
                 details={"platform": platform, "role": role_code, "system": system, "name": platform_role})
    return row
