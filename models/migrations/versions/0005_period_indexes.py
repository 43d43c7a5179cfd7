"""indexes for statistics over a period

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_created_at", "cases", ["created_at"])
    op.create_index("ix_case_events_to_status_created", "case_events", ["to_status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_case_events_to_status_created", table_name="case_events")
    op.drop_index("ix_cases_created_at", table_name="cases")
