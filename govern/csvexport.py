"""Streaming CSV and JSON writers for exports: constant memory, spreadsheet formulas neutralised.

Nothing here knows about an area, Flask or the database: every export (audit, people, reports,
policies, reviews, offboarding evidence) writes its cells through ``safe_cell``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

#: Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: Flush the buffer to the client once it holds this many characters.
CHUNK_SIZE = 64 * 1024


def plain(value: Any) -> Any:
    """A JSON-friendly value: timestamps as ISO 8601 (UTC, seconds), everything else unchanged."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def safe_cell(value: Any) -> str:
    """The text of a CSV cell, with a leading quote if a spreadsheet would run it as a formula."""
    value = plain(value)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_chunks(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """A header line and one line per row, yielded in chunks of about CHUNK_SIZE characters."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        if buffer.tell() > CHUNK_SIZE:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_chunks(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """A JSON array of objects keyed by ``columns``, yielded in chunks; valid even when empty.

    Values are not neutralised: JSON is read by programs, and they must get the data as it is.
    """
    parts: list[str] = ["["]
    size = 1
    separator = "\n"
    for row in rows:
        item = json.dumps({column: plain(value) for column, value in zip(columns, row, strict=True)}, ensure_ascii=False)
        parts.append(separator + item)
        separator = ",\n"
        size += len(item) + 2
        if size > CHUNK_SIZE:
            yield "".join(parts)
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts)
