"""One-time links with which a person without a login accepts a policy version

The grant form's policy gate can send the person the policy to accept; someone with no login to
govern gets a link by email that records the acceptance for that person and version. Only the
digest of the link's token is stored.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0019_ux_home'
down_revision: str | None = '0017_time_zones'


def upgrade() -> None:
    op.create_table(
        "acknowledgement_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("role_code", sa.String(length=16), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_acknowledgement_links_person_id_people")),
        sa.ForeignKeyConstraint(["policy_version_id"], ["policy_versions.id"],
                                name=op.f("fk_acknowledgement_links_policy_version_id_policy_versions")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_acknowledgement_links_created_by_id_users")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_acknowledgement_links_account_id_accounts")),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name=op.f("fk_acknowledgement_links_grant_id_grants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgement_links")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_acknowledgement_links_token_digest")),
    )
    op.create_index(op.f("ix_acknowledgement_links_person_id"), "acknowledgement_links", ["person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_acknowledgement_links_person_id"), table_name="acknowledgement_links")
    op.drop_table("acknowledgement_links")
