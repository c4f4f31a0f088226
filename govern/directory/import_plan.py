"""The HR import's plan and apply: match every row against the directory, then upsert in bulk.

The flow HR expects is "dry run first": ``preview_import`` reads the file and the directory and
reports per-line errors and what would change, writing nothing; ``apply_import`` does the same
checks and refuses the whole file while any line has an error, else writes every change in the
caller's transaction. Rows are matched on employee id, then email, so importing the same file
twice changes nothing the second time. Managers are resolved after every row is read, so a
manager may appear later in the file. People missing from the file are left as they are. The
import never writes a status: a row saying someone left starts (or schedules) their offboarding.

Speed matters (10,000 rows in well under five seconds on SQLite): the whole directory is read
into dicts once, and changes are written with bulk INSERT and UPDATE statements, never one
query per row. For the same reason the audit trail gets one "directory.imported" event per
import, with counts and the file's name and digest, never row contents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.db import utcnow
from govern.directory.import_columns import COLUMNS
from govern.directory.import_parse import ImportRow, LineError, ParsedFile
from govern.directory.models import Person
from govern.directory.services import has_left
from govern.errors import InvalidError

#: At most this many errors and changes are kept in a report (the counts are always complete).
MAX_ERRORS = 1000
MAX_CHANGES = 200
#: Fields compared and written for each row (manager_id is resolved separately).
DATA_FIELDS = ("employee_id", "email", "full_name", "department", "title", "status", "start_date", "end_date")
#: Fields the import writes itself: the status is the offboarding's business (govern.offboarding.lifecycle).
WRITTEN_FIELDS = tuple(name for name in DATA_FIELDS if name != "status")
PROGRESS_STEP = 500

Progress = Callable[[int], None]


@dataclass
class RowChange:
    """What the import does to one person (for the preview)."""

    line: int
    action: str  # "new" or "updated"
    full_name: str
    email: str
    fields: list[str]


@dataclass
class ImportReport:
    """The outcome of a preview or an apply."""

    filename: str
    sha256: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    changes: list[RowChange] = field(default_factory=list)
    changed_fields: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    applied: bool = False
    #: Rows whose status or end date says the person left, for people who have not (the preview:
    #: their offboardings start when the file is imported).
    leavers: int = 0
    #: Offboardings the statuses and end dates of this import started, scheduled, moved or
    #: cancelled, and problems.
    #: (govern.offboarding.lifecycle.import_people fills them in after the apply.)
    offboardings_started: int = 0
    offboardings_scheduled: int = 0
    offboardings_moved: int = 0
    offboardings_cancelled: int = 0
    offboarding_problems: list[str] = field(default_factory=list)
    #: After an apply: what the rows with news about leaving say, person id -> (status, end date),
    #: for the offboarding to follow; and the people this import added who had already left
    #: (person id -> end date). Only those rows: the others would load every person for nothing.
    leaving: dict[int, tuple[str, date | None]] = field(default_factory=dict)
    newcomers_gone: dict[int, date | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no line has an error."""
        return self.error_count == 0


