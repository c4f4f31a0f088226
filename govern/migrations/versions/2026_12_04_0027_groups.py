"""Groups from the identity provider: SCIM /Groups and who is in them, from which source

A group keeps its display name (unique) and the provider's id; a membership row says that one person
is in one group according to one source (SCIM, or an SSO provider's groups claim), so each source
adds and removes only its own rows.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0027_groups'
down_revision: str | None = '0026_passkeys'


def upgrade() -> None:
    op.create_table('directory_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_groups')),
    sa.UniqueConstraint('display_name', name=op.f('uq_directory_groups_display_name'))
    )
    with op.batch_alter_table('directory_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_groups_external_id'), ['external_id'], unique=False)
    op.create_table('group_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('display', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['directory_groups.id'], name=op.f('fk_group_members_group_id_directory_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_group_members_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_members')),
    sa.UniqueConstraint('group_id', 'person_id', 'source', name=op.f('uq_group_members_group_id_person_id_source'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_person_id'))
    op.drop_table('group_members')
    with op.batch_alter_table('directory_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_groups_external_id'))
    op.drop_table('directory_groups')
