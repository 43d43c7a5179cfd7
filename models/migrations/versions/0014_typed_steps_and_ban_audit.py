"""typed steps remember their agency and prompt; /block and /unblock leave an audit row

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pending_inputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("prompt_message_id", sa.BigInteger(), nullable=True))
    # Steps owed before the upgrade have no prompt to reply to: they are asked for again.
    op.execute("DELETE FROM pending_inputs WHERE kind <> 'answer'")
    op.create_table(
        "ban_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("banned", sa.Boolean(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ban_events")),
    )
    with op.batch_alter_table("ban_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ban_events_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ban_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ban_events_user_id"))
    op.drop_table("ban_events")
    with op.batch_alter_table("pending_inputs", schema=None) as batch_op:
        batch_op.drop_column("prompt_message_id")
        batch_op.drop_column("agency_key")
