"""Migrations: empty -> head -> base -> head, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import govern.models  # noqa: F401
from govern.db import Base, make_engine
from govern.schema import current_revision, downgrade, head_revision, upgrade


def _tables(engine):
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(scratch_database_url):
    engine = make_engine(scratch_database_url)
    try:
        assert current_revision(engine) is None
        upgrade(scratch_database_url)
        assert current_revision(engine) == head_revision()
        assert _tables(engine) == set(Base.metadata.tables)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT last_event_id, last_hash FROM audit_chain_head")).one() == (0, "0" * 64)
        downgrade(scratch_database_url, "base")
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(scratch_database_url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_match_the_migrations(scratch_database_url):
    upgrade(scratch_database_url)
    engine = make_engine(scratch_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()
