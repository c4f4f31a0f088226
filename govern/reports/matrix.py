"""The access matrix: people × accounts with the roles each holds, for a filtered subset that fits a screen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from govern.accounts.models import Account, Role
from govern.directory.models import Person
from govern.reports.access import rows_query
from govern.reports.filters import AccessFilter

#: The matrix is for a filtered subset (one department, one platform): beyond this it is refused.
MATRIX_MAX_GRANTS = 2000
MATRIX_MAX_PEOPLE = 150
MATRIX_MAX_ACCOUNTS = 60


@dataclass
class Matrix:
    """People × accounts with the roles each person holds on each account."""

    people: list[tuple[int, str, str | None]] = field(default_factory=list)
    accounts: list[tuple[int, str, str]] = field(default_factory=list)
    cells: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    too_large: bool = False
    grants: int = 0


def access_matrix(session: Session, user: Any, flt: AccessFilter) -> Matrix:
    """The matrix of active grants matching ``flt``, or ``too_large`` when it would not fit a screen."""
    query = (
        rows_query(user, flt)
        .with_only_columns(Person.id, Person.full_name, Person.department, Account.id, Account.display_name,
                           Account.platform, Role.code)
        .order_by(Person.full_name, Person.id, Account.display_name, Account.id, Role.sort_order)
        .limit(MATRIX_MAX_GRANTS + 1)
    )
    rows = session.execute(query).all()
    matrix = Matrix(grants=len(rows))
    if len(rows) > MATRIX_MAX_GRANTS:
        matrix.too_large = True
        return matrix
    people: dict[int, tuple[int, str, str | None]] = {}
    accounts: dict[int, tuple[int, str, str]] = {}
    for person_id, name, department, account_id, account_name, platform, role in rows:
        people.setdefault(person_id, (person_id, name, department))
        accounts.setdefault(account_id, (account_id, account_name, platform))
        matrix.cells.setdefault((person_id, account_id), []).append(role)
    if len(people) > MATRIX_MAX_PEOPLE or len(accounts) > MATRIX_MAX_ACCOUNTS:
        matrix.too_large = True
        matrix.cells = {}
        return matrix
    matrix.people = list(people.values())
    matrix.accounts = sorted(accounts.values(), key=lambda a: (a[1].lower(), a[0]))
    return matrix
