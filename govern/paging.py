"""One page of a list: its rows, where it sits, and whether pages come before and after it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from govern.db import page_bounds

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """The rows of page ``number`` (from 1) of a list cut into pages of ``per_page`` rows.

    A counted list knows its ``total``; a list read one row ahead knows only whether ``more`` follow.
    """

    items: list[T]
    number: int
    per_page: int
    #: How many rows the whole list has; None when it was not counted.
    total: int | None = None
    #: Whether a next page exists, for a list that was not counted.
    more: bool = False

    @property
    def has_previous(self) -> bool:
        """Whether a page comes before this one."""
        return self.number > 1

    @property
    def has_next(self) -> bool:
        """Whether a page comes after this one."""
        return self.more if self.total is None else self.number * self.per_page < self.total

    @property
    def pages(self) -> int | None:
        """How many pages the list has (at least one); None when it was not counted."""
        return None if self.total is None else max(1, -(-self.total // self.per_page))


def count_of(statement: Select[*tuple[Any, ...]]) -> Select[int]:
    """The statement counting the rows of ``statement`` (over it as a subquery)."""
    return select(func.count()).select_from(statement.order_by(None).subquery())


def read_page(session: Session, statement: Select[*tuple[Any, ...]], number: int, per_page: int, *,
              count: Select[*tuple[Any, ...]] | None = None, scalars: bool = False, unique: bool = False,
              in_sql: bool = False) -> Page[Any]:
    """Page ``number`` of the rows of ``statement`` (ordered by the caller); scalars when ``scalars``.

    With ``count`` (a statement giving the number of rows, e.g. ``count_of(statement)``) the page
    knows its total, and the page itself is read only when there are rows at all. Without it, one
    row more than a page is read: one statement, and the page knows whether a next one follows.
    ``unique`` for a statement that joins eagerly (as SQLAlchemy asks). ``in_sql`` writes the page
    into the SQL for a statement with no other parameter (counted pages only; see
    ``govern.db.page_bounds``).
    """
    if count is None:
        offset = (number - 1) * per_page
        rows = _read(session, statement.offset(offset).limit(per_page + 1), scalars, unique)
        return Page(rows[:per_page], number, per_page, more=len(rows) > per_page)
    total = session.scalar(count) or 0
    limit, offset = page_bounds(number, per_page, in_sql=in_sql)
    rows = _read(session, statement.limit(limit).offset(offset), scalars, unique) if total else []
    return Page(rows, number, per_page, total=total)


def page_of(rows: Sequence[T], number: int, per_page: int) -> Page[T]:
    """Page ``number`` of rows already read (e.g. filtered in Python), counted."""
    start = (number - 1) * per_page
    return Page(list(rows[start : start + per_page]), number, per_page, total=len(rows))


def _read(session: Session, statement: Select[*tuple[Any, ...]], scalars: bool, unique: bool) -> list[Any]:
    result = session.scalars(statement) if scalars else session.execute(statement)
    return list(result.unique() if unique else result)
