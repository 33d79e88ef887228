"""actions (recipient_person_id, state, sent_at): the weekly-cap query reads a person's recent
sent messages through it instead of scanning every sent row

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_actions_recipient_state_sent",
        "actions",
        ["recipient_person_id", "state", "sent_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_actions_recipient_state_sent", table_name="actions")
