"""The people list's order (lower-cased name, then id) is an index, so a page does not sort everyone

Measured at 10,000 people on SQLite: the first page of /people/ spent 5.4 ms sorting the whole
table in its one statement; read in index order it stops after 50 rows.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'


def upgrade() -> None:
    op.create_index("ix_people_name_order", "people", [sa.text("lower(full_name)"), "id"])


def downgrade() -> None:
    op.drop_index("ix_people_name_order", table_name="people")
