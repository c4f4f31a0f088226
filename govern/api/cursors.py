"""Cursor pagination: a stable order by id, an opaque cursor, and the next link."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from govern.api.problems import ApiProblem

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode(position: int) -> str:
    """The opaque cursor of a position (the last id a page showed)."""
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    """The position of a cursor; a 400 problem for one govern did not make."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ApiProblem(400, "The cursor is not one this API gave: use the next link of the previous page.",
                         kind="invalid-cursor", errors=[{"location": "query", "field": "cursor",
                                                         "message": "not a cursor of this API"}])
    return value


@dataclass
class Slice:
    """One page of rows in id order and the cursor of the next page (None at the end)."""

    rows: list[Any]
    next_cursor: str | None


def read_slice(session: Session, statement: Select[Any], id_column: Any, *, cursor: str | None, limit: int,
               newest_first: bool = False, scalars: bool = True) -> Slice:
    """Rows of ``statement`` after the cursor, in id order (``newest_first``: descending), one row read ahead."""
    after = decode(cursor)
    if after is not None:
        statement = statement.where(id_column < after if newest_first else id_column > after)
    statement = statement.order_by(id_column.desc() if newest_first else id_column).limit(limit + 1)
    result = session.scalars(statement) if scalars else session.execute(statement)
    rows = list(result.unique() if scalars else result)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    position: int | None = None
    if more and last is not None:
        position = int(last.id if scalars else last[0])
    return Slice(rows, encode(position) if position is not None else None)


def next_link(next_cursor: str | None) -> str | None:
    """The URL of the next page: this request's query with the new cursor."""
    if next_cursor is None:
        return None
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    args.append(("cursor", next_cursor))
    return f"{request.path}?{urlencode(args)}"


def link_header(next_url: str | None) -> dict[str, str]:
    """RFC 8288 Link header of the next page."""
    return {"Link": f'<{next_url}>; rel="next"'} if next_url else {}


def ids(rows: Sequence[Any]) -> list[int]:
    """The ids of a page's rows."""
    return [int(row.id) for row in rows]
