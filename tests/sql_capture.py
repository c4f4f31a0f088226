"""The SQL a piece of code sends: for the tests of query counts and of what a statement carries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event


def sent(connection: Any, fn: Callable[[], object], *, warm_up: bool = False) -> list[tuple[str, Any]]:
    """(statement, parameters) of every statement ``fn`` sends through ``connection``'s engine.

    ``warm_up`` runs ``fn`` once first, unwatched: a page's first request writes the session's
    last-seen stamp (at most once a minute), which is not the page's own work.
    """
    if warm_up:
        fn()
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(connection.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(connection.engine, "before_cursor_execute", before)
    return seen


def statements(connection: Any, fn: Callable[[], object]) -> list[str]:
    """The statements of ``fn`` after a warm-up run (see ``sent``)."""
    return [statement for statement, _parameters in sent(connection, fn, warm_up=True)]
