"""Engine, session factory and schema upgrades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A database that is down or drops connections: refused, reset, or a driver error.
UNREACHABLE = (DBAPIError, OSError)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout so writers queue."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects readable after commit (handlers render after saving)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(executor: AsyncSession | AsyncConnection, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in the dialect (PostgreSQL or SQLite) of a session or
    connection."""
    bind = executor if isinstance(executor, AsyncConnection) else executor.get_bind()
    dialect = bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def alembic_config() -> Config:
    """Alembic's config, built in code so the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(connection: Connection, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the schema on this connection to `revision`."""
    config = alembic_config()
    config.attributes["connection"] = connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column by copying the table; the rows pointing at it must not object.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


# Held while migrating, so processes started together (two web, one worker) take turns.
MIGRATION_LOCK = 0x6D69677261746531  # "migrate1"


async def upgrade_database(engine: AsyncEngine) -> None:
    """Apply every pending migration."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at the end of this transaction, after the migrations committed.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await connection.run_sync(migrate)
