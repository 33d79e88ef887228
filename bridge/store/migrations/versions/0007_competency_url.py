"""competencies.url: where a learner works on a competency (on Moodle, their learning plans page),
so a competency recommendation links to a real page

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("competencies") as batch:
        batch.add_column(sa.Column("url", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("competencies") as batch:
        batch.drop_column("url")
