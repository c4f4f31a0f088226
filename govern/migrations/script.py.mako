"""${message}"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
# Created ${create_date.strftime("%Y-%m-%d")}. branch_labels and depends_on are left out: govern's history is one line.
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
