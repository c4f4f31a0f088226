"""password rules: what the password generator may produce for each platform"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0004'

#: Symbols accepted by every platform below as far as their sign-up forms tell; quotes, the
#: backquote and the backslash are left out because some login forms and apps mangle them.
SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
META = "Meta accounts: at least 6 characters, a mix of letters, numbers and punctuation; not a recent password."
RULES = [
    # platform, min, max, default length, notes
    ("facebook", 6, 64, 32, META),
    ("instagram", 6, 64, 32, META),
    ("threads", 6, 64, 32, "Threads signs in with the Instagram account: the password is Instagram's. " + META),
    ("x", 8, 128, 32, "X: at least 8 characters."),
    ("linkedin", 8, 128, 32, "LinkedIn: at least 8 characters; must not contain the sign-in email."),
    ("tiktok", 8, 20, 20, "TikTok: 8 to 20 characters with letters, numbers and special characters."),
    ("youtube", 8, 100, 32, "YouTube channels sign in with their Google (Brand) account: 8 to 100 printable ASCII characters, no leading or trailing space."),
    ("pinterest", 8, 64, 32, "Pinterest: at least 8 characters; avoid the account's name or email."),
    ("snapchat", 8, 64, 32, "Snapchat: at least 8 characters."),
    ("bluesky", 8, 64, 32, "Bluesky: at least 8 characters. Apps should use an app password, not this one."),
    ("mastodon", 8, 72, 32, "Mastodon (server defaults): 8 to 72 characters; a server may set its own rules."),
    ("other", 12, 64, 32, "No platform rules known: 12 to 64 characters of letters, digits and common symbols."),
]
COLUMNS = ("platform", "min_length", "max_length", "default_length", "lowercase", "uppercase", "digits",
           "symbols", "symbol_set", "notes", "updated_at")


def upgrade() -> None:
    op.create_table('password_rules',
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('min_length', sa.Integer(), nullable=False),
    sa.Column('max_length', sa.Integer(), nullable=False),
    sa.Column('default_length', sa.Integer(), nullable=False),
    sa.Column('lowercase', sa.String(length=10), nullable=False),
    sa.Column('uppercase', sa.String(length=10), nullable=False),
    sa.Column('digits', sa.String(length=10), nullable=False),
    sa.Column('symbols', sa.String(length=10), nullable=False),
    sa.Column('symbol_set', sa.String(length=40), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("digits IN ('required', 'allowed', 'excluded')", name=op.f('ck_password_rules_digits')),
    sa.CheckConstraint("lowercase IN ('required', 'allowed', 'excluded')", name=op.f('ck_password_rules_lowercase')),
    sa.CheckConstraint('min_length >= 4 AND min_length <= default_length AND default_length <= max_length AND max_length <= 256', name=op.f('ck_password_rules_lengths')),
    sa.CheckConstraint("platform IN ('facebook', 'instagram', 'x', 'linkedin', 'tiktok', 'youtube', 'threads', 'pinterest', 'snapchat', 'bluesky', 'mastodon', 'other')", name=op.f('ck_password_rules_platform')),
    sa.CheckConstraint("symbols IN ('required', 'allowed', 'excluded')", name=op.f('ck_password_rules_symbols')),
    sa.CheckConstraint("uppercase IN ('required', 'allowed', 'excluded')", name=op.f('ck_password_rules_uppercase')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_password_rules_updated_by_id_users')),
    sa.PrimaryKeyConstraint('platform', name=op.f('pk_password_rules'))
    )
    now = datetime.now(UTC)
    table = sa.table('password_rules', *(sa.column(c) for c in COLUMNS))
    op.bulk_insert(table, [
        dict(zip(COLUMNS, (platform, low, high, length, "required", "required", "required", "required", SYMBOLS, notes, now), strict=True))
        for platform, low, high, length, notes in RULES
    ])


def downgrade() -> None:
    op.drop_table('password_rules')
