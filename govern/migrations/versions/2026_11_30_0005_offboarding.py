"""offboarding: offboardings, checklist items, successors; SCIM tokens and identities"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0008'


def upgrade() -> None:
    op.create_table('scim_identities',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('user_name', sa.String(length=320), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('emails_json', sa.Text(), nullable=True),
    sa.Column('given_name', sa.String(length=200), nullable=True),
    sa.Column('family_name', sa.String(length=200), nullable=True),
    sa.Column('formatted_name', sa.String(length=200), nullable=True),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_scim_identities_person_id_people')),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_scim_identities'))
    )
    with op.batch_alter_table('scim_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scim_identities_external_id'), ['external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scim_identities_user_name'), ['user_name'], unique=False)

    op.create_table('offboardings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline_hours', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('grants_before_json', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('immediate', 'scheduled')", name=op.f('ck_offboardings_kind')),
    sa.CheckConstraint("origin IN ('manual', 'import', 'scim')", name=op.f('ck_offboardings_origin')),
    sa.CheckConstraint("status IN ('scheduled', 'in_progress', 'completed', 'cancelled')", name=op.f('ck_offboardings_status')),
    sa.CheckConstraint('deadline_hours >= 1', name=op.f('ck_offboardings_deadline')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['users.id'], name=op.f('fk_offboardings_cancelled_by_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_offboardings_created_by_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_offboardings_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offboardings'))
    )
    with op.batch_alter_table('offboardings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_offboardings_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_offboardings_status_effective_at', ['status', 'effective_at'], unique=False)
        batch_op.create_index('uq_offboardings_open', ['person_id'], unique=True, sqlite_where=sa.text("status IN ('scheduled', 'in_progress')"), postgresql_where=sa.text("status IN ('scheduled', 'in_progress')"))

    op.create_table('scim_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_scim_tokens_created_by_id_users')),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_scim_tokens_revoked_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scim_tokens')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_scim_tokens_token_digest'))
    )
    op.create_table('offboarding_successors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offboarding_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('successor_id', sa.Integer(), nullable=False),
    sa.Column('chosen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chosen_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_offboarding_successors_account_id_accounts')),
    sa.ForeignKeyConstraint(['chosen_by_id'], ['users.id'], name=op.f('fk_offboarding_successors_chosen_by_id_users')),
    sa.ForeignKeyConstraint(['offboarding_id'], ['offboardings.id'], name=op.f('fk_offboarding_successors_offboarding_id_offboardings')),
    sa.ForeignKeyConstraint(['successor_id'], ['people.id'], name=op.f('fk_offboarding_successors_successor_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offboarding_successors')),
    sa.UniqueConstraint('offboarding_id', 'account_id', name='uq_offboarding_successors_account')
    )
    op.create_table('offboarding_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offboarding_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('owner', sa.String(length=16), nullable=False),
    sa.Column('owner_person_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('platform_removal_id', sa.Integer(), nullable=True),
    sa.Column('ref_type', sa.String(length=40), nullable=True),
    sa.Column('ref_id', sa.Integer(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_by_id', sa.Integer(), nullable=True),
    sa.Column('evidence_note', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('platform_removal', 'successor', 'manual', 'rotation', 'token_revoke')", name=op.f('ck_offboarding_items_kind')),
    sa.CheckConstraint("owner IN ('it', 'manager', 'hr')", name=op.f('ck_offboarding_items_owner')),
    sa.CheckConstraint("status IN ('open', 'done', 'skipped')", name=op.f('ck_offboarding_items_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_offboarding_items_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_offboarding_items_created_by_id_users')),
    sa.ForeignKeyConstraint(['done_by_id'], ['users.id'], name=op.f('fk_offboarding_items_done_by_id_users')),
    sa.ForeignKeyConstraint(['offboarding_id'], ['offboardings.id'], name=op.f('fk_offboarding_items_offboarding_id_offboardings')),
    sa.ForeignKeyConstraint(['owner_person_id'], ['people.id'], name=op.f('fk_offboarding_items_owner_person_id_people')),
    sa.ForeignKeyConstraint(['platform_removal_id'], ['platform_removals.id'], name=op.f('fk_offboarding_items_platform_removal_id_platform_removals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offboarding_items')),
    sa.UniqueConstraint('offboarding_id', 'key', name='uq_offboarding_items_key')
    )
    with op.batch_alter_table('offboarding_items', schema=None) as batch_op:
        batch_op.create_index('ix_offboarding_items_offboarding_id_status', ['offboarding_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_offboarding_items_owner_person_id'), ['owner_person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('offboarding_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_offboarding_items_owner_person_id'))
        batch_op.drop_index('ix_offboarding_items_offboarding_id_status')

    op.drop_table('offboarding_items')
    op.drop_table('offboarding_successors')
    op.drop_table('scim_tokens')
    with op.batch_alter_table('offboardings', schema=None) as batch_op:
        batch_op.drop_index('uq_offboardings_open', sqlite_where=sa.text("status IN ('scheduled', 'in_progress')"), postgresql_where=sa.text("status IN ('scheduled', 'in_progress')"))
        batch_op.drop_index('ix_offboardings_status_effective_at')
        batch_op.drop_index(batch_op.f('ix_offboardings_person_id'))

    op.drop_table('offboardings')
    with op.batch_alter_table('scim_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scim_identities_user_name'))
        batch_op.drop_index(batch_op.f('ix_scim_identities_external_id'))

    op.drop_table('scim_identities')
