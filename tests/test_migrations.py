"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from models.db import create_engine
from models.entities import Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    await engine.dispose()
    assert differences == []


async def test_processes_started_together_migrate_in_turn(database_url: str) -> None:
    import asyncio

    from sqlalchemy import text

    from models.db import upgrade_database

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite deployments are one process")
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    engines = [create_engine(database_url) for _ in range(3)]  # two web, one worker
    # Without taking turns they deadlock on each other's tables: fail instead of hanging.
    await asyncio.wait_for(asyncio.gather(*(upgrade_database(e) for e in engines)), 120)
    async with engines[0].connect() as connection:
        assert await connection.run_sync(_differences) == []
    for engine in engines:
        await engine.dispose()
