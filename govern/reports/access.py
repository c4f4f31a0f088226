"""Who has access to what: the grant register as filtered, sorted, paginated and exportable rows.

Every report is one SELECT of plain columns (grant, person, account, role, the platform's own
role name, approver, revoker), so a page or an export costs the same few statements whatever
the number of rows. Managers see the accounts they own or are crisis contact for, and the
grants of their direct reports; admins, IT, HR and auditors see everything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Integer, Row, Select, Table, and_, bindparam, func, select, true, union
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import Join

from govern import paging
from govern.accounts.models import Account, PlatformRoleName, Role
from govern.accounts.services import can_see_account, visible_accounts_clause
from govern.auth.models import User
from govern.auth.roles import sees_all_accounts
from govern.db import sql_constant
from govern.directory.models import Person
from govern.directory.services import search_clause
from govern.errors import NotFoundError
from govern.grants.models import GRANT_STATUSES, Grant
from govern.reports.filters import AccessFilter

PER_PAGE = 50
#: Deep pages are refused rather than sent to the database as an absurd OFFSET.
MAX_PAGE = 100_000
#: Rows read per statement by exports; between batches the read transaction ends (SQLite's
#: write lock is not held while a slow client downloads).
EXPORT_BATCH = 2000

ACCESS_COLUMNS = (
    "grant_id", "person", "employee_id", "email", "department", "account", "handle", "platform",
    "role", "platform_role", "since", "expires", "approved_by",
)
#: Per-account and per-person exports carry every status, so they say how each grant ended.
HISTORY_COLUMNS = (
    "grant_id", "status", "person", "employee_id", "email", "department", "account", "handle",
    "platform", "role", "platform_role", "reason", "requested_at", "since", "expires", "approved_by",
    "ended_at", "revoked_by", "revoke_reason",
)
HISTORY_STATUSES = tuple(s for s in GRANT_STATUSES if s != "active")
ALL_STATUSES = tuple(GRANT_STATUSES)


# --- visibility ------------------------------------------------------------------------------------


#: The grants of a manager's scope, looked up apart from the grant row being filtered.
_HELD = aliased(Grant)


def scope_clause(user: Any, statuses: Sequence[str] | None = None) -> ColumnElement[bool]:
    """SQL condition on grant rows alone: what ``user`` may see (and, with ``statuses``, of those statuses).

    A manager's grants are those on the accounts they own or are crisis contact for, and those of
    their direct reports. Each half is an index lookup of grants by account or by person; written
    as one OR next to the status condition, SQLite scanned every active grant instead (12 ms).
    """
    # The statuses are govern's own constants: in the SQL, they leave the default view without parameters.
    status = Grant.status.in_(sql_constant(statuses)) if statuses is not None else true()
    if sees_all_accounts(user.roles):
        return status
    by_status = _HELD.status.in_(sql_constant(statuses)) if statuses is not None else true()
    on_accounts = select(_HELD.id).where(
        _HELD.account_id.in_(select(Account.id).where(visible_accounts_clause(user))), by_status
    )
    of_reports = select(_HELD.id).where(
        _HELD.person_id.in_(select(Person.id).where(Person.manager_id == user.person_id)), by_status
    )
    return Grant.id.in_(union(on_accounts, of_reports))


def visible_person(session: Session, user: Any, person_id: int) -> Person:
    """The person, if ``user`` may see their report (a direct report, or a holder on their accounts)."""
    person = session.get(Person, person_id)
    if person is None:
        raise NotFoundError("No such person.")
    if sees_all_accounts(user.roles) or person.manager_id == user.person_id:
        return person
    held = select(Grant.id).join(Account, Account.id == Grant.account_id).where(
        Grant.person_id == person.id, visible_accounts_clause(user)
    )
    if session.scalar(held.limit(1)) is None:
        raise NotFoundError("No such person.")
    return person


def visible_account(session: Session, user: Any, account_id: int) -> Account:
    """The account, if ``user`` may see it (or one of their direct reports has held a role on it)."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFoundError("No such account.")
    if can_see_account(user, account):
        return account
    reports = select(Grant.id).join(Person, Person.id == Grant.person_id).where(
        Grant.account_id == account.id, Person.manager_id == user.person_id
    )
    if session.scalar(reports.limit(1)) is None:
        raise NotFoundError("No such account.")
    return account


# --- the one query ---------------------------------------------------------------------------------


def _aliases() -> tuple[Any, ...]:
    """The approver, their person, the revoker, and the platform role name of the row query.

    Made once: adapting the columns of a fresh alias costs more than running a page's statement.
    """
    # platform_role_label() takes a platform's first mapping of a role; the same rule as a join.
    first_name = (
        select(PlatformRoleName.platform, PlatformRoleName.role_code, func.min(PlatformRoleName.id).label("id"))
        .group_by(PlatformRoleName.platform, PlatformRoleName.role_code)
        .subquery()
    )
    return aliased(User), aliased(Person), aliased(User), first_name, aliased(PlatformRoleName)