class ImportInvalidError(InvalidError):
    """The file has errors, so nothing was imported; ``report`` lists them."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"The file has {report.error_count} error(s); nothing was imported. Fix them and try again.")
        self.report = report


# --- matching against the directory ----------------------------------------------------------------

#: A manager reference: ("row", index in the plan's targets) or ("existing", person id).
Node = tuple[str, int]


@dataclass
class _Existing:
    """The whole directory, read once into dicts."""

    by_id: dict[int, dict[str, Any]]
    by_employee_id: dict[str, int]
    by_email: dict[str, int]


def _load_existing(session: Session) -> _Existing:
    columns = (Person.id, Person.manager_id, *(getattr(Person, name) for name in DATA_FIELDS))
    existing = _Existing({}, {}, {})
    for row in session.execute(select(*columns)):
        existing.by_id[row.id] = row._asdict()
        existing.by_email[row.email] = row.id
        if row.employee_id:
            existing.by_employee_id[row.employee_id] = row.id
    return existing


@dataclass
class _Target:
    row: ImportRow
    #: The existing person this row updates, or None for a new person.
    person_id: int | None
    values: dict[str, Any]
    manager: Node | None = None
    changed: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    report: ImportReport
    existing: _Existing
    targets: list[_Target] = field(default_factory=list)
    #: Existing person id -> index in ``targets`` of the row that updates them.
    row_of_person: dict[int, int] = field(default_factory=dict)


def _plan(session: Session, parsed: ParsedFile, progress: Progress | None) -> _Plan:
    report = ImportReport(filename=parsed.filename, sha256=parsed.sha256, rows=len(parsed.rows),
                          columns=dict(parsed.columns), ignored_columns=list(parsed.ignored_columns))
    plan = _Plan(report, _load_existing(session))
    existing = plan.existing
    errors: list[LineError] = list(parsed.errors)
    bad_lines = {e.line for e in parsed.errors}
    seen_employee_ids: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    claimed: dict[int, int] = {}  # existing person id -> the line that updates it
    rows_by_email: dict[str, int] = {}  # email -> index in targets
    emails_with_errors: set[str] = set()
    for done, row in enumerate(parsed.rows, 1):
        if progress is not None and done % PROGRESS_STEP == 0:
            progress(PROGRESS_STEP)
        cells = row.cells
        employee_id, email = cells.get("employee_id"), cells.get("email")
        found: list[LineError] = []
        if employee_id:
            if employee_id in seen_employee_ids:
                found.append(LineError(row.line, "employee_id", f"{employee_id} is also on line {seen_employee_ids[employee_id]}"))
            seen_employee_ids.setdefault(employee_id, row.line)
        if email:
            if email in seen_emails:
                found.append(LineError(row.line, "email", f"{email} is also on line {seen_emails[email]}"))
            seen_emails.setdefault(email, row.line)
        person_id: int | None = None
        if employee_id and employee_id in existing.by_employee_id:
            person_id = existing.by_employee_id[employee_id]
            owner = existing.by_email.get(email) if email else None
            if owner is not None and owner != person_id:
                other = existing.by_id[owner]
                found.append(LineError(row.line, "email", f"{email} belongs to someone else in the directory ({other['full_name']}, employee id {other['employee_id'] or 'none'})"))
        elif email and email in existing.by_email:
            person_id = existing.by_email[email]
            current_id = existing.by_id[person_id]["employee_id"]
            if employee_id and current_id and current_id != employee_id:
                found.append(LineError(row.line, "employee_id", f"{email} has employee id {current_id} in the directory, not {employee_id}"))
        if person_id is not None:
            if person_id in claimed:
                found.append(LineError(row.line, "employee_id" if employee_id else "email", f"updates the same person as line {claimed[person_id]}"))
            claimed.setdefault(person_id, row.line)
        errors.extend(found)
        if found or row.line in bad_lines:
            if email:
                emails_with_errors.add(email)
            continue
        current = existing.by_id[person_id] if person_id is not None else None
        plan.targets.append(_Target(row, person_id, _values(cells, current)))
        rows_by_email.setdefault(plan.targets[-1].values["email"], len(plan.targets) - 1)
        if person_id is not None:
            plan.row_of_person[person_id] = len(plan.targets) - 1
    if progress is not None and len(parsed.rows) % PROGRESS_STEP:
        progress(len(parsed.rows) % PROGRESS_STEP)
    _resolve_managers(plan, rows_by_email, emails_with_errors, errors)
    # Counts cover the lines that would be imported; lines with an error are in the error list.
    _count(plan, {e.line for e in errors})
    order = {name: i for i, name in enumerate(COLUMNS)}
    errors.sort(key=lambda e: (e.line, order.get(e.column, -1)))
    report.error_count = len(errors)
    report.errors = errors[:MAX_ERRORS]
    return plan


def _values(cells: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The values a row gives a person: absent columns keep what the directory has."""
    values = {name: cells[name] if name in cells else (current[name] if current else None) for name in DATA_FIELDS}
    if current is not None:
        # An empty employee id or status cell never erases what the directory knows.
        values["employee_id"] = values["employee_id"] or current["employee_id"]
        values["status"] = values["status"] or current["status"]
        if values["status"] == "departed" and current["status"] == "departed":
            # The offboarding recorded the day they left: a terminated row with no date keeps it.
            values["end_date"] = values["end_date"] or current["end_date"]
    values["status"] = values["status"] or "active"
    return values


