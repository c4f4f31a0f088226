"""registry: accounts, role catalogue, platform role names, grants, removals, policies, reviews"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'


ROLES = [
    # code, name, description, may_reveal, needs_second_approval, is_admin_role, policy_tier, sort_order
    ("owner", "Owner", "Accountable for the account; holds full control on the platform.", True, True, True, "privileged", 1),
    ("admin", "Admin", "Manages the account, its roles and settings on the platform.", True, True, True, "privileged", 2),
    ("publisher", "Publisher", "Creates and publishes content; may sign in with the shared credentials.", True, False, False, "standard", 3),
    ("moderator", "Moderator", "Answers comments and messages through the platform's own role.", False, False, False, "standard", 4),
    ("advertiser", "Advertiser", "Runs paid campaigns through the platform's ads tools.", False, False, False, "standard", 5),
    ("analyst", "Analyst", "Reads insights and reports.", False, False, False, "standard", 6),
]

META = {"owner": "Full control", "admin": "Full control", "publisher": "Partial access: Content",
        "moderator": "Partial access: Community activity, Messages", "advertiser": "Partial access: Ads",
        "analyst": "Partial access: Insights"}
PLATFORM_ROLE_NAMES = [
    *(("facebook", role, "Meta business portfolio", name) for role, name in META.items()),
    *(("instagram", role, "Meta business portfolio", name) for role, name in META.items()),
    *(("threads", role, "Meta business portfolio", name) for role, name in META.items()),
    *(("facebook", role, "Facebook Page (classic roles)", name) for role, name in {
        "owner": "Admin", "admin": "Admin", "publisher": "Editor", "moderator": "Moderator",
        "advertiser": "Advertiser", "analyst": "Analyst"}.items()),
    *(("linkedin", role, "LinkedIn Page", name) for role, name in {
        "owner": "Super admin", "admin": "Super admin", "publisher": "Content admin", "moderator": "Content admin",
        "advertiser": "Sponsored Content poster", "analyst": "Analyst"}.items()),
    *(("x", role, "X account access", name) for role, name in {
        "owner": "Owner", "admin": "Admin", "publisher": "Contributor", "moderator": "Contributor",
        "advertiser": "Contributor", "analyst": "Contributor"}.items()),
    *(("youtube", role, "YouTube channel permissions", name) for role, name in {
        "owner": "Owner", "admin": "Manager", "publisher": "Editor", "moderator": "Editor (limited)",
        "advertiser": "Viewer", "analyst": "Viewer"}.items()),
    *(("youtube", role, "Google Brand Account", name) for role, name in {
        "owner": "Primary owner", "admin": "Owner", "publisher": "Manager", "moderator": "Communications manager",
        "advertiser": "Manager", "analyst": "Communications manager"}.items()),
    *(("tiktok", role, "TikTok Business Center", name) for role, name in {
        "owner": "Admin", "admin": "Admin", "publisher": "Operator", "moderator": "Operator",
        "advertiser": "Operator", "analyst": "Analyst"}.items()),
]
ROLE_COLUMNS = ("code", "name", "description", "may_reveal", "needs_second_approval", "is_admin_role",
                "policy_tier", "sort_order")
NAME_COLUMNS = ("platform", "role_code", "system", "platform_role")


def _seed_catalogue() -> None:
    roles = sa.table("roles", *(sa.column(c) for c in ROLE_COLUMNS))
    op.bulk_insert(roles, [dict(zip(ROLE_COLUMNS, row, strict=True)) for row in ROLES])
    names = sa.table("platform_role_names", *(sa.column(c) for c in NAME_COLUMNS))
    op.bulk_insert(names, [dict(zip(NAME_COLUMNS, row, strict=True)) for row in PLATFORM_ROLE_NAMES])


def upgrade() -> None:
    op.create_table('roles',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('may_reveal', sa.Boolean(), nullable=False),
    sa.Column('needs_second_approval', sa.Boolean(), nullable=False),
    sa.Column('is_admin_role', sa.Boolean(), nullable=False),
    sa.Column('policy_tier', sa.String(length=32), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_roles'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('handle', sa.String(length=120), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('business_owner_id', sa.Integer(), nullable=True),
    sa.Column('crisis_contact_id', sa.Integer(), nullable=True),
    sa.Column('recovery_email_person_id', sa.Integer(), nullable=True),
    sa.Column('recovery_email_label', sa.String(length=200), nullable=True),
    sa.Column('recovery_phone_person_id', sa.Integer(), nullable=True),
    sa.Column('recovery_phone_label', sa.String(length=200), nullable=True),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rotation_interval_days', sa.Integer(), nullable=False),
    sa.Column('max_credential_holders', sa.Integer(), nullable=False),
    sa.Column('min_admins', sa.Integer(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("platform IN ('facebook', 'instagram', 'x', 'linkedin', 'tiktok', 'youtube', 'threads', 'pinterest', 'snapchat', 'bluesky', 'mastodon', 'other')", name=op.f('ck_accounts_platform')),
    sa.CheckConstraint("status IN ('active', 'locked', 'archived')", name=op.f('ck_accounts_status')),
    sa.CheckConstraint("tier IN ('standard', 'high', 'critical')", name=op.f('ck_accounts_tier')),
    sa.CheckConstraint('min_admins >= 1 AND max_credential_holders >= 1 AND rotation_interval_days >= 1', name=op.f('ck_accounts_limits')),
    sa.ForeignKeyConstraint(['business_owner_id'], ['people.id'], name=op.f('fk_accounts_business_owner_id_people')),
    sa.ForeignKeyConstraint(['crisis_contact_id'], ['people.id'], name=op.f('fk_accounts_crisis_contact_id_people')),
    sa.ForeignKeyConstraint(['recovery_email_person_id'], ['people.id'], name=op.f('fk_accounts_recovery_email_person_id_people')),
    sa.ForeignKeyConstraint(['recovery_phone_person_id'], ['people.id'], name=op.f('fk_accounts_recovery_phone_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('platform', 'handle', name='uq_accounts_platform_handle')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_business_owner_id'), ['business_owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_crisis_contact_id'), ['crisis_contact_id'], unique=False)
        batch_op.create_index('ix_accounts_status_platform', ['status', 'platform'], unique=False)

    op.create_table('platform_role_names',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('role_code', sa.String(length=16), nullable=False),
    sa.Column('system', sa.String(length=80), nullable=False),
    sa.Column('platform_role', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['role_code'], ['roles.code'], name=op.f('fk_platform_role_names_role_code_roles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_role_names')),
    sa.UniqueConstraint('platform', 'role_code', 'system', name='uq_platform_role_names_mapping')
    )
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('role_code', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.Column('revoke_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'active', 'expired', 'revoked', 'rejected')", name=op.f('ck_grants_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_grants_account_id_accounts')),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_grants_approved_by_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_grants_person_id_people')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_grants_requested_by_id_users')),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_grants_revoked_by_id_users')),
    sa.ForeignKeyConstraint(['role_code'], ['roles.code'], name=op.f('fk_grants_role_code_roles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grants'))
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_account_id_status', ['account_id', 'status'], unique=False)
        batch_op.create_index('ix_grants_person_id_status', ['person_id', 'status'], unique=False)
        batch_op.create_index('ix_grants_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('uq_grants_live', ['person_id', 'account_id', 'role_code'], unique=True, sqlite_where=sa.text("status IN ('requested', 'active')"), postgresql_where=sa.text("status IN ('requested', 'active')"))

    op.create_table('policy_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body_markdown', sa.Text(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['published_by_id'], ['users.id'], name=op.f('fk_policy_versions_published_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_versions')),
    sa.UniqueConstraint('tier', 'version', name='uq_policy_versions_tier_version')
    )
    op.create_table('review_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scope_kind', sa.String(length=16), nullable=False),
    sa.Column('scope_value', sa.String(length=120), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("scope_kind IN ('all', 'platform', 'department')", name=op.f('ck_review_campaigns_scope_kind')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_review_campaigns_closed_by_id_users')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_review_campaigns_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_campaigns'))
    )
    op.create_table('acknowledgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('policy_version_id', sa.Integer(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_acknowledgements_person_id_people')),
    sa.ForeignKeyConstraint(['policy_version_id'], ['policy_versions.id'], name=op.f('fk_acknowledgements_policy_version_id_policy_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acknowledgements')),
    sa.UniqueConstraint('person_id', 'policy_version_id', name='uq_acknowledgements_person_version')
    )
    with op.batch_alter_table('acknowledgements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acknowledgements_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_acknowledgements_policy_version_id'), ['policy_version_id'], unique=False)

    op.create_table('platform_removals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('platform_role', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_platform_removals_account_id_accounts')),
    sa.ForeignKeyConstraint(['confirmed_by_id'], ['users.id'], name=op.f('fk_platform_removals_confirmed_by_id_users')),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_platform_removals_grant_id_grants')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_platform_removals_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_removals')),
    sa.UniqueConstraint('grant_id', name=op.f('uq_platform_removals_grant_id'))
    )
    with op.batch_alter_table('platform_removals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_platform_removals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_platform_removals_person_id'), ['person_id'], unique=False)

    op.create_table('review_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("decision IS NULL OR decision IN ('keep', 'revoke', 'not_reviewed')", name=op.f('ck_review_items_decision')),
    sa.ForeignKeyConstraint(['campaign_id'], ['review_campaigns.id'], name=op.f('fk_review_items_campaign_id_review_campaigns')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_review_items_decided_by_id_users')),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_review_items_grant_id_grants')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['people.id'], name=op.f('fk_review_items_reviewer_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')),
    sa.UniqueConstraint('campaign_id', 'grant_id', name='uq_review_items_campaign_grant')
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_campaign_id_decision', ['campaign_id', 'decision'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_items_reviewer_id'), ['reviewer_id'], unique=False)
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_status'), ['status'], unique=False)

    _seed_catalogue()


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_status'))

    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_items_reviewer_id'))
        batch_op.drop_index('ix_review_items_campaign_id_decision')

    op.drop_table('review_items')
    with op.batch_alter_table('platform_removals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_platform_removals_person_id'))
        batch_op.drop_index(batch_op.f('ix_platform_removals_account_id'))

    op.drop_table('platform_removals')
    with op.batch_alter_table('acknowledgements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acknowledgements_policy_version_id'))
        batch_op.drop_index(batch_op.f('ix_acknowledgements_person_id'))

    op.drop_table('acknowledgements')
    op.drop_table('review_campaigns')
    op.drop_table('policy_versions')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('uq_grants_live', sqlite_where=sa.text("status IN ('requested', 'active')"), postgresql_where=sa.text("status IN ('requested', 'active')"))
        batch_op.drop_index('ix_grants_status_expires_at')
        batch_op.drop_index('ix_grants_person_id_status')
        batch_op.drop_index('ix_grants_account_id_status')

    op.drop_table('grants')
    op.drop_table('platform_role_names')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_status_platform')
        batch_op.drop_index(batch_op.f('ix_accounts_crisis_contact_id'))
        batch_op.drop_index(batch_op.f('ix_accounts_business_owner_id'))

    op.drop_table('accounts')
    op.drop_table('roles')