def rows_query(user: Any, flt: AccessFilter, *, ids: list[int] | None = None) -> Select[*tuple[Any, ...]]:
    """Every column any report shows, for the grants ``user`` may see that match ``flt``.

    With ``ids``, only those grants, and their status is left for the caller to check: SQLite
    would otherwise walk the status index instead of fetching the few rows by primary key.
    """
    query = _all_columns()
    if ids is not None:
        return query.where(Grant.id.in_(ids), *_conditions(user, flt, by_status=False))
    return query.where(*_conditions(user, flt))


#: Stands for every user who sees all grants: their unfiltered views run the same statements.
_SEES_EVERY_GRANT = SimpleNamespace(roles=frozenset({"auditor"}), person_id=None)


def _unfiltered_statements(statuses: tuple[str, ...], sort: str, descending: bool) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """The count and the page of ids of the unfiltered report for a user who sees every grant.

    Built once and reused (SQLAlchemy then walks each statement's structure once, not on every page),
    with the page bound as ``limit`` and ``offset``. Those, and the statuses, are written into the
    SQL (``sql_constant``): with no parameter left, PostgreSQL plans each once per connection. With
    a filter, what the user chose stays a parameter and so does the page, so each run is planned
    for the value filtered on (a plan for any value could walk the wrong index for a rare one).
    """
    assert sees_all_accounts(_SEES_EVERY_GRANT.roles)
    flt = AccessFilter(statuses=statuses)
    ids = (_page_ids_query(_SEES_EVERY_GRANT, flt, sort, descending)
           .limit(bindparam("limit", type_=Integer, literal_execute=True))
           .offset(bindparam("offset", type_=Integer, literal_execute=True)))
    return _count_query(_SEES_EVERY_GRANT, flt), ids


def _rows_of_ids_for_all() -> Select[*tuple[Any, ...]]:
    """``rows_query`` of the ids bound as ``ids``, for a user who sees every grant: one statement, reused.

    SQLAlchemy keys its compiled SQL by the statement's structure, which it walks once per statement
    object: for this one (24 columns, 9 tables) that took 0.25 ms of every page when built anew.
    """
    return _all_columns().where(Grant.id.in_(bindparam("ids", expanding=True)))


def _all_columns() -> Select[*tuple[Any, ...]]:
    """The row query's columns and joins, without conditions."""
    approver, approver_person, revoker, first_name, mapping = _aliases()
    return (
        select(
            Grant.id.label("grant_id"),
            Grant.status,
            Person.id.label("person_id"),
            Person.full_name.label("person"),
            Person.employee_id,
            Person.email,
            Person.department,
            Account.id.label("account_id"),
            Account.display_name.label("account"),
            Account.handle,
            Account.platform,
            Role.code.label("role"),
            Role.name.label("role_name"),
            Role.sort_order.label("role_sort"),
            func.coalesce(mapping.platform_role, Role.name).label("platform_role"),
            Grant.reason,
            Grant.requested_at,
            Grant.starts_at.label("since"),
            Grant.expires_at.label("expires"),
            approver.email.label("approved_by"),
            approver_person.full_name.label("approved_by_name"),
            Grant.ended_at,
            revoker.email.label("revoked_by"),
            Grant.revoke_reason,
        )
        .select_from(Grant)
        .join(Person, Person.id == Grant.person_id)
        .join(Account, Account.id == Grant.account_id)
        .join(Role, Role.code == Grant.role_code)
        .outerjoin(first_name, and_(first_name.c.platform == Account.platform, first_name.c.role_code == Grant.role_code))
        .outerjoin(mapping, mapping.id == first_name.c.id)
        .outerjoin(approver, approver.id == Grant.approved_by_id)
        .outerjoin(approver_person, approver_person.id == approver.person_id)
        .outerjoin(revoker, revoker.id == Grant.revoked_by_id)
    )


def _conditions(user: Any, flt: AccessFilter, *, by_status: bool = True) -> list[Any]:
    """The WHERE terms of a report: scope, ``flt.statuses`` (unless ``by_status`` is false) and filters.

    They read grants and, for the department and search filters, people and, for the platform,
    accounts: a statement with these terms must join Person or Account when ``_needs`` says so.
    """
    terms: list[Any] = [scope_clause(user, flt.statuses if by_status else None)]
    if flt.department:
        terms.append(Person.department == flt.department)
    if flt.platform:
        terms.append(Account.platform == flt.platform)
    if flt.role:
        terms.append(Grant.role_code == flt.role)
    if flt.account_id is not None:
        terms.append(Grant.account_id == flt.account_id)
    if flt.person_id is not None:
        terms.append(Grant.person_id == flt.person_id)
    if flt.q:
        terms.append(search_clause(flt.q.lower().lstrip("@")))
    return terms


