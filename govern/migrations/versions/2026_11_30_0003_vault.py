"""vault: secrets, their encrypted versions, exposures, KEK check values"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'


def upgrade() -> None:
    op.create_table('vault_key_checks',
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('check_value', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kek_id', name=op.f('pk_vault_key_checks'))
    )
    op.create_table('secrets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('login', sa.String(length=320), nullable=True),
    sa.Column('url', sa.String(length=500), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('token_expires_at', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('password', 'totp', 'recovery_codes', 'api_token', 'note')", name=op.f('ck_secrets_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_secrets_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_secrets_created_by_id_users')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_secrets_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_secrets')),
    sa.UniqueConstraint('account_id', 'label', name='uq_secrets_account_id_label')
    )
    with op.batch_alter_table('secrets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_secrets_account_id'), ['account_id'], unique=False)

    op.create_table('secret_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('secret_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'current', 'retired', 'destroyed')", name=op.f('ck_secret_versions_status')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_secret_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], name=op.f('fk_secret_versions_secret_id_secrets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_secret_versions')),
    sa.UniqueConstraint('secret_id', 'version', name='uq_secret_versions_secret_id_version')
    )
    with op.batch_alter_table('secret_versions', schema=None) as batch_op:
        batch_op.create_index('ix_secret_versions_kek_id_id', ['kek_id', 'id'], unique=False)
        batch_op.create_index('ix_secret_versions_status_retired_at', ['status', 'retired_at'], unique=False)
        batch_op.create_index('uq_secret_versions_current', ['secret_id'], unique=True, sqlite_where=sa.text("status = 'current'"), postgresql_where=sa.text("status = 'current'"))
        batch_op.create_index('uq_secret_versions_pending', ['secret_id'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    op.create_table('exposures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('secret_version_id', sa.Integer(), nullable=False),
    sa.Column('secret_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('exposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('value', 'totp_code', 'totp_seed')", name=op.f('ck_exposures_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_exposures_account_id_accounts')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_exposures_person_id_people')),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], name=op.f('fk_exposures_secret_id_secrets')),
    sa.ForeignKeyConstraint(['secret_version_id'], ['secret_versions.id'], name=op.f('fk_exposures_secret_version_id_secret_versions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exposures_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exposures'))
    )
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.create_index('ix_exposures_account_id_exposed_at', ['account_id', 'exposed_at'], unique=False)
        batch_op.create_index('ix_exposures_person_id_exposed_at', ['person_id', 'exposed_at'], unique=False)
        batch_op.create_index('ix_exposures_secret_id_exposed_at', ['secret_id', 'exposed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_secret_version_id'), ['secret_version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exposures_secret_version_id'))
        batch_op.drop_index('ix_exposures_secret_id_exposed_at')
        batch_op.drop_index('ix_exposures_person_id_exposed_at')
        batch_op.drop_index('ix_exposures_account_id_exposed_at')

    op.drop_table('exposures')
    with op.batch_alter_table('secret_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_secret_versions_pending', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index('uq_secret_versions_current', sqlite_where=sa.text("status = 'current'"), postgresql_where=sa.text("status = 'current'"))
        batch_op.drop_index('ix_secret_versions_status_retired_at')
        batch_op.drop_index('ix_secret_versions_kek_id_id')

    op.drop_table('secret_versions')
    with op.batch_alter_table('secrets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_secrets_account_id'))

    op.drop_table('secrets')
    op.drop_table('vault_key_checks')
