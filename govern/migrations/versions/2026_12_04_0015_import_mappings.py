"""HR import: the column mapping HR chose for an export is remembered for the next file with the same columns"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0015_import_mappings'
down_revision: str | None = '0013_people_search_fts'


def upgrade() -> None:
    op.create_table(
        'import_mappings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('header_key', sa.String(length=64), nullable=False),
        sa.Column('mapping_json', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_import_mappings_updated_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_import_mappings')),
        sa.UniqueConstraint('header_key', name=op.f('uq_import_mappings_header_key')),
    )


def downgrade() -> None:
    op.drop_table('import_mappings')
