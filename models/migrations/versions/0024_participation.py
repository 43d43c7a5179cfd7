"""residents join an open case ("me too"); local groups offer help with a case

Revision ID: 0024
Revises: 0020
Create Date: 2026-12-06 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_joins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_joins_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_joins")),
        sa.UniqueConstraint("case_id", "user_id", name="uq_case_joins_case_user"),
    )
    op.create_index(op.f("ix_case_joins_case_id"), "case_joins", ["case_id"])
    op.create_index("ix_case_joins_user_id", "case_joins", ["user_id"])
    op.create_index("ix_case_joins_joined_at", "case_joins", ["joined_at"])
    op.create_table(
        "help_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offered_by", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_help_offers_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["local_groups.id"], name=op.f("fk_help_offers_group_id_local_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_offers")),
        sa.UniqueConstraint("case_id", "group_id", name="uq_help_offers_case_group"),
    )
    op.create_index(op.f("ix_help_offers_case_id"), "help_offers", ["case_id"])
    op.create_index("ix_help_offers_created_at", "help_offers", ["created_at"])
    op.create_table(
        "help_offer_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["help_offers.id"], name=op.f("fk_help_offer_events_offer_id_help_offers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_offer_events")),
    )
    op.create_index(op.f("ix_help_offer_events_offer_id"), "help_offer_events", ["offer_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_help_offer_events_offer_id"), table_name="help_offer_events")
    op.drop_table("help_offer_events")
    op.drop_index("ix_help_offers_created_at", table_name="help_offers")
    op.drop_index(op.f("ix_help_offers_case_id"), table_name="help_offers")
    op.drop_table("help_offers")
    op.drop_index("ix_case_joins_joined_at", table_name="case_joins")
    op.drop_index("ix_case_joins_user_id", table_name="case_joins")
    op.drop_index(op.f("ix_case_joins_case_id"), table_name="case_joins")
    op.drop_table("case_joins")
