"""the network's handbook: published versions, their files, and who confirmed reading them

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handbook_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("published_by", sa.BigInteger(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handbook_versions")),
        sa.UniqueConstraint("number", name=op.f("uq_handbook_versions_number")),
    )
    op.create_table(
        "handbook_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["handbook_versions.id"],
            name=op.f("fk_handbook_files_version_id_handbook_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handbook_files")),
        sa.UniqueConstraint("version_id", "name", name="uq_handbook_files_version_name"),
    )
    op.create_index(op.f("ix_handbook_files_version_id"), "handbook_files", ["version_id"])
    op.create_table(
        "handbook_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("county_key", sa.String(length=64), nullable=False),
        sa.Column("agency_key", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["handbook_versions.id"],
            name=op.f("fk_handbook_readings_version_id_handbook_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handbook_readings")),
        sa.UniqueConstraint("version_id", "user_id", name="uq_handbook_readings_version_user"),
    )
    op.create_index(op.f("ix_handbook_readings_version_id"), "handbook_readings", ["version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handbook_readings_version_id"), table_name="handbook_readings")
    op.drop_table("handbook_readings")
    op.drop_index(op.f("ix_handbook_files_version_id"), table_name="handbook_files")
    op.drop_table("handbook_files")
    op.drop_table("handbook_versions")
