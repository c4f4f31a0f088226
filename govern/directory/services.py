"""Directory rules: who may see whom, adding and editing people, listing them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, false, func, or_, select, text
from sqlalchemy.orm import Session, aliased, joinedload

from govern import audit
from govern.audit.services import Actor
from govern.auth.models import User
from govern.directory.models import PERSON_STATUSES, Person
from govern.directory.search import like_folded, people_search_prefilter
from govern.errors import InvalidError, NotFoundError, get_or_raise
from govern.grants.models import Grant
from govern.paging import Page, read_page

MAX_NAME_LENGTH = 200
MAX_EMPLOYEE_ID_LENGTH = 64
MAX_DEPARTMENT_LENGTH = 120
MAX_TITLE_LENGTH = 120
#: A reporting line longer than this is treated as a cycle (it can only be bad data).
MAX_CHAIN_LENGTH = 1000
#: App roles that see the whole directory; a plain manager sees only their direct reports.
SEES_ALL_PEOPLE = frozenset({"admin", "hr", "it", "auditor"})
#: Fields of a person an edit may change, in display order.
EDITABLE_FIELDS = ("employee_id", "full_name", "email", "department", "title", "manager", "status",
                   "start_date", "end_date")


def normalise_email(email: str) -> str:
    """Return the canonical (trimmed, lower-cased) form of an email address."""
    return email.strip().lower()


def validate_email(email: str) -> str:
    """Return the normalised email or raise InvalidError with a reason."""
    email = normalise_email(email)
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or any(ch.isspace() or ord(ch) < 32 for ch in email):
        raise InvalidError("Enter a valid email address.", {"email": "Enter a valid email address."})
    return email


def find_person_by_email(session: Session, email: str) -> Person | None:
    """Return the person with this email (case-insensitive), if any."""
    return session.scalar(select(Person).where(Person.email == normalise_email(email)))


def find_person_by_employee_id(session: Session, employee_id: str) -> Person | None:
    """Return the person with this employee id (exact, after trimming), if any."""
    employee_id = employee_id.strip()
    if not employee_id:
        return None
    return session.scalar(select(Person).where(Person.employee_id == employee_id))


def find_person_by_reference(session: Session, reference: str) -> Person | None:
    """Return the person named by an email address or an employee id, if any."""
    reference = reference.strip()
    if not reference:
        return None
    if "@" in reference:
        return find_person_by_email(session, reference)
    return find_person_by_employee_id(session, reference)


def has_left(status: str, end_date: date | None, *, today: date) -> bool:
    """Whether a status and end date say the person has left by ``today`` (their access ends now)."""
    if status == "departed":
        return True
    if end_date is not None:
        return end_date <= today
    return status == "leaving"


# --- visibility ------------------------------------------------------------------------------------


def sees_all_people(roles: Iterable[str]) -> bool:
    """Admins, HR, IT and auditors see everyone; a manager sees their direct reports and themselves."""
    return bool(SEES_ALL_PEOPLE & set(roles))


def visible_people_clause(user: Any) -> Any:
    """SQL condition limiting people to those ``user`` may see."""
    if sees_all_people(user.roles):
        return True
    if "manager" not in user.roles:
        return false()
    return or_(Person.manager_id == user.person_id, Person.id == user.person_id)


def can_see_person(user: Any, person: Person) -> bool:
    """Object-level check of ``visible_people_clause`` for one person."""
    if sees_all_people(user.roles):
        return True
    return "manager" in user.roles and user.person_id in (person.id, person.manager_id)


def get_visible_person(session: Session, user: Any, person_id: int) -> Person:
    """Return the person, or raise NotFoundError when missing or outside ``user``'s scope."""
    person = session.get(Person, person_id, options=[joinedload(Person.manager)])
    if person is None or not can_see_person(user, person):
        raise NotFoundError("No such person.")
    return person


# --- listing ---------------------------------------------------------------------------------------


@dataclass
class PersonFilter:
    """Search and filters of the people list and its CSV export."""

    q: str | None = None
    department: str | None = None
    status: str | None = None
    #: The manager's person id; -1 matches nobody (a manager reference that names no one).
    manager_id: int | None = None

    def as_params(self) -> dict[str, Any]:
        """The non-empty filters, for audit details."""
        return {k: v for k, v in vars(self).items() if v not in (None, "")}


