"""source_health.resting_failures: the failures that count toward the circuit breaker (a people
export refused for its contents is read again every cycle instead of resting the feed)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_health") as batch:
        batch.add_column(sa.Column("resting_failures", sa.Integer(), server_default="0", nullable=False))
    # Every failure counted toward the breaker before this release.
    op.execute("UPDATE source_health SET resting_failures = consecutive_failures")


def downgrade() -> None:
    with op.batch_alter_table("source_health") as batch:
        batch.drop_column("resting_failures")
