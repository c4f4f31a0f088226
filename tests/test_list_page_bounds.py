"""The big lists' unfiltered views write their page into the SQL (PostgreSQL then plans them once per
connection); a filtered view keeps every value, the page included, a parameter (see govern.db.page_bounds)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.directory.helpers import signed_in
from tests.factories import make_account, make_person


def _page_statement(connection, client, path: str, table: str) -> tuple[str, object]:
    """The statement of one GET of ``path`` that reads the page of ``table`` (the one with a LIMIT)."""
    assert client.get(path).status_code == 200  # warm-up: the session's last-seen stamp
    seen: list[tuple[str, object]] = []

    def before(_conn, _cursor, statement, parameters, *_args):
        if f"FROM {table}" in statement and "LIMIT" in statement:
            seen.append((statement, parameters))

    event.listen(connection.engine, "before_cursor_execute", before)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(connection.engine, "before_cursor_execute", before)
    assert len(seen) == 1, seen
    return seen[0]


@pytest.mark.parametrize(("path", "table", "filtered"), [
    ("/people/?page=2", "people", "/people/?page=2&department=Sales"),
    ("/accounts/?page=2", "accounts", "/accounts/?page=2&platform=x"),
])
def test_the_unfiltered_page_has_no_parameters_and_a_filtered_one_keeps_them(app, db, kit, connection, path, table, filtered):
    _admin, client = signed_in(app, db, kit, "admin")
    for n in range(60):
        make_person(db, full_name=f"Listed {n:02d}", department="Sales")
        make_account(db, display_name=f"Listed {n:02d}", platform="x", handle=f"listed{n:02d}", url=f"https://x.com/listed{n:02d}")
    db.commit()

    statement, parameters = _page_statement(connection, client, path, table)
    assert "LIMIT 50 OFFSET 50" in statement and not parameters

    statement, parameters = _page_statement(connection, client, filtered, table)
    assert "LIMIT 50" not in statement and "Sales" not in statement and "'x'" not in statement
    assert parameters


def test_only_integers_and_govern_s_own_codes_are_written_into_sql() -> None:
    from govern.db import page_bounds, sql_constant

    assert sql_constant(50).value == 50 and sql_constant(("active", "revoked")).value == ["active", "revoked"]
    for not_constant in ("50", True, 1.5, ["active", "x' OR '1'='1"], ("Active",), [3], None):
        with pytest.raises(TypeError):
            sql_constant(not_constant)  # type: ignore[arg-type]
    limit, offset = page_bounds(3, 50, in_sql=True)
    assert (limit.value, offset.value) == (50, 100)
    assert page_bounds(3, 50, in_sql=False) == (50, 100)
