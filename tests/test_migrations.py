"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from models.db import create_engine
from models.entities import Base
from tests.conftest import Bot


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


async def test_upgrading_fills_the_case_milestones_from_the_audit_log(bot: Bot) -> None:
    from sqlalchemy import select

    from models.db import create_session_factory, migrate
    from models.entities import Case, CaseEvent
    from tests.conftest import agency_chat
    from tests.test_agency import add_staff, report

    settings = bot.app.bot_data["runtime"].settings
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user(1001))
    await bot.in_group(2001, agency_chat(0), "رضایی").press("پذیرش")

    engine = create_engine(settings.database.url)
    for revision, down in (("0006", True), ("head", False)):  # as if filed before 0007
        async with engine.begin() as connection:
            await connection.run_sync(migrate, revision, down=down)
    async with create_session_factory(engine)() as session:
        case = (await session.scalars(select(Case))).one()
        events = {
            e.to_status: e.created_at for e in (await session.scalars(select(CaseEvent))).all()
        }
    await engine.dispose()
    assert (case.forwarded_at, case.accepted_at, case.resolved_at) == (
        events["forwarded"],
        events["accepted"],
        None,
    )
    assert case.handed_over_at == events["forwarded"]
