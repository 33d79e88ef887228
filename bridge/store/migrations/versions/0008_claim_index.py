"""actions (purpose, due_at, id) of pending rows: a claim reads each purpose's due rows in due
order through it, instead of sorting every due row by priority for every batch

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pending = sa.text("state = 'pending'")
    op.create_index(
        "ix_actions_claim",
        "actions",
        ["purpose", "due_at", "id"],
        unique=False,
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade() -> None:
    op.drop_index("ix_actions_claim", table_name="actions")
