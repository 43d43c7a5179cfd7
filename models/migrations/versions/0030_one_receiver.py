"""one process receives each bot's updates: the inbox that passed them between processes goes

Revision ID: 0030
Revises: 0027
Create Date: 2026-12-06 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An update still in it was received by a web process that stopped: Telegram was answered,
    # so it would not come again. The process receiving now cannot tell it apart; it is dropped.
    op.drop_index("ix_inbox_chat_update", table_name="inbox")
    op.drop_table("inbox")


def downgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handlings", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox")),
    )
    op.create_index("ix_inbox_chat_update", "inbox", ["chat_id", "update_id"], unique=False)