def _needs(flt: AccessFilter) -> tuple[bool, bool]:
    """Whether the filters read people, and whether they read accounts."""
    return bool(flt.department or flt.q), bool(flt.platform)


# --- pages -----------------------------------------------------------------------------------------

#: Sort keys offered on screen: columns in order; the grant id always breaks ties.
SORTS: dict[str, tuple[Any, ...]] = {
    "person": (Person.full_name, Account.display_name, Role.sort_order),
    "department": (Person.department, Person.full_name, Account.display_name),
    "account": (Account.display_name, Role.sort_order, Person.full_name),
    "platform": (Account.platform, Account.display_name, Person.full_name),
    "role": (Role.sort_order, Account.display_name, Person.full_name),
    "since": (Grant.starts_at,),
    "expires": (Grant.expires_at,),
}
SORT_LABELS = {"person": "Person", "department": "Department", "account": "Account", "platform": "Platform",
               "role": "Role", "since": "Since", "expires": "Expires"}
NULLABLE_SORT_COLUMNS = {"department", "expires_at"}


def _order_by(sort: str, descending: bool) -> list[Any]:
    terms = []
    for column in (*SORTS.get(sort, SORTS["person"]), Grant.id):
        term = column.desc() if descending else column.asc()
        # The same place for missing values on SQLite and PostgreSQL (they differ by default).
        terms.append(term.nulls_last() if column.key in NULLABLE_SORT_COLUMNS else term)
    return terms


@dataclass(frozen=True)
class Page(paging.Page[Row[*tuple[Any, ...]]]):
    """One page of report rows (the one pager's Page), with the order it is sorted in."""

    sort: str = "person"
    descending: bool = False

    @property
    def rows(self) -> list[Row[*tuple[Any, ...]]]:
        """The report's rows on this page."""
        return self.items

    @property
    def page(self) -> int:
        """The page's number (from 1)."""
        return self.number

    @property
    def first_index(self) -> int:
        """1-based position of the first row on this page (0 when empty)."""
        return (self.number - 1) * self.per_page + 1 if self.items else 0


def list_rows(session: Session, user: Any, flt: AccessFilter, *, page: int = 1, sort: str = "person",
              descending: bool = False, per_page: int = PER_PAGE) -> Page:
    """One page of the grants ``user`` may see matching ``flt``, and their total: three statements.

    The total counts grants alone (joined to people or accounts only for a filter on them), the
    page's grant ids are sorted with only the tables the sort and filters read, and then the full
    rows of those few ids are read. At 36,000 active grants, counting the whole row query and
    sorting it whole cost 130 ms on SQLite.
    """
    sort = sort if sort in SORTS else "person"
    page = min(max(1, page), MAX_PAGE)
    # Plain rows through the Core connection, as the exports do: nothing here is an ORM entity.
    connection = session.connection()
    offset = (page - 1) * per_page
    if sees_all_accounts(user.roles) and not flt.as_params() and flt.account_id is None and flt.person_id is None:
        # The view everyone opens first: no condition but the statuses, the page bound as parameters.
        count_query, ids_query = _unfiltered_statements(tuple(flt.statuses), sort, descending)
        page_bounds: dict[str, int] = {"limit": per_page, "offset": offset}
    else:
        count_query = _count_query(user, flt)
        ids_query, page_bounds = _page_ids_query(user, flt, sort, descending).limit(per_page).offset(offset), {}
    total = connection.execute(count_query).scalar() or 0
    ids = list(connection.execute(ids_query, page_bounds).scalars())
    rows: list[Row[*tuple[Any, ...]]] = []
    if ids:
        position = {grant_id: index for index, grant_id in enumerate(ids)}
        # The ids were chosen with the filters a moment ago; the scope is checked again (deny by
        # default), the status below.
        if sees_all_accounts(user.roles):
            found = connection.execute(_rows_of_ids_for_all(), {"ids": ids}).all()
        else:
            found = connection.execute(rows_query(user, AccessFilter(statuses=flt.statuses), ids=ids)).all()
        rows = sorted((row for row in found if row.status in flt.statuses), key=lambda row: position[row.grant_id])
    return Page(rows, page, per_page, total=total, sort=sort, descending=descending)


class _DrivingJoin(Join):
    """An inner join that SQLite must run with its left side as the outer loop (CROSS JOIN).

    SQLite's planner does not weigh a LIMIT against the cost of reading rows: left to itself it
    reads every active grant and sorts them all for a page of 50. Other databases see a plain
    JOIN and choose by cost (PostgreSQL finds the ordered plans by itself).
    """

    inherit_cache = True


