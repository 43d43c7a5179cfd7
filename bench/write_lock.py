"""How long placing a case holds SQLite's write lock, from its first write to its commit.

SQLite lets one transaction write at a time; every other update's write waits (in SQLite's busy
handler, sleeping 1, 2, 5, 10 … ms between tries) while a placing holds the lock. Residents file
reports through the real Application on the offline fake Bot API, one after another, and each
placing's hold is timed with engine events.

    .venv/bin/python -m bench.write_lock --users 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event

from bench.report_flow import NO_REPORT_LIMITS, _fresh_database, steps_of
from bot import pipeline
from tests.conftest import make_settings
from tests.fakebot import ChatUser, start_bot, stop_bot

_WRITES = ("INSERT", "UPDATE", "DELETE")
placing: ContextVar[bool] = ContextVar("placing", default=False)


def time_placings(engine: Any) -> list[float]:
    """A list that gets each placing's hold, in ms, as its transaction commits."""
    holds: list[float] = []
    first_write: dict[int, float] = {}

    def on_statement(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        key = id(connection.connection)
        if statement.lstrip().upper().startswith(_WRITES) and key not in first_write:
            first_write[key] = time.perf_counter()

    def on_commit(connection: Any) -> None:
        started = first_write.pop(id(connection.connection), None)
        if started is not None and placing.get():
            holds.append((time.perf_counter() - started) * 1000)

    def on_rollback(connection: Any) -> None:
        first_write.pop(id(connection.connection), None)

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(engine.sync_engine, "commit", on_commit)
    event.listen(engine.sync_engine, "rollback", on_rollback)
    return holds


async def run(users: int) -> None:
    url = await _fresh_database(None)
    settings = make_settings(url, telegram={"rate_limit": False}, bot=NO_REPORT_LIMITS)
    app, api = await start_bot(settings)
    runtime = app.bot_data["runtime"]
    holds = time_placings(runtime.engine)
    route = pipeline.route_submitted

    async def marked(*args: Any, **kwargs: Any) -> Any:
        placing.set(True)  # the placing's own task: its commits are the ones timed
        return await route(*args, **kwargs)

    pipeline.route_submitted = marked
    for user_id in range(10_000, 10_000 + users):
        resident = ChatUser(app, api, user_id, deliver=False, settle=False)
        for kind, value in steps_of(user_id):
            await (resident.send(value) if kind == "send" else resident.press(value))
    await pipeline.settle(runtime)
    await stop_bot(app)
    ms = sorted(holds)
    assert len(ms) == users, f"{len(ms)} placings timed for {users} reports"
    print(
        f"placings={len(ms)} write_lock_ms p50={statistics.median(ms):.2f} "
        f"p90={ms[int(len(ms) * 0.9)]:.2f} p99={ms[int(len(ms) * 0.99) - 1]:.2f}"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=300)
    asyncio.run(run(parser.parse_args().users))


if __name__ == "__main__":
    main()
