"""The people search through its index: PostgreSQL's trigram index (migration 0012) and SQLite's
trigram full-text table (migration 0013). The access matrix shares the search clause.

On PostgreSQL the index must cover the very expressions the searches compare; if either side
changes alone, PostgreSQL silently goes back to reading every person. With sequential and plain
index scans priced out, the plan shows whether the index can serve the statement as SQLAlchemy
sends it. On SQLite the full-text table narrows the people first and the search's own LIKE terms
still decide, so the results must be exactly those of a search without it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from govern.directory import services
from govern.directory.models import Person
from govern.directory.search import PEOPLE_SEARCH_FLAG
from govern.directory.services import PersonFilter, people_query
from tests.factories import make_person

ADMIN = SimpleNamespace(roles=frozenset({"admin"}), person_id=None, id=None)


@pytest.fixture
def explain(db, is_postgresql):
    if not is_postgresql:
        pytest.skip("PostgreSQL's trigram index; SQLite's full-text table has its own tests below")
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


@pytest.fixture
def sqlite_index(db, is_postgresql):
    if is_postgresql:
        pytest.skip("SQLite's full-text table; PostgreSQL's trigram index has its own test above")
    # The migrated test database has the table, so the search must use it (not fall back quietly).
    assert getattr(db.get_bind().dialect, PEOPLE_SEARCH_FLAG) is True


def _found(db: Session, q: str) -> list[str]:
    found = services.list_people(db, ADMIN, PersonFilter(q=q), page=1)
    assert found.total == len(found.items)
    return [row.email for row in found.items]


def test_sqlite_searches_through_the_full_text_table(db, connection, sqlite_index):
    make_person(db, full_name="Ada Lovelace", email="ada@acme.example")
    db.flush()
    seen: list[tuple[str, tuple]] = []

    def before(_conn, _cursor, statement, parameters, *_args):
        seen.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", before)
    try:
        assert _found(db, "lovelace") == ["ada@acme.example"]
        assert _found(db, "ad") == ["ada@acme.example"]  # shorter than a trigram: LIKE alone
    finally:
        event.remove(connection, "before_cursor_execute", before)
    (search, parameters), (short, _) = seen
    assert "people_search MATCH" in search and "people_search" not in short, seen
    plan = " ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {search}", parameters))
    assert "VIRTUAL TABLE" in plan and "INTEGER PRIMARY KEY" in plan, plan


def test_the_full_text_table_follows_every_write_to_people(db, sqlite_index):
    person = make_person(db, full_name="Grace Hopper", email="grace@acme.example", employee_id="E-4242")
    db.flush()
    assert _found(db, "hopper") == _found(db, "e-4242") == ["grace@acme.example"]
    person.full_name, person.email = "Grace Brewster", "gbrewster@acme.example"
    db.flush()
    assert _found(db, "hopper") == [] and _found(db, "grace@") == []
    assert _found(db, "brewster") == ["gbrewster@acme.example"]
    person.department = "Navy"  # not an indexed column: the trigger on the three columns stays quiet
    db.flush()
    assert _found(db, "brewster") == ["gbrewster@acme.example"]
    db.execute(Person.__table__.update().where(Person.id == person.id).values(employee_id=None))
    assert _found(db, "e-4242") == []
    # Nothing renumbers people, but the index would follow (its rowid is the person's id).
    old_id, new_id = person.id, person.id + 1000
    db.execute(Person.__table__.update().where(Person.id == old_id).values(id=new_id))
    db.expunge(person)
    assert [row.id for row in services.list_people(db, ADMIN, PersonFilter(q="brewster"), page=1).items] == [new_id]
    person = db.get(Person, new_id)
    db.delete(person)
    db.flush()
    assert _found(db, "brewster") == []
    # The table matches the people table it indexes, row for row and term for term.
    db.execute(text("INSERT INTO people_search(people_search, rank) VALUES ('integrity-check', 1)"))


NEEDLES = ["lovelace", "LOVE", "ada@", "acme.example", "e-100", "100%", "a_b", 'o"b', "ÉLODIE", "élodie", "Ødegård",
           "ode", "  ", "zz", "x", "lace ada", "ace l", "O'Brien", "brien", "*", "ab*", "NEAR", "ad OR gr", "lov\x00elace"]


def test_sqlite_finds_exactly_what_a_search_without_the_index_finds(db, connection, sqlite_index):
    for name, email, employee_id in [("Ada Lovelace", "ada@acme.example", "E-100"), ("Élodie Ødegård", "elodie@acme.example", "e-100%"),
                                     ('Bob "o"b" Smith', "bob@acme.example", "A_B"), ("Siobhan O'Brien", "siobhan@acme.example", None),
                                     ("NEAR Nobody", "near*@acme.example", "AB*1"), ("Grace Hopper", "grace@acme.example", "e-1000")]:
        make_person(db, full_name=name, email=email, employee_id=employee_id)
    db.flush()
    with_index = {q: sorted(_found(db, q.strip())) for q in NEEDLES if q.strip()}
    # The same searches with the index switched off: the statement is compiled afresh (no cache).
    plain = Session(bind=connection.execution_options(compiled_cache=None), join_transaction_mode="create_savepoint")
    dialect = connection.dialect
    setattr(dialect, PEOPLE_SEARCH_FLAG, False)
    try:
        without_index = {q: sorted(_found(plain, q.strip())) for q in NEEDLES if q.strip()}
    finally:
        setattr(dialect, PEOPLE_SEARCH_FLAG, True)
        plain.close()
    assert with_index == without_index
    assert with_index["LOVE"] == ["ada@acme.example"] and with_index["e-100"] == ["ada@acme.example", "elodie@acme.example", "grace@acme.example"]
    assert with_index["100%"] == ["elodie@acme.example"] and with_index['o"b'] == ["bob@acme.example"]


def test_a_sqlite_that_cannot_read_the_table_searches_without_it(tmp_path, is_postgresql, caplog):
    """A database migrated where FTS5 had its trigram tokenizer, opened by a SQLite without it."""
    if is_postgresql:
        pytest.skip("SQLite's full-text table")
    import sqlite3

    from govern.db import make_engine

    path = tmp_path / "moved.db"
    raw = sqlite3.connect(path)
    # A table of that name that this SQLite cannot query as FTS5 stands in for the missing module.
    raw.execute("CREATE TABLE people_search (full_name TEXT)")
    raw.commit()
    raw.close()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with caplog.at_level("ERROR", logger="govern"), engine.connect():
            pass
        assert getattr(engine.dialect, PEOPLE_SEARCH_FLAG) is False
        assert "cannot read the people search index" in caplog.text
    finally:
        engine.dispose()
