"""each step of a case's history names the agency that held the case after it

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-06 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_key", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_case_events_agency_case", ["agency_key", "case_id"], unique=False)
    # Steps taken before this was kept: the agency holding the case now is the best known.
    op.execute(
        "UPDATE case_events SET agency_key = (SELECT cases.agency_key FROM cases"
        " WHERE cases.id = case_events.case_id)"
        " WHERE to_status NOT IN ('submitted', 'triage')"
    )


def downgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_agency_case")
        batch_op.drop_column("agency_key")
