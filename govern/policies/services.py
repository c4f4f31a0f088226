"""Policy versions and acceptance: publishing, rendering, what must be accepted, and who has not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, case, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account, Role
from govern.auth.models import User
from govern.auth.roles import sees_all_accounts
from govern.directory.models import Person
from govern.errors import ConflictError, InvalidError, get_or_raise
from govern.events import policy_accepted
from govern.grants.models import Grant
from govern.paging import Page, count_of, read_page
from govern.policies.models import Acknowledgement, PolicyVersion

#: Everyone must accept this tier once a version of it is published.
STANDARD_TIER = "standard"
TIER_PATTERN = re.compile(r"[a-z_]{2,32}")
MAX_TITLE = 200
MAX_BODY = 100_000

# CommonMark with raw HTML off: tags in the text are escaped, and markdown-it's link validator
# refuses javascript:, vbscript:, file: and non-image data: URLs.
_markdown = MarkdownIt("commonmark", {"html": False})


def render_markdown(text: str) -> str:
    """HTML of a policy body, safe to insert in a page (raw HTML escaped, unsafe links refused).

    Headings move one level down (# becomes <h2>): the page's own title is its only <h1>.
    """
    tokens = _markdown.parse(text or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    return str(_markdown.renderer.render(tokens, _markdown.options, {}))


# --- current versions --------------------------------------------------------------------------------


def current_versions_query():
    """Subquery: the newest version (id, tier, version) per tier."""
    newest = select(PolicyVersion.tier, func.max(PolicyVersion.version).label("version")).group_by(PolicyVersion.tier).subquery()
    return (
        select(PolicyVersion.id, PolicyVersion.tier, PolicyVersion.version)
        .join(newest, and_(newest.c.tier == PolicyVersion.tier, newest.c.version == PolicyVersion.version))
        .subquery()
    )


def current_version(session: Session, tier: str) -> PolicyVersion | None:
    """The newest published version of ``tier``'s policy, if any."""
    return session.scalar(
        select(PolicyVersion).where(PolicyVersion.tier == tier).order_by(PolicyVersion.version.desc()).limit(1)
    )


def has_accepted(session: Session, person_id: int, version: PolicyVersion) -> bool:
    """True when the person accepted this version."""
    return session.scalar(
        select(Acknowledgement.id).where(Acknowledgement.person_id == person_id, Acknowledgement.policy_version_id == version.id)
    ) is not None


def get_version(session: Session, version_id: int) -> PolicyVersion:
    """Return the policy version or raise NotFoundError."""
    return get_or_raise(session, PolicyVersion, version_id, "No such policy version.")


# --- publishing and accepting --------------------------------------------------------------------------


def publish_version(session: Session, *, actor: User, tier: str, title: str, body_markdown: str) -> PolicyVersion:
    """Publish the next version of ``tier``'s policy; everyone it covers must accept it again."""
    tier = (tier or "").strip()
    title = (title or "").strip()
    body = (body_markdown or "").replace("\r\n", "\n").strip()
    reasons: dict[str, str] = {}
    if not TIER_PATTERN.fullmatch(tier):
        reasons["tier"] = "Use 2 to 32 lower-case letters or underscores, for example standard or privileged."
    if not title:
        reasons["title"] = "Give the policy a title."
    elif len(title) > MAX_TITLE:
        reasons["title"] = f"Keep the title under {MAX_TITLE} characters."
    if not body:
        reasons["body_markdown"] = "Write the policy text."
    elif len(body) > MAX_BODY:
        reasons["body_markdown"] = f"Keep the policy under {MAX_BODY:,} characters."
    if reasons:
        raise InvalidError("Check the highlighted fields.", reasons)
    latest = session.scalar(select(func.max(PolicyVersion.version)).where(PolicyVersion.tier == tier)) or 0
    version = PolicyVersion(tier=tier, version=latest + 1, title=title, body_markdown=body, published_by_id=actor.id)
    session.add(version)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Two admins published the same tier at once; the unique (tier, version) kept one.
        raise ConflictError(f"Someone else just published a {tier} version; reload the list and try again.") from None
    audit.record(session, "policy.published", actor=actor, target_type="policy_version", target_id=version.id,
                 details={"tier": tier, "version": version.version, "title": title, "length": len(body)})
    return version


def accept_version(session: Session, *, actor: User, version: PolicyVersion) -> tuple[Acknowledgement, bool]:
    """Record that the actor's person accepted ``version``; accepting twice changes nothing.

    Returns the acknowledgement and whether it is new. Only the current version of a tier can be
    accepted: an older one no longer says what the person agrees to.
    """
    current = current_version(session, version.tier)
    if current is None or current.id != version.id:
        newest = f" (version {current.version})" if current is not None else ""
        raise ConflictError(f"Version {version.version} of the {version.tier} policy was replaced; accept the current version{newest} instead.")
    existing = _acknowledgement(session, actor.person_id, version.id)
    if existing is not None:
        return existing, False
    ack = Acknowledgement(person_id=actor.person_id, policy_version_id=version.id)
    session.add(ack)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # A double click raced us: the other request recorded it, which is all we wanted.
        existing = _acknowledgement(session, actor.person_id, version.id)
        assert existing is not None
        return existing, False
    audit.record(session, "policy.accepted", actor=actor, target_type="policy_version", target_id=version.id,
                 details={"person_id": actor.person_id, "tier": version.tier, "version": version.version})
    policy_accepted.send(version, session=session, actor=actor, person_id=actor.person_id)
    return ack, True


def _acknowledgement(session: Session, person_id: int, version_id: int) -> Acknowledgement | None:
    return session.scalar(
        select(Acknowledgement).where(Acknowledgement.person_id == person_id, Acknowledgement.policy_version_id == version_id)
    )


def acceptance_of(session: Session, person_id: int, version_ids: list[int]) -> dict[int, Acknowledgement]:
    """The person's acknowledgements of the given versions, by version id."""
    if not version_ids:
        return {}
    rows = session.scalars(
        select(Acknowledgement).where(Acknowledgement.person_id == person_id, Acknowledgement.policy_version_id.in_(version_ids))
    )
    return {row.policy_version_id: row for row in rows}


# --- what a person must accept -------------------------------------------------------------------------


def required_tiers_clause(person_id: Any) -> ColumnElement[bool]:
    """SQL condition on PolicyVersion.tier: the standard tier, and the tiers of roles held or requested."""
    held = (
        select(Role.policy_tier)
        .join(Grant, Grant.role_code == Role.code)
        .where(Grant.person_id == person_id, Grant.status.in_(("active", "requested")))
    )
    return or_(PolicyVersion.tier == STANDARD_TIER, PolicyVersion.tier.in_(held))


def policies_to_accept(session: Session, person_id: int) -> list[PolicyVersion]:
    """Current versions the person must accept and has not: standard, plus their roles' tiers."""
    return list(session.scalars(_to_accept_statement(), {"person_id": person_id}))


def _to_accept_statement() -> Select[PolicyVersion]:
    """``policies_to_accept`` over the parameter ``person_id``."""
    person_id = bindparam("person_id", type_=Integer)
    current = current_versions_query()
    accepted = select(Acknowledgement.id).where(
        Acknowledgement.person_id == person_id, Acknowledgement.policy_version_id == PolicyVersion.id
    ).exists()
    return (
        select(PolicyVersion)
        .join(current, current.c.id == PolicyVersion.id)
        .where(required_tiers_clause(person_id), ~accepted)
        .order_by(PolicyVersion.tier)
    )


# --- the list of versions ------------------------------------------------------------------------------


@dataclass
class Tier:
    """One tier: its versions newest first, and the catalogue roles that need it."""

    name: str
    versions: list[PolicyVersion] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    @property
    def current(self) -> PolicyVersion | None:
        """The newest version."""
        return self.versions[0] if self.versions else None


def list_tiers(session: Session, *, per_tier: int = 50) -> list[Tier]:
    """Every tier that has a published version or a role that needs it, standard first."""
    tiers: dict[str, Tier] = {}
    for role in session.scalars(select(Role).order_by(Role.sort_order, Role.code)):
        tiers.setdefault(role.policy_tier, Tier(role.policy_tier)).roles.append(role.name)
    numbered = (
        select(PolicyVersion.id, func.row_number().over(partition_by=PolicyVersion.tier, order_by=PolicyVersion.version.desc()).label("n"))
        .subquery()
    )
    versions = session.scalars(
        select(PolicyVersion).join(numbered, numbered.c.id == PolicyVersion.id)
        .where(numbered.c.n <= per_tier).order_by(PolicyVersion.tier, PolicyVersion.version.desc())
    )
    for version in versions:
        tiers.setdefault(version.tier, Tier(version.tier)).versions.append(version)
    return sorted(tiers.values(), key=lambda t: (t.name != STANDARD_TIER, t.name))


def known_tiers(session: Session) -> list[str]:
    """Tier names in use by a role or a published version, for the publish form's suggestions."""
    names = set(session.scalars(select(Role.policy_tier).distinct())) | set(session.scalars(select(PolicyVersion.tier).distinct()))
    return sorted(names | {STANDARD_TIER})


# --- the report of holders who have not accepted -------------------------------------------------------

REPORT_COLUMNS = ("person", "email", "department", "account", "platform", "handle", "role", "tier", "version")


@dataclass
class ReportFilter:
    """Filters of the unaccepted-policy report."""

    tier: str | None = None
    department: str | None = None


def report_scope_clause(user: Any) -> ColumnElement[bool]:
    """Rows the user may see: everything for admin, IT, HR and auditors; a manager's accounts and reports."""
    if sees_all_accounts(user.roles):
        return true()
    return or_(Account.business_owner_id == user.person_id, Person.manager_id == user.person_id)


def unaccepted_query(user: Any, flt: ReportFilter) -> Select[*tuple[Any, ...]]:
    """Active grants whose holder has not accepted the current version of the role's tier (one row each)."""
    current = current_versions_query()
    accepted = select(Acknowledgement.id).where(
        Acknowledgement.person_id == Grant.person_id, Acknowledgement.policy_version_id == current.c.id
    ).exists()
    query = (
        select(
            Grant.id.label("grant_id"), Person.id.label("person_id"), Person.full_name.label("person_name"),
            Person.email.label("person_email"), Person.department, Account.id.label("account_id"),
            Account.display_name.label("account_name"), Account.platform, Account.handle, Account.business_owner_id,
            Account.crisis_contact_id, Role.name.label("role_name"),
            current.c.tier, current.c.version, current.c.id.label("policy_version_id"),
        )
        .select_from(Grant)
        .join(Person, Person.id == Grant.person_id)
        .join(Account, Account.id == Grant.account_id)
        .join(Role, Role.code == Grant.role_code)
        .join(current, current.c.tier == Role.policy_tier)
        .where(Grant.status == "active", ~accepted, report_scope_clause(user))
    )
    if flt.tier:
        query = query.where(current.c.tier == flt.tier)
    if flt.department:
        query = query.where(func.lower(Person.department) == flt.department.strip().lower())
    return query


def unaccepted_report(session: Session, user: Any, flt: ReportFilter, *, page: int, per_page: int = 50) -> Page[Any]:
    """One page of the report, counted."""
    query = unaccepted_query(user, flt)
    return read_page(session, query.order_by(Person.full_name, Person.id, Account.display_name, Grant.id), page, per_page,
                     count=count_of(query))


def iter_unaccepted(session: Session, user: Any, flt: ReportFilter, *, batch: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Every row of the report as REPORT_COLUMNS values, in batches (keyset on the grant id).

    The query is built at once, so the user's roles are read now, not when streaming starts.
    """
    return _report_rows(session, unaccepted_query(user, flt), batch)


def _report_rows(session: Session, query: Select[*tuple[Any, ...]], batch: int) -> Iterator[tuple[Any, ...]]:
    last = 0
    while True:
        rows = session.execute(query.where(Grant.id > last).order_by(Grant.id).limit(batch)).all()
        for row in rows:
            yield (row.person_name, row.person_email, row.department, row.account_name, row.platform, row.handle,
                   row.role_name, row.tier, row.version)
        if len(rows) < batch:
            return
        last = rows[-1].grant_id


# --- used by the account registry's risk flags ---------------------------------------------------------


def _unaccepted_grants(which: ColumnElement[bool], *columns: Any) -> Select[*tuple[Any, ...]]:
    """Active grants (of those ``which`` selects) whose holder has not accepted the current policy of the role's tier."""
    current = current_versions_query()
    accepted = select(Acknowledgement.id).where(
        Acknowledgement.person_id == Grant.person_id, Acknowledgement.policy_version_id == current.c.id
    ).exists()
    return (
        select(*columns)
        .select_from(Grant)
        .join(Role, Role.code == Grant.role_code)
        .join(current, current.c.tier == Role.policy_tier)
        .where(which, Grant.status == "active", ~accepted)
    )


def _unaccepted_grant_ids_statement() -> Select[*tuple[Any, ...]]:
    """(account id, grant id) rows over the expanding parameter ``account_ids``."""
    which = Grant.account_id.in_(bindparam("account_ids", expanding=True))
    return _unaccepted_grants(which, Grant.account_id, Grant.id)


def unaccepted_count_in_grants() -> tuple[Any, ColumnElement[int]]:
    """For a grouped query over active grants joined to Role: the current-version subquery to outer-join
    on ``Role.policy_tier``, and the count of those grants whose holder has not accepted it.

    Counted in the same pass over the grants as other per-account counts (a separate grouped
    subquery read the same grants again, a third of the accounts list's statement time on SQLite).
    """
    current = current_versions_query()
    accepted = select(Acknowledgement.id).where(
        Acknowledgement.person_id == Grant.person_id, Acknowledgement.policy_version_id == current.c.id
    ).exists()
    return current, func.count(case((and_(current.c.id.is_not(None), ~accepted), Grant.id)))


def unaccepted_grant_ids(session: Session, account_ids: list[int]) -> dict[int, set[int]]:
    """Per account: the ids of the active grants whose holder has not accepted their role's current policy."""
    found: dict[int, set[int]] = {}
    if account_ids:
        for account_id, grant_id in session.execute(_unaccepted_grant_ids_statement(), {"account_ids": account_ids}):
            found.setdefault(account_id, set()).add(grant_id)
    return found