def search_clause(fragment: str) -> ColumnElement[bool]:
    """People whose name, email or employee id contains ``fragment``, whatever its case.

    On PostgreSQL the trigram index ix_people_search_trigrams (migration 0012) covers exactly these
    three expressions, and on SQLite the full-text table people_search (migration 0013) these three
    columns; change them together.
    """
    needle = fragment.lower()
    matches = or_(
        like_folded(Person.full_name).contains(needle, autoescape=True),
        Person.email.contains(needle, autoescape=True),  # stored lower-case
        like_folded(Person.employee_id).contains(needle, autoescape=True),
    )
    if len(needle) < 3 or "\x00" in needle:
        # No trigram index can narrow a fragment shorter than a trigram; and SQLite hands FTS5 its
        # query as a C string, which a NUL would cut short (the web rejects NULs; other callers may not).
        return matches
    # On SQLite the full-text index of migration 0013 narrows the people first; the terms above decide.
    return and_(people_search_prefilter(Person.id, needle), matches)


def people_query(user: Any, flt: PersonFilter) -> Select[Person]:
    """People matching ``flt`` within ``user``'s scope, by name; each caller joins the manager its way (name or object)."""
    query = select(Person)
    scope = visible_people_clause(user)
    if scope is not True:  # seeing everyone adds no condition: SQLite then counts from the b-tree alone
        query = query.where(scope)
    if flt.q:
        query = query.where(search_clause(flt.q.strip()))
    if flt.department:
        query = query.where(Person.department == flt.department)
    if flt.status:
        query = query.where(Person.status == flt.status)
    if flt.manager_id is not None:
        query = query.where(Person.manager_id == flt.manager_id)
    return query.order_by(func.lower(Person.full_name), Person.id)


#: Matches a person picker offers at most; typing more narrows them.
PICK_LIMIT = 10
#: Shorter fragments match too much to be useful (and tell too much to a guesser).
PICK_MIN_LENGTH = 2


