"""dirty_people.mark: a token per mark, so decide deletes only the marks it read

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dirty_people") as batch:
        batch.add_column(sa.Column("mark", sa.String(length=32), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("dirty_people") as batch:
        batch.drop_column("mark")
