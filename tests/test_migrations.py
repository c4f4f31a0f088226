"""Migrations: empty -> head -> base -> head, and the models match the migrations."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import govern.models  # noqa: F401
from govern.db import Base, make_engine
from govern.schema import current_revision, downgrade, head_revision, upgrade

#: SQLite's full-text table of people (migration 0013) and the tables FTS5 keeps for it: the models
#: do not declare them (PostgreSQL has a trigram index instead).
SQLITE_SEARCH_TABLES = {"people_search", "people_search_data", "people_search_idx", "people_search_docsize",
                        "people_search_config"}
SQLITE_SEARCH_TRIGGERS = {"people_search_after_insert", "people_search_after_delete", "people_search_after_update"}


def _tables(engine):
    return set(inspect(engine).get_table_names()) - {"alembic_version"} - SQLITE_SEARCH_TABLES


def _sqlite_objects(engine, kind):
    with engine.connect() as conn:
        return set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = :kind"), {"kind": kind}))


def test_upgrade_downgrade_upgrade(scratch_database_url):
    engine = make_engine(scratch_database_url)
    try:
        assert current_revision(engine) is None
        upgrade(scratch_database_url)
        assert current_revision(engine) == head_revision()
        assert _tables(engine) == set(Base.metadata.tables)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT last_event_id, last_hash FROM audit_chain_head")).one() == (0, "0" * 64)
        if engine.dialect.name == "sqlite":
            assert _sqlite_objects(engine, "table") >= SQLITE_SEARCH_TABLES
            assert _sqlite_objects(engine, "trigger") >= SQLITE_SEARCH_TRIGGERS
        downgrade(scratch_database_url, "base")
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(scratch_database_url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


#: Indexes on expressions (lower(full_name)): SQLAlchemy cannot reflect them from SQLite, so there
#: they are checked by name and definition instead of by autogenerate.
EXPRESSION_INDEXES = {"ix_people_name_order": ("people", "lower(full_name)")}

#: PostgreSQL-only indexes the models do not declare (a GIN index of pg_trgm trigrams has no
#: SQLite counterpart): checked by definition.
POSTGRESQL_INDEXES = {
    "ix_people_search_trigrams": ("people", "USING gin (lower((full_name)::text) gin_trgm_ops, email gin_trgm_ops, "
                                            "lower((employee_id)::text) gin_trgm_ops)"),
}


def test_models_match_the_migrations(scratch_database_url):
    upgrade(scratch_database_url)
    engine = make_engine(scratch_database_url)
    sqlite = engine.dialect.name == "sqlite"

    def include_object(_obj, name, type_, _reflected, _compare_to):
        if type_ == "table":
            return not (sqlite and name in SQLITE_SEARCH_TABLES)
        if type_ != "index":
            return True
        return not (sqlite and name in EXPRESSION_INDEXES) and not (not sqlite and name in POSTGRESQL_INDEXES)

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include_object})
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
                warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
                diff = compare_metadata(context, Base.metadata)
            assert diff == [], diff
            if sqlite:
                for name, (table, expression) in EXPRESSION_INDEXES.items():
                    sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": name})
                    assert sql is not None and f"ON {table} " in sql and expression in sql, (name, sql)
            else:
                for name, (table, definition) in POSTGRESQL_INDEXES.items():
                    sql = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name})
                    assert sql is not None and f"ON public.{table} " in sql and definition in sql, (name, sql)
    finally:
        engine.dispose()


def test_the_sqlite_search_table_indexes_the_people_already_there_and_goes_with_its_migration(scratch_database_url):
    """Migration 0013 indexes every existing person (and later migrations that rebuild ``people``
    must keep its triggers: the head check above fails without them)."""
    if not scratch_database_url.startswith("sqlite"):
        return  # PostgreSQL's trigram index is migration 0012's (tests/directory/test_search_index.py)
    upgrade(scratch_database_url, "0012_people_search_trigrams")
    engine = make_engine(scratch_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO people (full_name, email, status, source, created_at, updated_at) "
                              "VALUES ('Ada Lovelace', 'ada@acme.example', 'active', 'manual', '2026-01-01', '2026-01-01')"))
        upgrade(scratch_database_url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT rowid FROM people_search WHERE people_search MATCH '\"lovelace\"'")) == 1
            conn.execute(text("INSERT INTO people_search(people_search, rank) VALUES ('integrity-check', 1)"))
        downgrade(scratch_database_url, "0012_people_search_trigrams")
        assert not (SQLITE_SEARCH_TABLES | SQLITE_SEARCH_TRIGGERS) & (_sqlite_objects(engine, "table") | _sqlite_objects(engine, "trigger"))
        with engine.begin() as conn:  # people can still be written without the table and its triggers
            conn.execute(text("UPDATE people SET full_name = 'Ada King' WHERE id = 1"))
    finally:
        engine.dispose()