@compiles(_DrivingJoin, "sqlite")
def _cross_join(join: _DrivingJoin, compiler: Any, **kw: Any) -> str:
    # Only ever built with a table on the left, so the first JOIN of the rendering is this one.
    assert isinstance(join.left, Table)
    return str(compiler.visit_join(join, **kw)).replace(" JOIN ", " CROSS JOIN ", 1)


def _narrow(user: Any, flt: AccessFilter) -> bool:
    """A manager's scope, or one account or person: few grants, found through the grant indexes."""
    return not sees_all_accounts(user.roles) or flt.account_id is not None or flt.person_id is not None


def _count_query(user: Any, flt: AccessFilter) -> Select[*tuple[Any, ...]]:
    """How many grants match: the to-one joins of the row query never change that number."""
    needs_person, needs_account = _needs(flt)
    joined: Any = Grant.__table__
    # A filter on people (or accounts) reads them first and counts each one's grants in the
    # grant index; SQLite would otherwise read every active grant and look its person up (20 ms).
    if needs_person:
        joined = (Grant.__table__.join(Person.__table__, Person.id == Grant.person_id) if _narrow(user, flt)
                  else _DrivingJoin(Person.__table__, Grant.__table__, Person.id == Grant.person_id))
    if needs_account:
        joined = (joined.join(Account.__table__, Account.id == Grant.account_id) if needs_person or _narrow(user, flt)
                  else _DrivingJoin(Account.__table__, Grant.__table__, Account.id == Grant.account_id))
    return select(func.count()).select_from(joined).where(*_conditions(user, flt))


#: Sorts whose first key is a column of people or accounts: their page is found by reading that
#: table in this order through an index, and each row's grants through the grant index, sorting
#: only within one name and stopping after the page.
_DRIVERS = {"person": Person, "department": Person, "account": Account, "platform": Account}


def _page_ids_query(user: Any, flt: AccessFilter, sort: str, descending: bool) -> Select[*tuple[Any, ...]]:
    """The grant ids of the report in page order, without the columns only the page shows."""
    driver = _DRIVERS.get(sort)
    if _narrow(user, flt):
        driver = None  # sorting a few grants beats walking everyone in name order to find them
    elif flt.q:
        driver = Person  # the search reads every person once, whatever the sort
    if driver is Person:
        joined = _DrivingJoin(Person.__table__, Grant.__table__, Grant.person_id == Person.id).join(
            Account.__table__, Account.id == Grant.account_id)
    elif driver is Account:
        joined = _DrivingJoin(Account.__table__, Grant.__table__, Grant.account_id == Account.id).join(
            Person.__table__, Person.id == Grant.person_id)
    else:
        joined = Grant.__table__.join(Person.__table__, Person.id == Grant.person_id).join(
            Account.__table__, Account.id == Grant.account_id)
    joined = joined.join(Role.__table__, Role.code == Grant.role_code)
    return select(Grant.id).select_from(joined).where(*_conditions(user, flt)).order_by(*_order_by(sort, descending))


# --- exports ---------------------------------------------------------------------------------------

#: Exports follow one stable order: by person, then account, then role.
EXPORT_ORDER = (Person.full_name, Account.display_name, Role.sort_order, Grant.id)


def iter_row_batches(session: Session, user: Any, flt: AccessFilter, *, batch: int | None = None) -> Iterator[list[Row[*tuple[Any, ...]]]]:
    """Every matching row in batches of ``batch``, in the export order.

    One statement sorts the matching grant ids (a few bytes each: 40,000 grants are well under a
    megabyte), then one statement per batch reads its rows by primary key. Sorting once keeps a
    large export linear: re-sorting the whole remainder for every batch (keyset paging over
    columns of several tables, which no index serves) took 13 s for 36,000 rows on SQLite.
    The caller may end the transaction between batches: a grant that stopped matching in the
    meantime is left out, and no row is read twice.
    """
    batch = batch or EXPORT_BATCH
    ids = list(session.scalars(rows_query(user, flt).with_only_columns(Grant.id).order_by(*EXPORT_ORDER)))
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        position = {grant_id: index for index, grant_id in enumerate(chunk)}
        # Plain rows through the Core connection: the ORM's loading machinery adds nothing here
        # and costs more than the query itself.
        found = session.connection().execute(rows_query(user, flt, ids=chunk)).all()
        rows = sorted((row for row in found if row.status in flt.statuses), key=lambda row: position[row.grant_id])
        if rows:
            yield rows


def export_values(row: Row[*tuple[Any, ...]], columns: Sequence[str]) -> tuple[Any, ...]:
    """The cells of one row for an export with ``columns``."""
    return tuple(getattr(row, column) for column in columns)

