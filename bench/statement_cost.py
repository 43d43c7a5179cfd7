"""What one small statement costs through the session: built on every call, or built once.

Every update that moves a conversation writes its state with one upsert. Built on every call (an
ORM `insert(ConversationState).values(...)`), SQLAlchemy constructs the statement and computes
its cache key before it can find the compiled form; built once (`bot.persistence._store`), the
values go in as parameters and both are skipped. Timed as this process's CPU, which the
machine's other work disturbs less than the wall clock.

    .venv/bin/python -m bench.statement_cost
    .venv/bin/python -m bench.statement_cost --database-url postgresql+asyncpg://…/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bench.report_flow import _fresh_database
from bot.jalali import utcnow
from bot.persistence import _store
from models.db import create_engine, create_session_factory, dialect_insert
from models.entities import ConversationState

CHATS = 50  # upserts go round this many chats, so most update an existing row


async def built_per_call(session: AsyncSession, n: int) -> None:
    """The upsert as it was written before: a new statement object on every call."""
    values = {"state": "description", "updated_at": utcnow()}
    upsert = dialect_insert(session, ConversationState).values(
        name="report", key=json.dumps([n % CHATS, n % CHATS]), **values
    )
    await session.execute(upsert.on_conflict_do_update(index_elements=["name", "key"], set_=values))


async def built_once(session: AsyncSession, n: int) -> None:
    """The upsert as the persistence runs it now."""
    await _store(session, "report", (n % CHATS, n % CHATS), "description")


async def cpu_ms(
    session: AsyncSession, way: Callable[[AsyncSession, int], Awaitable[None]], count: int
) -> float:
    """CPU ms a statement, committing every CHATS statements as updates would."""
    started = time.process_time()
    for n in range(count):
        await way(session, n)
        if n % CHATS == CHATS - 1:
            await session.commit()
    await session.commit()
    return (time.process_time() - started) * 1000 / count


async def run(database_url: str | None, count: int, rounds: int) -> None:
    url = await _fresh_database(database_url)
    engine = create_engine(url)
    figures: dict[str, list[float]] = {"built_per_call": [], "built_once": []}
    async with create_session_factory(engine)() as session:
        await cpu_ms(session, built_once, CHATS)  # the rows exist and both forms are compiled
        await cpu_ms(session, built_per_call, CHATS)
        for _ in range(rounds):  # interleaved, so a busy minute falls on both
            figures["built_per_call"].append(await cpu_ms(session, built_per_call, count))
            figures["built_once"].append(await cpu_ms(session, built_once, count))
    await engine.dispose()
    print(
        f"backend={url.split(':', 1)[0]} statements={count}x{rounds} "
        + " ".join(f"{way}_ms={statistics.median(ms):.3f}" for way, ms in figures.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a new SQLite file)")
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.statements, args.rounds))


if __name__ == "__main__":
    main()
