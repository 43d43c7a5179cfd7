"""Our per-update cost against the framework's floor: a bare PTB echo bot on the same fake
transport, then the full report flow, in one run.

    .venv/bin/python -m bench.echo_ratio --users 200 [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.report_flow import STEPS, _fresh_database
from bot.pipeline import settle
from tests.conftest import make_settings
from tests.fakebot import FAKE_TOKEN, ChatUser, FakeBotAPI, start_bot, stop_bot


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say the text back."""
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(update.effective_message.text)


async def timed(
    app: Any, api: FakeBotAPI, users: int, steps: list[tuple[str, str]]
) -> tuple[list[float], float]:
    """Each update's handling time, and the whole run's (with the cases placed after it)."""
    latencies = []
    started = time.perf_counter()
    for user_id in range(10_000, 10_000 + users):
        person = ChatUser(app, api, user_id, deliver=False, settle=False)
        for kind, value in steps:
            before = time.perf_counter()
            await (person.send(value) if kind == "send" else person.press(value))
            latencies.append(time.perf_counter() - before)
    if "runtime" in app.bot_data:
        await settle(app.bot_data["runtime"])
    return latencies, time.perf_counter() - started


def summary(name: str, latencies: list[float], elapsed: float) -> tuple[float, str]:
    """The cost of an update (the run's time over its updates) and a line of figures."""
    ms = sorted(x * 1000 for x in latencies)
    cost = elapsed * 1000 / len(ms)
    p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
    return cost, (
        f"{name}: updates={len(ms)} ms_per_update={cost:.2f} p50_ms={p50:.2f} p99_ms={p99:.2f}"
    )


async def run(users: int, database_url: str | None) -> None:
    api = FakeBotAPI()
    bare = ApplicationBuilder().token(FAKE_TOKEN).request(api).get_updates_request(api).build()
    bare.add_handler(MessageHandler(filters.TEXT, echo))
    await bare.initialize()
    texts = [("send", value) for kind, value in STEPS if kind == "send"]
    echo_cost, echo_line = summary("echo", *await timed(bare, api, users, texts))
    await bare.shutdown()

    url = await _fresh_database(database_url)
    app, api = await start_bot(
        make_settings(url, telegram={"rate_limit": False}, bot={"reports_per_hour": 1000})
    )
    ours_cost, ours_line = summary("mahalle", *await timed(app, api, users, STEPS))
    await stop_bot(app)
    print(f"backend={url.split(':', 1)[0]}")
    print(echo_line)
    print(ours_line)
    print(f"ratio={ours_cost / echo_cost:.1f}")


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
