"""presses and messages are counted in the memory of the process receiving the bot

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A window lasts a minute at most: nothing in it is worth carrying over.
    op.drop_table("press_windows")


def downgrade() -> None:
    op.create_table(
        "press_windows",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_press_windows")),
    )
