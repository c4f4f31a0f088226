"""Single sign-on: OpenID providers, the identities they vouch for, who must use SSO

A provider is configured by an admin (issuer, client id, the name of the environment variable
holding the client secret, allowed email domains, the groups claim); an identity links a provider's
subject to a govern user at the first sign-in and keeps the groups of the last id token; one
settings row says who must sign in through SSO and which admin may still break glass.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0025_sso'
down_revision: str | None = '0024_connectors'


def upgrade() -> None:
    op.create_table('sso_providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('client_secret_env', sa.String(length=100), nullable=False),
    sa.Column('allowed_domains', sa.Text(), nullable=False),
    sa.Column('groups_claim', sa.String(length=100), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_providers')),
    sa.UniqueConstraint('slug', name=op.f('uq_sso_providers_slug'))
    )
    op.create_table('sso_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('groups_json', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['provider_id'], ['sso_providers.id'], name=op.f('fk_sso_identities_provider_id_sso_providers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sso_identities_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_identities')),
    sa.UniqueConstraint('provider_id', 'subject', name='uq_sso_identities_provider_subject')
    )
    with op.batch_alter_table('sso_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_identities_user_id'), ['user_id'], unique=False)

    op.create_table('sso_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('required_for_all', sa.Boolean(), nullable=False),
    sa.Column('required_roles', sa.Text(), nullable=False),
    sa.Column('break_glass_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['break_glass_user_id'], ['users.id'], name=op.f('fk_sso_settings_break_glass_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_settings'))
    )


def downgrade() -> None:
    op.drop_table('sso_settings')
    with op.batch_alter_table('sso_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_identities_user_id'))
    op.drop_table('sso_identities')
    op.drop_table('sso_providers')
