"""rotation: per-secret intervals, rotation tasks, compromise incidents"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0006'


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('compromised_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('previous_status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('close_note', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_incidents_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_incidents_account_id_accounts')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_incidents_closed_by_id_users')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['users.id'], name=op.f('fk_incidents_opened_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('uq_incidents_open', ['account_id'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('rotation_intervals',
    sa.Column('secret_id', sa.Integer(), nullable=False),
    sa.Column('interval_days', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('interval_days IS NULL OR interval_days BETWEEN 1 AND 3650', name=op.f('ck_rotation_intervals_days')),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], name=op.f('fk_rotation_intervals_secret_id_secrets')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_rotation_intervals_updated_by_id_users')),
    sa.PrimaryKeyConstraint('secret_id', name=op.f('pk_rotation_intervals'))
    )
    op.create_table('rotation_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('secret_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('reasons_json', sa.Text(), nullable=False),
    sa.Column('people_json', sa.Text(), nullable=False),
    sa.Column('notes_json', sa.Text(), nullable=False),
    sa.Column('is_urgent', sa.Boolean(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('staged_version_id', sa.Integer(), nullable=True),
    sa.Column('new_token_expires_at', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('staged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('staged_by_id', sa.Integer(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by_id', sa.Integer(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("reason IN ('scheduled', 'exposure', 'offboarding', 'compromise', 'manual')", name=op.f('ck_rotation_tasks_reason')),
    sa.CheckConstraint("status IN ('open', 'staged', 'done', 'cancelled')", name=op.f('ck_rotation_tasks_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_rotation_tasks_account_id_accounts')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_rotation_tasks_assignee_id_users')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['users.id'], name=op.f('fk_rotation_tasks_cancelled_by_id_users')),
    sa.ForeignKeyConstraint(['completed_by_id'], ['users.id'], name=op.f('fk_rotation_tasks_completed_by_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_rotation_tasks_created_by_id_users')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_rotation_tasks_incident_id_incidents')),
    sa.ForeignKeyConstraint(['secret_id'], ['secrets.id'], name=op.f('fk_rotation_tasks_secret_id_secrets')),
    sa.ForeignKeyConstraint(['staged_by_id'], ['users.id'], name=op.f('fk_rotation_tasks_staged_by_id_users')),
    sa.ForeignKeyConstraint(['staged_version_id'], ['secret_versions.id'], name=op.f('fk_rotation_tasks_staged_version_id_secret_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rotation_tasks'))
    )
    with op.batch_alter_table('rotation_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_rotation_tasks_account_id_status', ['account_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_rotation_tasks_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index('ix_rotation_tasks_secret_id_id', ['secret_id', 'id'], unique=False)
        batch_op.create_index('ix_rotation_tasks_status_due_at', ['status', 'due_at'], unique=False)
        batch_op.create_index('uq_rotation_tasks_live', ['secret_id'], unique=True, sqlite_where=sa.text("status IN ('open', 'staged')"), postgresql_where=sa.text("status IN ('open', 'staged')"))



def downgrade() -> None:
    with op.batch_alter_table('rotation_tasks', schema=None) as batch_op:
        batch_op.drop_index('uq_rotation_tasks_live', sqlite_where=sa.text("status IN ('open', 'staged')"), postgresql_where=sa.text("status IN ('open', 'staged')"))
        batch_op.drop_index('ix_rotation_tasks_status_due_at')
        batch_op.drop_index('ix_rotation_tasks_secret_id_id')
        batch_op.drop_index(batch_op.f('ix_rotation_tasks_incident_id'))
        batch_op.drop_index('ix_rotation_tasks_account_id_status')

    op.drop_table('rotation_tasks')
    op.drop_table('rotation_intervals')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('uq_incidents_open', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.drop_table('incidents')
