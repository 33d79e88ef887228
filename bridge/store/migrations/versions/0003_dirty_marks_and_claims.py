"""dirty_people.mark (decide deletes only the marks it read); actions.claim_token and
lease_until (a claim is fenced and renewed while its worker sends); source_health.pulling
(decisions wait for a source's pull to have finished well)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bridge.store.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dirty_people") as batch:
        batch.add_column(sa.Column("mark", sa.String(length=32), server_default="", nullable=False))
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("lease_until", bridge.store.schema.UtcDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("source_health") as batch:
        batch.add_column(sa.Column("pulling", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("source_health") as batch:
        batch.drop_column("pulling")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claim_token")
    with op.batch_alter_table("dirty_people") as batch:
        batch.drop_column("mark")
