"""Platform connectors: connections, the accounts they cover, sync runs, member snapshots, platform identities, attestations

A connection holds a vault secret (kind api_token) and lists the govern accounts it covers with each
account's platform id. A sync run records its per-account progress so a run that dies is continued by
the next; a member snapshot is written only when an account's member set changed. Owners attest the
member lists of accounts without an API (YouTube, X).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0024_connectors'
down_revision: str | None = '0023_api'


def upgrade() -> None:
    op.create_table('connector_attestations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('attested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attested_by_id', sa.Integer(), nullable=True),
    sa.Column('members_json', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('screenshot', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_connector_attestations_account_id_accounts')),
    sa.ForeignKeyConstraint(['attested_by_id'], ['users.id'], name=op.f('fk_connector_attestations_attested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_attestations'))
    )
    with op.batch_alter_table('connector_attestations', schema=None) as batch_op:
        batch_op.create_index('ix_connector_attestations_account_id_attested_at', ['account_id', 'attested_at'], unique=False)

    op.create_table('connector_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("platform IN ('meta', 'linkedin', 'tiktok', 'youtube', 'x')", name=op.f('ck_connector_identities_platform')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_connector_identities_created_by_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_connector_identities_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_identities')),
    sa.UniqueConstraint('platform', 'external_id', name='uq_connector_identities_platform_external_id')
    )
    with op.batch_alter_table('connector_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connector_identities_person_id'), ['person_id'], unique=False)

    op.create_table('connector_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('members_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_connector_snapshots_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_snapshots'))
    )
    with op.batch_alter_table('connector_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_connector_snapshots_account_id_taken_at', ['account_id', 'taken_at'], unique=False)

    op.create_table('connector_sync_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('progress_json', sa.Text(), nullable=False),
    sa.CheckConstraint("status IN ('running', 'done', 'partial', 'failed')", name=op.f('ck_connector_sync_runs_status')),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_connector_sync_runs_started_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_sync_runs'))
    )
    with op.batch_alter_table('connector_sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_connector_sync_runs_status_id', ['status', 'id'], unique=False)

    op.create_table('connector_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secret_id', sa.Integer(), nullable=False),
    sa.Column('auto_remove', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("platform IN ('meta', 'linkedin', 'tiktok')", name=op.f('ck_connector_connections_platform')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_connector_connections_created_by_id_users')),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], name=op.f('fk_connector_connections_secret_id_secrets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_connections')),
    sa.UniqueConstraint('platform', 'external_id', name='uq_connector_connections_platform_external_id')
    )
    with op.batch_alter_table('connector_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connector_connections_secret_id'), ['secret_id'], unique=False)

    op.create_table('connector_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('platform_id', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_connector_accounts_account_id_accounts')),
    sa.ForeignKeyConstraint(['connection_id'], ['connector_connections.id'], name=op.f('fk_connector_accounts_connection_id_connector_connections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_accounts')),
    sa.UniqueConstraint('account_id', name=op.f('uq_connector_accounts_account_id'))
    )
    with op.batch_alter_table('connector_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connector_accounts_connection_id'), ['connection_id'], unique=False)




def downgrade() -> None:
    with op.batch_alter_table('connector_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_accounts_connection_id'))

    op.drop_table('connector_accounts')
    with op.batch_alter_table('connector_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_connections_secret_id'))

    op.drop_table('connector_connections')
    with op.batch_alter_table('connector_sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_connector_sync_runs_status_id')

    op.drop_table('connector_sync_runs')
    with op.batch_alter_table('connector_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_connector_snapshots_account_id_taken_at')

    op.drop_table('connector_snapshots')
    with op.batch_alter_table('connector_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_identities_person_id'))

    op.drop_table('connector_identities')
    with op.batch_alter_table('connector_attestations', schema=None) as batch_op:
        batch_op.drop_index('ix_connector_attestations_account_id_attested_at')

    op.drop_table('connector_attestations')
