"""a local group's founder may be forgotten: its founder link becomes NULL (was 0)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("local_groups", schema=None) as batch_op:
        batch_op.alter_column("created_by", existing_type=sa.BigInteger(), nullable=True)
    # 0 stood for "the founder asked to be forgotten".
    op.execute("UPDATE local_groups SET created_by = NULL WHERE created_by = 0")


def downgrade() -> None:
    op.execute("UPDATE local_groups SET created_by = 0 WHERE created_by IS NULL")
    with op.batch_alter_table("local_groups", schema=None) as batch_op:
        batch_op.alter_column("created_by", existing_type=sa.BigInteger(), nullable=False)
