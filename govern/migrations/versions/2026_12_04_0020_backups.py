"""Backups made by `govern backup` and the jobs step

The admin home page shows the last good backup and warns when none is younger than a day; the
jobs step keeps the newest N archives and prunes older ones, which it finds here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0020_backups'
down_revision: str | None = '0019_ux_home'


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made_by", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("encryption", sa.String(length=16), nullable=False),
        sa.Column("migration", sa.String(length=64), nullable=True),
        sa.Column("audit_head_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("outcome IN ('ok', 'failed')", name=op.f("ck_backups_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index("ix_backups_outcome_finished_at", "backups", ["outcome", "finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_backups_outcome_finished_at", table_name="backups")
    op.drop_table("backups")
