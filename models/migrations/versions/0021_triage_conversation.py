"""a case keeps a second domain, whether its reporter was asked for (and chose) its domain, and a
correction keeps the domain it corrected

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("second_domain_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("domain_asked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reporter_chose_domain", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_second_domain_key_domains"),
            "domains",
            ["second_domain_key"],
            ["key"],
        )
    with op.batch_alter_table("triage_corrections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_domain_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triage_corrections", schema=None) as batch_op:
        batch_op.drop_column("from_domain_key")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_cases_second_domain_key_domains"), type_="foreignkey"
        )
        batch_op.drop_column("reporter_chose_domain")
        batch_op.drop_column("domain_asked_at")
        batch_op.drop_column("second_domain_key")