def pick_people(session: Session, fragment: str, *, limit: int = PICK_LIMIT) -> tuple[list[Row[*tuple[Any, ...]]], bool]:
    """Active people whose name, email or employee id contains ``fragment`` (the people search), for a
    form's person picker: the first ``limit`` by name (id, name, email, employee id, department) and
    whether there are more.

    Forms that pick a person (a grantee, a successor, an account's owner) accept any active colleague,
    so the picker searches the whole directory; it shows no more than the forms already confirm for an
    exact email, plus the name and department.
    """
    needle = " ".join((fragment or "").split())[:320]
    if len(needle) < PICK_MIN_LENGTH:
        return [], False
    rows = list(session.execute(
        select(Person.id, Person.full_name, Person.email, Person.employee_id, Person.department)
        .where(Person.status == "active", search_clause(needle))
        .order_by(func.lower(Person.full_name), Person.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


#: The manager of a listed person, joined by id for their name.
_MANAGER = aliased(Person)

#: What the people list shows of each person: plain rows, not ORM objects (building and later
#: expiring 50 people and their managers as objects cost more than the page's statements).
_LIST_COLUMNS = (Person.id, Person.full_name, Person.email, Person.employee_id, Person.department, Person.title,
                 Person.status, Person.start_date, Person.end_date, _MANAGER.full_name.label("manager_name"))


def list_people(session: Session, user: Any, flt: PersonFilter, *, page: int, per_page: int = 50) -> Page[Row[*tuple[Any, ...]]]:
    """One page of people (rows of ``_LIST_COLUMNS``, with their manager's name), counted."""
    query = people_query(user, flt)
    rows_query = query.with_only_columns(*_LIST_COLUMNS).outerjoin(_MANAGER, _MANAGER.id == Person.manager_id)
    if flt.q:
        # A search reads every person anyway: count the matches in the same pass (a window).
        rows = session.execute(rows_query.add_columns(func.count().over()).limit(per_page).offset((page - 1) * per_page)).all()
        if rows:
            return Page(list(rows), page, per_page, total=rows[0][-1])
    # A count straight over people, not over a subquery of whole rows (SQLite materialises that);
    # the page itself is read in the order of ix_people_name_order and stops after one page.
    # Seeing everyone, unfiltered: no parameter but the page (see page_bounds).
    return read_page(session, rows_query, page, per_page, in_sql=query.whereclause is None,
                     count=query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None))


def iter_people(session: Session, user: Any, flt: PersonFilter, batch: int = 1000) -> Iterator[Person]:
    """Every matching person with their manager, in batches (for the CSV export)."""
    last_offset = 0
    query = people_query(user, flt).options(joinedload(Person.manager))
    while True:
        rows = list(session.scalars(query.limit(batch).offset(last_offset)))
        yield from rows
        if len(rows) < batch:
            return
        last_offset += batch
        session.expunge_all()


#: Each department once, in order, by hopping along ix_people_department: one index probe per
#: department instead of a DISTINCT over every person (2-3 ms a page at 10,000 people on PostgreSQL,
#: which cannot skip through a b-tree by itself).
_DEPARTMENTS_BY_INDEX = text(
    "WITH RECURSIVE d(department) AS ("
    " SELECT min(department) FROM people"
    " UNION ALL"
    " SELECT (SELECT min(p.department) FROM people p WHERE p.department > d.department) FROM d"
    " WHERE d.department IS NOT NULL)"
    " SELECT department FROM d WHERE department IS NOT NULL ORDER BY department"
)


def all_departments(session: Session) -> list[str]:
    """Every department of the directory, in order, for filters."""
    return [d for d in session.scalars(_DEPARTMENTS_BY_INDEX) if d]


def departments(session: Session, user: Any) -> list[str]:
    """The departments of the people ``user`` may see, for the filter."""
    if sees_all_people(user.roles):
        return all_departments(session)
    rows = session.scalars(
        select(Person.department).where(visible_people_clause(user), Person.department.is_not(None))
        .distinct().order_by(Person.department)
    )
    return [d for d in rows if d]


# --- creating and editing --------------------------------------------------------------------------


@dataclass
class PersonInput:
    """What a form (or the API later) says about a person; ``manager`` is an email or employee id."""

    full_name: str
    email: str
    employee_id: str = ""
    department: str = ""
    title: str = ""
    manager: str = ""
    #: None keeps the person's status: only an offboarding or a rehire changes it (govern.offboarding.lifecycle).
    status: str | None = "active"
    start_date: date | None = None
    end_date: date | None = None


@dataclass
class _Clean:
    values: dict[str, Any] = field(default_factory=dict)
    manager: Person | None = None


def _optional(text: str | None, limit: int, name: str, label: str, reasons: dict[str, str]) -> str | None:
    text = (text or "").strip()
    if len(text) > limit:
        reasons[name] = f"{label} is at most {limit} characters."
    elif any(ord(ch) < 32 for ch in text):
        reasons[name] = f"{label} contains control characters."
    return text or None


def _clean(session: Session, data: PersonInput, person: Person | None) -> _Clean:
    """Validate ``data`` for a new person (``person`` is None) or for ``person``; raise InvalidError."""
    reasons: dict[str, str] = {}
    clean = _Clean()
    full_name = (data.full_name or "").strip()
    if not full_name or len(full_name) > MAX_NAME_LENGTH or any(ord(ch) < 32 for ch in full_name):
        reasons["full_name"] = f"Enter the person's full name (at most {MAX_NAME_LENGTH} characters)."
    clean.values["full_name"] = full_name
    try:
        email = validate_email(data.email or "")
    except InvalidError as exc:
        reasons["email"] = exc.reasons["email"]
        email = ""
    if email:
        other = find_person_by_email(session, email)
        if other is not None and other is not person:
            reasons["email"] = f"{other.full_name} already has the email {email}."
    clean.values["email"] = email
    employee_id = _optional(data.employee_id, MAX_EMPLOYEE_ID_LENGTH, "employee_id", "The employee id", reasons)
    if employee_id and "@" in employee_id:
        reasons["employee_id"] = "An employee id cannot contain @ (it would read as an email)."
    elif employee_id:
        other = find_person_by_employee_id(session, employee_id)
        if other is not None and other is not person:
            reasons["employee_id"] = f"{other.full_name} already has the employee id {employee_id}."
    clean.values["employee_id"] = employee_id
    clean.values["department"] = _optional(data.department, MAX_DEPARTMENT_LENGTH, "department", "The department", reasons)
    clean.values["title"] = _optional(data.title, MAX_TITLE_LENGTH, "title", "The title", reasons)
    if data.status is not None:
        if data.status not in PERSON_STATUSES:
            reasons["status"] = "Choose active, leaving or departed."
        elif data.status != (person.status if person is not None else "active"):
            # Leaving ends access: only an offboarding (or a rehire) moves a person between statuses.
            reasons["status"] = "A person's status changes only through an offboarding or a rehire."
    if data.start_date and data.end_date and data.end_date < data.start_date:
        reasons["end_date"] = "The end date cannot be before the start date."
    clean.values["start_date"] = data.start_date
    clean.values["end_date"] = data.end_date
    reference = (data.manager or "").strip()
    if reference:
        manager = find_person_by_reference(session, reference)
        if manager is None:
            reasons["manager"] = f"No one in the directory has the email or employee id {reference[:100]}."
        elif person is not None and manager.id == person.id:
            reasons["manager"] = "A person cannot be their own manager."
        elif person is not None and _reports_to(session, manager, person):
            reasons["manager"] = f"{manager.full_name} reports to {person.full_name}, directly or not: that would make a management cycle."
        else:
            clean.manager = manager
    if reasons:
        raise InvalidError("Check the highlighted fields.", reasons)
    return clean


def _reports_to(session: Session, start: Person, boss: Person) -> bool:
    """True when ``boss`` is ``start`` or above it in the reporting line (or the line loops)."""
    seen: set[int] = set()
    current: Person | None = start
    while current is not None:
        if current.id == boss.id or current.id in seen or len(seen) > MAX_CHAIN_LENGTH:
            return True
        seen.add(current.id)
        current = session.get(Person, current.manager_id) if current.manager_id else None
    return False


def create_person(
    session: Session,
    *,
    actor: Actor | None,
    full_name: str,
    email: str,
    department: str | None = None,
    employee_id: str | None = None,
    title: str | None = None,
    manager: str | None = None,
    status: str = "active",
    start_date: date | None = None,
    end_date: date | None = None,
    source: str = "manual",
) -> Person:
    """Add an active person (by hand, or ``source`` "scim"); email and employee id must be new, ``manager`` is an email or employee id.

    A person who is leaving or has left is added active, then offboarded (govern.offboarding.lifecycle).
    """
    data = PersonInput(full_name=full_name, email=email, employee_id=employee_id or "", department=department or "",
                       title=title or "", manager=manager or "", status=status, start_date=start_date, end_date=end_date)
    clean = _clean(session, data, None)
    person = Person(**clean.values, status="active", manager_id=clean.manager.id if clean.manager else None, source=source)
    session.add(person)
    session.flush()
    details: dict[str, Any] = {"email": person.email, "source": source}
    for name in ("employee_id", "department", "title", "start_date", "end_date"):
        if getattr(person, name) is not None:
            details[name] = getattr(person, name)
    if clean.manager is not None:
        details["manager"] = clean.manager.email
    audit.record(session, "person.created", actor=actor, target_type="person", target_id=person.id, details=details)
    return person


def update_person(session: Session, *, actor: Actor | None, person: Person, data: PersonInput) -> dict[str, dict[str, Any]]:
    """Apply an edit; audit the changed fields with old and new values. Returns the changes.

    The status stays as it is (``data.status`` None or the same): see govern.offboarding.lifecycle.
    """
    clean = _clean(session, data, person)
    changes: dict[str, dict[str, Any]] = {}
    for name, new in clean.values.items():
        old = getattr(person, name)
        if old != new:
            changes[name] = {"old": old, "new": new}
            setattr(person, name, new)
    new_manager_id = clean.manager.id if clean.manager else None
    if person.manager_id != new_manager_id:
        old_manager = session.get(Person, person.manager_id) if person.manager_id else None
        changes["manager"] = {"old": old_manager.email if old_manager else None,
                              "new": clean.manager.email if clean.manager else None}
        person.manager_id = new_manager_id
        person.manager = clean.manager
    if not changes:
        return changes
    session.flush()
    audit.record(session, "person.updated", actor=actor, target_type="person", target_id=person.id,
                 details={"fields": sorted(changes), "changes": changes})
    return changes


def get_person(session: Session, person_id: int) -> Person:
    """Return the person or raise NotFoundError."""
    return get_or_raise(session, Person, person_id, "No such person.")


# --- the person page -------------------------------------------------------------------------------


@dataclass
class PersonRecord:
    """Everything the person page shows, loaded in a fixed number of queries."""

    person: Person
    login: Any
    grants: list[Any]
    users: dict[int, Any]
    reports: list[Person]


def person_record(session: Session, person: Person) -> PersonRecord:
    """The person's login, every grant (current and past, with who acted) and direct reports."""
    login = session.scalar(select(User).where(User.person_id == person.id))
    grants = list(session.scalars(
        select(Grant).where(Grant.person_id == person.id)
        .order_by(Grant.status.in_(("active", "requested")).desc(), Grant.starts_at.desc(), Grant.id.desc())
    ).unique())
    user_ids = {uid for g in grants for uid in (g.requested_by_id, g.approved_by_id, g.revoked_by_id) if uid}
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    reports = list(session.scalars(
        select(Person).where(Person.manager_id == person.id).order_by(func.lower(Person.full_name), Person.id)
    ))
    return PersonRecord(person=person, login=login, grants=grants, users=users, reports=reports)
