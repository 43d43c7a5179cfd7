"""the council's meetings, agenda items, decisions with their audit, and typed steps

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-06 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "council_meetings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("county_key", sa.String(length=64), nullable=False),
        sa.Column("meets_at", WHEN, nullable=True),
        sa.Column("agenda_sent_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_council_meetings")),
    )
    op.create_index(op.f("ix_council_meetings_county_key"), "council_meetings", ["county_key"])
    op.create_table(
        "agenda_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=96), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["council_meetings.id"],
            name=op.f("fk_agenda_items_meeting_id_council_meetings"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_agenda_items_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda_items")),
        sa.UniqueConstraint("meeting_id", "topic", name="uq_agenda_items_topic"),
    )
    op.create_index(op.f("ix_agenda_items_meeting_id"), "agenda_items", ["meeting_id"])
    op.create_table(
        "council_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("county_key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("agency_key", sa.String(length=64), nullable=False),
        sa.Column("deadline_at", WHEN, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("accepted_at", WHEN, nullable=True),
        sa.Column("done_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["council_meetings.id"],
            name=op.f("fk_council_decisions_meeting_id_council_meetings"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_key"], ["agencies.key"], name=op.f("fk_council_decisions_agency_key_agencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_council_decisions")),
    )
    op.create_index(op.f("ix_council_decisions_meeting_id"), "council_decisions", ["meeting_id"])
    op.create_index("ix_council_decisions_status", "council_decisions", ["status"])
    op.create_table(
        "decision_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["council_decisions.id"],
            name=op.f("fk_decision_events_decision_id_council_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_events")),
    )
    op.create_index(op.f("ix_decision_events_decision_id"), "decision_events", ["decision_id"])
    op.create_table(
        "council_steps",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("county_key", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("agency_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_council_steps")),
    )


def downgrade() -> None:
    op.drop_table("council_steps")
    op.drop_index(op.f("ix_decision_events_decision_id"), table_name="decision_events")
    op.drop_table("decision_events")
    op.drop_index("ix_council_decisions_status", table_name="council_decisions")
    op.drop_index(op.f("ix_council_decisions_meeting_id"), table_name="council_decisions")
    op.drop_table("council_decisions")
    op.drop_index(op.f("ix_agenda_items_meeting_id"), table_name="agenda_items")
    op.drop_table("agenda_items")
    op.drop_index(op.f("ix_council_meetings_county_key"), table_name="council_meetings")
    op.drop_table("council_meetings")
