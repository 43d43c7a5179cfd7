"""when each case was first forwarded, accepted and resolved, and last handed over

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:00:00

Filled from the audit log for existing cases; kept by every transition from now on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MILESTONES = {"forwarded_at": "forwarded", "accepted_at": "accepted", "resolved_at": "resolved"}


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for column in (*MILESTONES, "handed_over_at"):
            batch_op.add_column(sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    # One pass over the audit log into a small keyed table, then one lookup per case: a
    # correlated min() per case and column let SQLite pick the status index and crawl.
    firsts = ", ".join(
        f"min(CASE WHEN to_status = '{status}' THEN created_at END) AS {column}"
        for column, status in MILESTONES.items()
    )
    firsts += (
        ", max(CASE WHEN to_status IN ('forwarded', 'reopened') THEN created_at END)"
        " AS handed_over_at"
    )
    op.execute(
        f"CREATE TEMPORARY TABLE case_milestones AS "
        f"SELECT case_id, {firsts} FROM case_events GROUP BY case_id"
    )
    op.execute("CREATE UNIQUE INDEX ix_case_milestones_case_id ON case_milestones (case_id)")
    lookups = ", ".join(
        f"{column} = (SELECT m.{column} FROM case_milestones m WHERE m.case_id = cases.id)"
        for column in (*MILESTONES, "handed_over_at")
    )
    op.execute(f"UPDATE cases SET {lookups}")
    op.execute("DROP TABLE case_milestones")


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for column in (*MILESTONES, "handed_over_at"):
            batch_op.drop_column(column)
