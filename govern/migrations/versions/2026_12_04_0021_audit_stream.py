"""The audit trail streamed out, a keyed chain and signed checkpoints

Audit events gain the id of the audit key (kept outside the database) whose HMAC chains them;
events before it stay plain SHA-256 links. Checkpoints are signed statements of the chain head.
Sinks are the syslog and HTTPS receivers an admin configures, each with its cursor.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = '0021_audit_stream'
down_revision: str | None = '0020_backups'


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index("ix_audit_checkpoints_event_id", "audit_checkpoints", ["event_id"], unique=False)
    op.create_table(
        "audit_sinks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_cursor", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lag_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("format IN ('rfc5424', 'cef', 'ocsf')", name=op.f("ck_audit_sinks_format")),
        sa.CheckConstraint("kind IN ('syslog', 'https')", name=op.f("ck_audit_sinks_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_sinks")),
        sa.UniqueConstraint("name", name=op.f("uq_audit_sinks_name")),
    )
    # A plain ADD COLUMN on both databases: SQLite does not rebuild the table, PostgreSQL's
    # append-only trigger does not fire on DDL.
    op.add_column("audit_events", sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_column("key_id")
    op.drop_table("audit_sinks")
    op.drop_index("ix_audit_checkpoints_event_id", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
