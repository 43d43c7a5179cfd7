"""Our per-update cost against the framework's floor: a bare PTB echo bot on the same fake
transport, the same echo bot keeping each chat's last text in the database, then the full
report flow, in one run.

    .venv/bin/python -m bench.echo_ratio --users 200 [--database-url postgresql+asyncpg://…]

The second bot is the floor of a bot whose conversation lives in the database, as issue 5
asks of ours, on our stack: it reads its chat's row and writes it back, in one transaction a
message, on the same engine and pool settings as ours. On PostgreSQL a third bot shows the least
any bot can do whose conversation lives in the database: on the bare driver (asyncpg), no
SQLAlchemy, it reads its chat's row and writes it back, each one statement, no transaction
around them (two round trips and one commit a message).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.report_flow import NO_REPORT_LIMITS, STEPS, _fresh_database
from bot.pipeline import settle
from models.db import create_engine
from tests.conftest import make_settings
from tests.fakebot import FAKE_TOKEN, ChatUser, FakeBotAPI, start_bot, stop_bot


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say the text back."""
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(update.effective_message.text)


READ_CHAT = text("SELECT last_text FROM echo_chat WHERE chat_id = :chat_id")
WRITE_CHAT = text(
    "INSERT INTO echo_chat (chat_id, last_text) VALUES (:chat_id, :last_text) "
    "ON CONFLICT (chat_id) DO UPDATE SET last_text = excluded.last_text"
)
# asyncpg's own placeholders
RAW_READ_CHAT = READ_CHAT.text.replace(":chat_id", "$1")
RAW_WRITE_CHAT = WRITE_CHAT.text.replace(":chat_id", "$1").replace(":last_text", "$2")


def durable_echo(engine: AsyncEngine) -> Any:
    """An echo handler that reads and writes its chat's row before it answers."""

    async def echo_kept(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Keep the text as the chat's last, then say it back."""
        message = update.effective_message
        assert message is not None and message.text is not None
        async with engine.begin() as connection:
            await connection.execute(READ_CHAT, {"chat_id": message.chat_id})
            await connection.execute(
                WRITE_CHAT, {"chat_id": message.chat_id, "last_text": message.text}
            )
        await message.reply_text(message.text)

    return echo_kept


def bare_driver_echo(pool: asyncpg.Pool) -> Any:
    """An echo handler that reads and writes its chat's row on the bare driver, then answers."""

    async def echo_bare(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Read the chat's row, keep the text, each in one statement; then say it back."""
        message = update.effective_message
        assert message is not None and message.text is not None
        async with pool.acquire() as connection:
            await connection.fetchval(RAW_READ_CHAT, message.chat_id)
            await connection.execute(RAW_WRITE_CHAT, message.chat_id, message.text)
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
        )


async def timed(app: Any, api: FakeBotAPI, users: int, steps: list[tuple[str, str]]) -> Timing:
    """Each update's handling time, and the whole run's (with the cases placed after it)."""
    latencies = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for user_id in range(10_000, 10_000 + users):
        person = ChatUser(app, api, user_id, deliver=False, settle=False)
        for kind, value in steps:
            before = time.perf_counter()
            await (person.send(value) if kind == "send" else person.press(value))
            latencies.append(time.perf_counter() - before)
    if "runtime" in app.bot_data:
        await settle(app.bot_data["runtime"])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Timing(latencies, elapsed, cpu)


def ratio(name: str, timing: Timing, floor: Timing) -> str:
    """How many times the floor's cost an update costs, by wall time and by CPU."""
    (wall, cpu), (floor_wall, floor_cpu) = timing.per_update(), floor.per_update()
    return f"{name}: ratio={wall / floor_wall:.1f} cpu_ratio={cpu / floor_cpu:.1f}"


async def run(users: int, database_url: str | None) -> None:
    api = FakeBotAPI()
    texts = [("send", value) for kind, value in STEPS if kind == "send"]
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
        pool = await asyncpg.create_pool(url.replace("+asyncpg", ""), min_size=5)
        bare_driver = await echo_app(api, bare_driver_echo(pool))
        floors.append(("echo_bare_driver", await timed(bare_driver, api, users, texts)))
        await bare_driver.shutdown()
        await pool.close()
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE echo_chat"))
    await engine.dispose()

    app, api = await start_bot(
        make_settings(url, telegram={"rate_limit": False}, bot=NO_REPORT_LIMITS)
    )
    ours_timing = await timed(app, api, users, STEPS)
    await stop_bot(app)
    print(f"backend={url.split(':', 1)[0]}")
    for name, timing in [*floors, ("mahalle", ours_timing)]:
        print(timing.line(name))
    for name, timing in [*floors[1:], ("mahalle", ours_timing)]:
        print(ratio(name, timing, echo_timing))


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
