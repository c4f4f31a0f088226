"""Groups from the identity provider: SCIM /Groups, who is in them from which source, and what they give

A group keeps its display name (unique) and the provider's id; a membership row says that one person
is in one group according to one source (SCIM, or an SSO provider's groups claim), so each source
adds and removes only its own rows. A mapping gives a group's members an app role or an account role
(pending until a second admin approves a sensitive one); an effect row records what it did for each member.
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

    op.create_table('group_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('app_role', sa.String(length=16), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('role_code', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(app_role IS NOT NULL AND account_id IS NULL AND role_code IS NULL) OR (app_role IS NULL AND account_id IS NOT NULL AND role_code IS NOT NULL)", name=op.f('ck_group_mappings_one_kind')),
    sa.CheckConstraint("status IN ('pending', 'active')", name=op.f('ck_group_mappings_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_group_mappings_account_id_accounts')),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_group_mappings_approved_by_id_users')),
    sa.ForeignKeyConstraint(['group_id'], ['directory_groups.id'], name=op.f('fk_group_mappings_group_id_directory_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name=op.f('fk_group_mappings_proposed_by_id_users')),
    sa.ForeignKeyConstraint(['role_code'], ['roles.code'], name=op.f('fk_group_mappings_role_code_roles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_mappings'))
    )
    with op.batch_alter_table('group_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_mappings_group_id'), ['group_id'], unique=False)
    op.create_table('group_effects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mapping_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('granted', 'role_added', 'held_by_hand', 'waiting_policy', 'waiting_login', 'blocked')", name=op.f('ck_group_effects_state')),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_group_effects_grant_id_grants')),
    sa.ForeignKeyConstraint(['mapping_id'], ['group_mappings.id'], name=op.f('fk_group_effects_mapping_id_group_mappings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_group_effects_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_effects')),
    sa.UniqueConstraint('mapping_id', 'person_id', name=op.f('uq_group_effects_mapping_id_person_id'))
    )
    with op.batch_alter_table('group_effects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_effects_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_effects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_effects_person_id'))
    op.drop_table('group_effects')
    with op.batch_alter_table('group_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_mappings_group_id'))
    op.drop_table('group_mappings')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_person_id'))
    op.drop_table('group_members')
    with op.batch_alter_table('directory_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_groups_external_id'))
    op.drop_table('directory_groups')
