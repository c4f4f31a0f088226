"""PostgreSQL: the people search can be answered by the trigram index (the access matrix shares its clause).

The index (migration 0012) must cover the very expressions the searches compare; if either side
changes alone, PostgreSQL silently goes back to reading every person. With sequential and plain index scans
priced out, the plan shows whether the index can serve the statement as SQLAlchemy sends it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import text

from govern.directory.services import PersonFilter, people_query

ADMIN = SimpleNamespace(roles=frozenset({"admin"}), person_id=None, id=None)


@pytest.fixture
def explain(db, is_postgresql):
    if not is_postgresql:
        pytest.skip("SQLite has no trigram index; it reads every person (a few ms)")
    db.execute(text("SET LOCAL enable_seqscan = off"))
    db.execute(text("SET LOCAL enable_indexscan = off"))  # nor walking the name index with a filter

    def plan(statement) -> str:
        sql = statement.compile(dialect=db.get_bind().dialect, compile_kwargs={"literal_binds": True})
        rows = db.connection().exec_driver_sql(f"EXPLAIN {sql}".replace("%%", "%").replace("%", "%%"))
        return "\n".join(r[0] for r in rows)

    return plan


def test_the_people_search_uses_the_trigram_index(explain):
    plan = explain(people_query(ADMIN, PersonFilter(q="Person 01234")))
    assert "ix_people_search_trigrams" in plan, plan
