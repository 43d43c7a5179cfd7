"""a statement adding to the outbox notifies the workers' senders (PostgreSQL)

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 18:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# bot.services.outbox.OUTBOX_CHANNEL; written out, as a migration stays as it was written.
CHANNEL = "mahalle_outbox"


def upgrade() -> None:
    # Once a statement, not once a row: a notice is delivered at the commit, and the same
    # notice twice in a transaction is delivered once, so a burst of cards wakes a worker once.
    # SQLite runs in one process, whose senders are woken without it.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION outbox_queued() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_queued AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_queued()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER outbox_queued ON outbox")
    op.execute("DROP FUNCTION outbox_queued()")
