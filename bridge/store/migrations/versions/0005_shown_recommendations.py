"""shown_recommendations: what each learner's site was last told their open recommendations are

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bridge.store.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shown_recommendations",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", bridge.store.schema.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("shown_recommendations")