def _resolve_managers(plan: _Plan, rows_by_email: dict[str, int], emails_with_errors: set[str],
                      errors: list[LineError]) -> None:
    """Point each row at its manager: a row of this file first, else someone in the directory."""
    existing = plan.existing
    for index, target in enumerate(plan.targets):
        if "manager_email" not in target.row.cells:
            # No manager column: keep the manager the directory has.
            manager_id = existing.by_id[target.person_id]["manager_id"] if target.person_id is not None else None
            target.manager = _node_of_person(plan, manager_id)
            continue
        manager_email = target.row.cells["manager_email"]
        if manager_email is None:
            target.manager = None
        elif manager_email in rows_by_email:
            target.manager = ("row", rows_by_email[manager_email])
        elif manager_email in existing.by_email:
            target.manager = _node_of_person(plan, existing.by_email[manager_email])
        elif manager_email in emails_with_errors:
            continue  # the manager's own line has an error, reported there
        else:
            errors.append(LineError(target.row.line, "manager_email", f"no one has the email {manager_email}, in this file or in the directory"))
            continue
        if target.manager == ("row", index):
            errors.append(LineError(target.row.line, "manager_email", "a person cannot be their own manager"))
    _find_cycles(plan, errors)


def _node_of_person(plan: _Plan, person_id: int | None) -> Node | None:
    """The node of an existing person: their row when the file updates them."""
    if person_id is None:
        return None
    index = plan.row_of_person.get(person_id)
    return ("row", index) if index is not None else ("existing", person_id)


def _find_cycles(plan: _Plan, errors: list[LineError]) -> None:
    """Refuse reporting lines that would loop once the file is applied."""
    existing = plan.existing

    def boss(node: Node) -> Node | None:
        kind, key = node
        if kind == "row":
            return plan.targets[key].manager
        return _node_of_person(plan, existing.by_id[key]["manager_id"]) if key in existing.by_id else None

    def email(node: Node) -> str:
        kind, key = node
        return str(plan.targets[key].values["email"] if kind == "row" else existing.by_id[key]["email"])

    state: dict[Node, int] = {}  # 1: on the path being walked, 2: known to end or to be reported
    for start in range(len(plan.targets)):
        path: list[Node] = []
        node: Node | None = ("row", start)
        while node is not None and node not in state:
            state[node] = 1
            path.append(node)
            node = boss(node)
        if node is not None and state[node] == 1:
            loop = path[path.index(node):]
            if len(loop) > 1:  # a single-person loop is "their own manager", reported already
                names = " → ".join([*(email(n) for n in loop), email(loop[0])])
                for kind, key in loop:
                    if kind == "row":
                        errors.append(LineError(plan.targets[key].row.line, "manager_email", f"makes a management cycle: {names}"))
        for visited in path:
            state[visited] = 2


def _manager_id_before_write(plan: _Plan, node: Node | None) -> int | None:
    """The manager's person id when it exists already; -1 for a person this import creates."""
    if node is None:
        return None
    kind, key = node
    if kind == "existing":
        return key
    person_id = plan.targets[key].person_id
    return person_id if person_id is not None else -1


def _count(plan: _Plan, bad_lines: set[int]) -> None:
    report = plan.report
    fields: Counter[str] = Counter()
    for target in plan.targets:
        if target.row.line in bad_lines:
            continue
        if target.person_id is None:
            report.new += 1
            if len(report.changes) < MAX_CHANGES:
                report.changes.append(RowChange(target.row.line, "new", target.values["full_name"] or "", target.values["email"], []))
            continue
        current = plan.existing.by_id[target.person_id]
        target.changed = [name for name in WRITTEN_FIELDS if current[name] != target.values[name]]
        if _manager_id_before_write(plan, target.manager) != current["manager_id"]:
            target.changed.append("manager")
        if target.changed:
            report.updated += 1
            fields.update(target.changed)
            if len(report.changes) < MAX_CHANGES:
                report.changes.append(RowChange(target.row.line, "updated", target.values["full_name"] or "", target.values["email"], target.changed))
        else:
            report.unchanged += 1
    report.changed_fields = dict(sorted(fields.items()))
    today = utcnow().date()
    report.leavers = sum(1 for t in plan.targets if t.row.line not in bad_lines and _says_left(t, plan, today))


