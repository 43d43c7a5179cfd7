"""Our per-update cost against the framework's floor: a bare PTB echo bot on the same fake
transport, the same echo bot keeping each chat's last text in the database, then the full
report flow, in one run.

    .venv/bin/python -m bench.echo_ratio --users 200 [--database-url postgresql+asyncpg://…]

The second bot, `echo_kept`, is the floor of a bot whose conversation lives in the database, on
our stack: for each message it takes a connection from our engine's pool (our pool settings)
and runs one statement that reads its chat's last text and writes the new one, committed on its
own. On PostgreSQL a third bot, `echo_bare_driver`, shows the least any bot can do whose
conversation lives in the database: one asyncpg connection held for the whole run, no pool and
no SQLAlchemy, the same one statement a message: one round trip. On PostgreSQL each bot's round
trips an update are counted too (writes to the database's socket; the Bot API is the fake).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.report_flow import NO_REPORT_LIMITS, _fresh_database, steps_of
from bench.round_trips import counting_socket_writes
from bot.pipeline import settle
from models.db import create_engine
from tests.conftest import make_settings
from tests.fakebot import FAKE_TOKEN, ChatUser, FakeBotAPI, start_bot, stop_bot


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say the text back."""
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(update.effective_message.text)


# The chat's last text read and the new one kept, in one statement: the CTE reads the row as it
# was before the upsert changes it.
KEEP_CHAT = text(
    "WITH before AS (SELECT last_text FROM echo_chat WHERE chat_id = :chat_id) "
    "INSERT INTO echo_chat (chat_id, last_text) VALUES (:chat_id, :last_text) "
    "ON CONFLICT (chat_id) DO UPDATE SET last_text = excluded.last_text "
    "RETURNING (SELECT last_text FROM before)"
)
# asyncpg's own placeholders
RAW_KEEP_CHAT = KEEP_CHAT.text.replace(":chat_id", "$1").replace(":last_text", "$2")


def durable_echo(engine: AsyncEngine) -> Any:
    """An echo handler that reads and writes its chat's row before it answers."""
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def echo_kept(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Keep the text as the chat's last, reading the one before; then say it back."""
        message = update.effective_message
        assert message is not None and message.text is not None
        async with autocommit.connect() as connection:
            await connection.execute(
                KEEP_CHAT, {"chat_id": message.chat_id, "last_text": message.text}
            )
        await message.reply_text(message.text)

    return echo_kept


def bare_driver_echo(connection: asyncpg.Connection) -> Any:
    """An echo handler that reads and writes its chat's row on the bare driver, then answers.
    One connection held for the run: no pool, so nothing to check out and no reset on release
    (asyncpg's pool runs a reset query on each)."""

    async def echo_bare(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Keep the text as the chat's last, reading the one before; then say it back."""
        message = update.effective_message
        assert message is not None and message.text is not None
        await connection.fetchval(RAW_KEEP_CHAT, message.chat_id, message.text)
        await message.reply_text(message.text)

    return echo_bare


async def echo_app(api: FakeBotAPI, handler: Any) -> Any:
    """A bare application on the fake transport with one text handler."""
    app = ApplicationBuilder().token(FAKE_TOKEN).request(api).get_updates_request(api).build()
    app.add_handler(MessageHandler(filters.TEXT, handler))
    await app.initialize()
    return app


@dataclass
class Timing:
    """One bot's run: each update's handling time, and the run's wall and CPU seconds."""

    latencies: list[float]
    elapsed: float
    cpu: float
    writes: int = 0  # to the database's socket (PostgreSQL)

    def per_update(self) -> tuple[float, float]:
        """Milliseconds an update: of the run's wall time, and of this process's CPU."""
        return self.elapsed * 1000 / len(self.latencies), self.cpu * 1000 / len(self.latencies)

    def line(self, name: str) -> str:
        """The run's figures, on one line."""
        ms = sorted(x * 1000 for x in self.latencies)
        wall, cpu = self.per_update()
        return (
            f"{name}: updates={len(ms)} ms_per_update={wall:.2f} cpu_ms_per_update={cpu:.2f} "
            f"p50_ms={statistics.median(ms):.2f} p99_ms={ms[int(len(ms) * 0.99) - 1]:.2f}"
            + (f" round_trips_per_update={self.writes / len(ms):.2f}" if self.writes else "")
        )


async def timed(
    app: Any, api: FakeBotAPI, users: int, steps: Callable[[int], list[tuple[str, str]]]
) -> Timing:
    """Each update's handling time, and the whole run's (with the cases placed after it)."""
    latencies = []
    with counting_socket_writes() as writes:
        started, cpu_started = time.perf_counter(), time.process_time()
        for user_id in range(10_000, 10_000 + users):
            person = ChatUser(app, api, user_id, deliver=False, settle=False)
            for kind, value in steps(user_id):
                before = time.perf_counter()
                await (person.send(value) if kind == "send" else person.press(value))
                latencies.append(time.perf_counter() - before)
        if "runtime" in app.bot_data:
            await settle(app.bot_data["runtime"])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Timing(latencies, elapsed, cpu, writes[0])


def ratio(name: str, timing: Timing, floor: Timing) -> str:
    """How many times the floor's cost an update costs, by wall time and by CPU."""
    (wall, cpu), (floor_wall, floor_cpu) = timing.per_update(), floor.per_update()
    return f"{name}: ratio={wall / floor_wall:.1f} cpu_ratio={cpu / floor_cpu:.1f}"


async def run(users: int, database_url: str | None) -> None:
    api = FakeBotAPI()

    def texts(user_id: int) -> list[tuple[str, str]]:
        return [("send", value) for kind, value in steps_of(user_id) if kind == "send"]

    bare = await echo_app(api, echo)
    echo_timing = await timed(bare, api, users, texts)
    await bare.shutdown()

    url = await _fresh_database(database_url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS echo_chat"))
        await connection.execute(
            text("CREATE TABLE echo_chat (chat_id BIGINT PRIMARY KEY, last_text TEXT)")
        )
    kept = await echo_app(api, durable_echo(engine))
    kept_timing = await timed(kept, api, users, texts)
    await kept.shutdown()
    floors = [("echo", echo_timing), ("echo_kept", kept_timing)]
    if url.startswith("postgresql"):
        held = await asyncpg.connect(url.replace("+asyncpg", ""))
        bare_driver = await echo_app(api, bare_driver_echo(held))
        floors.append(("echo_bare_driver", await timed(bare_driver, api, users, texts)))
        await bare_driver.shutdown()
        await held.close()
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE echo_chat"))
    await engine.dispose()

    app, api = await start_bot(
        make_settings(url, telegram={"rate_limit": False}, bot=NO_REPORT_LIMITS)
    )
    ours_timing = await timed(app, api, users, steps_of)
    await stop_bot(app)
    print(f"backend={url.split(':', 1)[0]}")
    for name, timing in [*floors, ("mahalle", ours_timing)]:
        print(timing.line(name))
    for name, timing in [*floors[1:], ("mahalle", ours_timing)]:
        print(ratio(name, timing, echo_timing))
    # The goal's measure: our CPU an update against the least a bot keeping its conversation
    # in the database can spend (the bare driver on PostgreSQL, our stack's floor on SQLite).
    name, floor = floors[-1]
    print(f"mahalle_vs_{name}: cpu_ratio={ours_timing.per_update()[1] / floor.per_update()[1]:.1f}")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.users, arguments.database_url))


if __name__ == "__main__":
    main()
