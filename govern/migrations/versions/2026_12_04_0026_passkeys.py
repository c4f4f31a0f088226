"""Passkeys: WebAuthn credentials as a second factor, and the roles that must use one

A passkey row keeps the credential id, the public key, the signature counter, the backup flags and
the user's name for it; the factor policy's one row lists the app roles whose users must sign in and
step up with a passkey (a phishing-resistant factor) rather than a TOTP code.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0026_passkeys'
down_revision: str | None = '0025_sso'


def upgrade() -> None:
    op.create_table('passkeys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('credential_id', sa.LargeBinary(), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sign_count', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('transports_json', sa.Text(), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=False),
    sa.Column('backup_eligible', sa.Boolean(), nullable=False),
    sa.Column('backup_state', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_passkeys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkeys')),
    sa.UniqueConstraint('credential_id', name=op.f('uq_passkeys_credential_id'))
    )
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkeys_user_id'), ['user_id'], unique=False)
    op.create_table('factor_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('passkey_roles_json', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_factor_policy_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_factor_policy'))
    )


def downgrade() -> None:
    op.drop_table('factor_policy')
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkeys_user_id'))
    op.drop_table('passkeys')
