"""setup_tokens.redeemed_at: a setup secret is spent when it is typed in, not when the setup ends

Until now a setup secret stayed redeemable until the authenticator was confirmed, so a second
person holding it could redeem it again and replace the password chosen in the first session.
Redeeming it now marks it (one atomic update); the rest of the setup continues in the session
that redeemed it, and ``used_at`` still says when the setup finished.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016_security_findings"
down_revision: str | None = "0015_import_mappings"


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: no batch copy of the table on SQLite.
    op.add_column("setup_tokens", sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite (3.35 and later) drops a plain column in place; a batch copy would reflect the whole schema.
    op.drop_column("setup_tokens", "redeemed_at")
