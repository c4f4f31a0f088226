"""users.time_zone: the zone a user reads times in (None: the organisation's GOVERN_TIME_ZONE)"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017_time_zones"
down_revision: str | None = "0016_security_findings"


def upgrade() -> None:
    # A plain nullable column: SQLite (3.35+) and PostgreSQL add and drop it in place, no table copy.
    op.add_column("users", sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "time_zone")
