"""several counties in one deployment

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 20:20:00

Districts and agencies belong to a county (a one-county deployment's is "main"); a domain names
the kind of agency it goes to, which each county resolves to its own agency.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("county_key", sa.String(64), nullable=False, server_default="main")
        )
        batch_op.create_index("ix_districts_county_key", ["county_key"])
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("county_key", sa.String(64), nullable=False, server_default="main")
        )
        batch_op.add_column(sa.Column("kind", sa.String(64), nullable=False, server_default=""))
    op.execute("UPDATE agencies SET kind = key")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agency_kind", sa.String(64), nullable=False, server_default="")
        )
    op.execute("UPDATE domains SET agency_kind = agency_key")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("agency_key")


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_key", sa.String(64), nullable=True))
    op.execute("UPDATE domains SET agency_key = agency_kind")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("agency_kind")
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_column("kind")
        batch_op.drop_column("county_key")
    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.drop_index("ix_districts_county_key")
        batch_op.drop_column("county_key")
