"""Alembic environment: runs on the connection `models.db.upgrade_database` hands over."""

from alembic import context

from models.entities import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("Run migrations with 'mahalle db upgrade', which supplies the connection.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
