"""The people search's SQL: case folding for LIKE and SQLite's trigram full-text prefilter (migration 0013)."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, event, literal
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import String

#: SQLite's trigram full-text index of people (migration 0013), and the dialect attribute that says
#: whether this database has it.
PEOPLE_SEARCH_TABLE = "people_search"
PEOPLE_SEARCH_FLAG = "govern_people_search_index"


class like_folded(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it stands for
    """A text column as a case-insensitive ``LIKE`` needs it next to a lower-cased pattern.

    PostgreSQL: ``lower(column)``. SQLite: the column itself, because its ``LIKE`` already ignores
    ASCII case and its ``lower()`` folds nothing else, so the matches are the same without a
    function call per row (half the time of a search through 20,000 people).
    """

    type = String()
    inherit_cache = True


@compiles(like_folded)
def _like_folded(element: like_folded, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(like_folded, "sqlite")
def _like_folded_sqlite(element: like_folded, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


class people_search_prefilter(ColumnElement[bool]):  # noqa: N801 - reads as the SQL it stands for
    """``person_id`` among the people whose name, email or employee id contain ``needle`` (3+ characters).

    SQLite with the index of migration 0013: ``people.id IN (SELECT rowid FROM people_search WHERE
    people_search MATCH '"needle"')``, a lookup in the trigram index instead of reading every person.
    It ignores case, so it finds at least every person the search's own ``LIKE`` terms match; those
    still decide. Elsewhere (PostgreSQL finds the same through its own trigram index), and on a
    SQLite database without a usable index (``_note_search_index``), it is true.
    """

    # No Boolean type: SQLite would then compare the whole IN (...) with 1.
    inherit_cache = True
    _traverse_internals = [("person_id", InternalTraversal.dp_clauseelement),
                           ("needle", InternalTraversal.dp_clauseelement)]

    def __init__(self, person_id: SQLColumnExpression[int], needle: str) -> None:
        self.person_id = person_id
        # The needle as one FTS5 phrase: quoted, quotes doubled; the trigram tokenizer then
        # matches it as a substring of a column.
        self.needle = literal('"' + needle.replace('"', '""') + '"', String())


@compiles(people_search_prefilter)
def _people_search_prefilter(element: people_search_prefilter, compiler: Any, **kw: Any) -> str:
    return "1 = 1"


@compiles(people_search_prefilter, "sqlite")
def _people_search_prefilter_sqlite(element: people_search_prefilter, compiler: Any, **kw: Any) -> str:
    if not getattr(compiler.dialect, PEOPLE_SEARCH_FLAG, False):
        return "1 = 1"
    person_id, needle = compiler.process(element.person_id, **kw), compiler.process(element.needle, **kw)
    # The table name is a constant and the needle a bound parameter: nothing from input is spliced in.
    return f"{person_id} IN (SELECT rowid FROM {PEOPLE_SEARCH_TABLE} WHERE {PEOPLE_SEARCH_TABLE} MATCH {needle})"  # noqa: S608


@event.listens_for(Engine, "engine_connect")
def _note_search_index(connection: Connection) -> None:
    """On SQLite, note once per engine whether its database has a usable people search index.

    Migration 0013 leaves the index out where SQLite has no trigram tokenizer, and a database may move
    to a SQLite without FTS5: searches then read every person (the prefilter compiles to ``1 = 1``).
    Listens on every engine, so it holds wherever govern's models are searched (app, CLI, tests).
    """
    dialect = connection.dialect
    if dialect.name != "sqlite" or hasattr(dialect, PEOPLE_SEARCH_FLAG):
        return
    raw = connection.connection.dbapi_connection
    if raw is None:
        return
    found = raw.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (PEOPLE_SEARCH_TABLE,)).fetchone()
    usable = found is not None
    if usable:
        try:  # a database moved to a SQLite without FTS5 or its trigram tokenizer
            raw.execute(  # the table name is a constant
                f"SELECT rowid FROM {PEOPLE_SEARCH_TABLE} WHERE {PEOPLE_SEARCH_TABLE} MATCH '\"probe\"' LIMIT 0"  # noqa: S608
            ).fetchall()
        except sqlite3.Error:
            usable = False
            logging.getLogger("govern").error(
                "this SQLite cannot read the people search index (FTS5 with the trigram tokenizer, 3.34+): "
                "searches read every person, and writing people fails until SQLite is upgraded")
    setattr(dialect, PEOPLE_SEARCH_FLAG, usable)