def _says_left(target: _Target, plan: _Plan, today: date) -> bool:
    """The row says the person left (status or a past end date) and the directory has them active."""
    if "status" not in target.row.cells and "end_date" not in target.row.cells:
        return False
    return has_left(target.values["status"], target.values["end_date"], today=today) and (
        target.person_id is None or plan.existing.by_id[target.person_id]["status"] == "active")


def _news_for_offboarding(target: _Target, plan: _Plan, today: date) -> bool:
    """Whether the row's status or end date may start, schedule, move or cancel an offboarding."""
    if "status" not in target.row.cells and "end_date" not in target.row.cells:
        return False
    if _says_left(target, plan, today):
        return True
    if target.person_id is None:
        return target.values["end_date"] is not None
    status = plan.existing.by_id[target.person_id]["status"]
    if status != "active":
        # An Active row for a leaver: reported, never a rehire (see lifecycle.follow_records).
        return target.values["status"] == "active" and target.values["end_date"] is None
    return "end_date" in target.changed


# --- the two entry points ---------------------------------------------------------------------------


def preview_import(session: Session, parsed: ParsedFile, *, progress: Progress | None = None) -> ImportReport:
    """What the import would do and every problem in the file; writes nothing."""
    return _plan(session, parsed, progress).report


def apply_import(session: Session, parsed: ParsedFile, *, actor: Actor | None,
                 progress: Progress | None = None) -> ImportReport:
    """Upsert every row, or nothing: raise ImportInvalidError while any line has an error.

    The import never writes a status: it reports in ``leaving`` and ``newcomers_gone`` what the rows
    say about leaving, and govern.offboarding.lifecycle.import_people (which calls this) starts,
    schedules, moves or cancels the offboardings.
    """
    plan = _plan(session, parsed, progress)
    report = plan.report
    if not report.ok:
        raise ImportInvalidError(report)
    person_of_row = _write(session, plan) if report.new or report.updated else {
        index: t.person_id for index, t in enumerate(plan.targets) if t.person_id is not None}
    report.applied = True
    audit.record(session, "directory.imported", actor=actor, details={
        "file_name": report.filename, "sha256": report.sha256, "rows": report.rows, "new": report.new,
        "updated": report.updated, "unchanged": report.unchanged, "changed_fields": report.changed_fields,
    })
    # Rows whose status or end date says something new about leaving go to the offboarding; new
    # people were written active (a leaver who never had access is offboarded at once, with
    # nothing to take).
    today = utcnow().date()
    report.leaving = {person_of_row[index]: (t.values["status"], t.values["end_date"])
                      for index, t in enumerate(plan.targets)
                      if index in person_of_row and _news_for_offboarding(t, plan, today)}
    report.newcomers_gone = {person_of_row[index]: t.values["end_date"] for index, t in enumerate(plan.targets)
                             if t.person_id is None and person_of_row[index] in report.leaving
                             and _says_left(t, plan, today)}
    return report


def _write(session: Session, plan: _Plan) -> dict[int, int]:
    """Bulk INSERT the new people, bulk UPDATE the changed ones, then set the new people's managers."""
    now = utcnow()
    person_of_row = {index: t.person_id for index, t in enumerate(plan.targets) if t.person_id is not None}
    new = [(index, t) for index, t in enumerate(plan.targets) if t.person_id is None]
    if new:
        payload = [{**t.values, "status": "active", "source": "csv", "created_at": now, "updated_at": now}
                   for _i, t in new]
        ids = session.scalars(insert(Person).returning(Person.id, sort_by_parameter_order=True), payload).all()
        for (index, _t), person_id in zip(new, ids, strict=True):
            person_of_row[index] = person_id

    def manager_id(node: Node | None) -> int | None:
        if node is None:
            return None
        return person_of_row[node[1]] if node[0] == "row" else node[1]

    updates = [{"id": t.person_id, **{name: t.values[name] for name in WRITTEN_FIELDS},
                "manager_id": manager_id(t.manager), "source": "csv", "updated_at": now}
               for t in plan.targets if t.person_id is not None and t.changed]
    # New people get their managers once every new person exists (a manager may come later).
    managers = [{"id": person_of_row[index], "manager_id": manager_id(t.manager)} for index, t in new if t.manager is not None]
    if updates:
        session.execute(update(Person), updates)
    if managers:
        session.execute(update(Person), managers)
    session.flush()
    return person_of_row
