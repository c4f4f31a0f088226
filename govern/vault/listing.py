"""Lists for pages: secrets with their current version, versions and exposures (never values)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session, aliased, lazyload

from govern.accounts.models import Account, Role
from govern.auth.models import User
from govern.db import utcnow
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.paging import Page, count_of, read_page
from govern.vault.access import CUSTODIAN_ROLE
from govern.vault.models import Exposure, Secret, SecretVersion


@dataclass
class SecretRow:
    """A secret with its current version's number and age, for lists (never its value)."""

    secret: Secret
    version: int | None
    since: datetime | None
    has_pending: bool


def secret_rows(session: Session, secrets: list[Secret]) -> list[SecretRow]:
    """Current version number and date of each secret: one query whatever their number."""
    ids = [s.id for s in secrets]
    current: dict[int, tuple[int, datetime | None]] = {}
    pending: set[int] = set()
    if ids:
        for secret_id, number, status, confirmed, created in session.execute(
            select(SecretVersion.secret_id, SecretVersion.version, SecretVersion.status, SecretVersion.confirmed_at,
                   SecretVersion.created_at).where(SecretVersion.secret_id.in_(ids), SecretVersion.status.in_(("current", "pending")))
        ):
            if status == "current":
                current[secret_id] = (number, confirmed or created)
            else:
                pending.add(secret_id)
    return [SecretRow(s, current.get(s.id, (None, None))[0], current.get(s.id, (None, None))[1], s.id in pending) for s in secrets]


def account_secrets(session: Session, account_id: int) -> list[SecretRow]:
    """Every secret of an account, with the age of its current version: one query.

    A secret has at most one current and one pending version (unique indexes), so the outer joins
    never repeat a secret.
    """
    rows = session.execute(_account_secrets_statement(), {"account_id": account_id})
    return [SecretRow(secret, number, (confirmed or created) if number is not None else None, pending_id is not None)
            for secret, number, confirmed, created, pending_id in rows]


def _account_secrets_statement() -> Select[*tuple[Any, ...]]:
    """``account_secrets`` over the parameter ``account_id``."""
    current, pending = aliased(SecretVersion), aliased(SecretVersion)
    return (
        select(Secret, current.version, current.confirmed_at, current.created_at, pending.id)
        .options(lazyload(Secret.account))  # the caller's account, already in the session
        .outerjoin(current, and_(current.secret_id == Secret.id, current.status == "current"))
        .outerjoin(pending, and_(pending.secret_id == Secret.id, pending.status == "pending"))
        .where(Secret.account_id == bindparam("account_id", type_=Integer)).order_by(Secret.label)
    )


def revealable_secrets(session: Session, user: User, *, page: int, per_page: int = 50) -> Page[SecretRow]:
    """The secrets ``user`` may reveal: all for IT; else those of active accounts with a revealing grant."""
    query = select(Secret).join(Account, Account.id == Secret.account_id)
    if CUSTODIAN_ROLE not in set(user.roles):
        now = utcnow()
        accounts = select(Grant.account_id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == user.person_id, Grant.status == "active", Grant.starts_at <= now,
            (Grant.expires_at.is_(None)) | (Grant.expires_at > now), Role.may_reveal.is_(True))
        query = query.where(Secret.account_id.in_(accounts), Account.status == "active")
    found = read_page(session, query.order_by(Account.display_name, Secret.label), page, per_page, count=count_of(query),
                      scalars=True)
    return replace(found, items=secret_rows(session, found.items))


def versions_of(session: Session, secret: Secret) -> list[SecretVersion]:
    """Every version of a secret, newest first (metadata only is shown)."""
    return list(session.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id).order_by(SecretVersion.version.desc())))


@dataclass
class ExposureRow:
    """An exposure with who and what, for pages (plain values: pages only read them)."""

    id: int
    exposed_at: datetime
    secret_id: int
    kind: str
    reason: str
    person_name: str
    user_email: str
    secret_label: str
    account_name: str
    version: int


def exposure_rows(*extra: Any) -> Select[*tuple[Any, ...]]:
    """The columns and joins of ``exposures`` (an ExposureRow's, in order), then ``extra`` columns (the API's ids)."""
    return (
        select(Exposure.id, Exposure.exposed_at, Exposure.secret_id, Exposure.kind, Exposure.reason,
               Person.full_name.label("person_name"), User.email.label("user_email"), Secret.label.label("secret_label"),
               Account.display_name.label("account_name"), SecretVersion.version, *extra)
        .join(Person, Person.id == Exposure.person_id).join(User, User.id == Exposure.user_id)
        .join(Secret, Secret.id == Exposure.secret_id).join(Account, Account.id == Exposure.account_id)
        .join(SecretVersion, SecretVersion.id == Exposure.secret_version_id)
    )


def exposures(session: Session, *, secret_id: int | None = None, account_id: int | None = None,
              person_id: int | None = None, page: int = 1, per_page: int = 50) -> Page[ExposureRow]:
    """Exposures filtered by secret, account or person, newest first, with a total for paging."""
    params = {"secret_id": secret_id, "account_id": account_id, "person_id": person_id,
              "limit": per_page, "offset": (page - 1) * per_page}
    rows_statement, count_statement = _exposure_statements(secret_id is not None, account_id is not None, person_id is not None)
    rows = session.connection().execute(rows_statement, params).all()
    if page == 1 and len(rows) < per_page:
        total = len(rows)  # the first page holds them all: no count needed
    else:
        total = session.connection().execute(count_statement, params).scalar() or 0
    return Page([ExposureRow(*row) for row in rows], page, per_page, total=total)


def _exposure_statements(by_secret: bool, by_account: bool, by_person: bool) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """The page and the count of ``exposures`` for one combination of filters, over bound parameters.

    Built once per combination: SQLAlchemy walks a statement's structure (here five joined tables)
    once per statement object to find its compiled SQL, which cost a tenth of a millisecond a page.
    """
    conditions = []
    if by_secret:
        conditions.append(Exposure.secret_id == bindparam("secret_id", type_=Integer))
    if by_account:
        conditions.append(Exposure.account_id == bindparam("account_id", type_=Integer))
    if by_person:
        conditions.append(Exposure.person_id == bindparam("person_id", type_=Integer))
    rows = (exposure_rows().where(*conditions).order_by(Exposure.exposed_at.desc(), Exposure.id.desc())
            .offset(bindparam("offset", type_=Integer)).limit(bindparam("limit", type_=Integer)))
    return rows, select(func.count(Exposure.id)).where(*conditions)


