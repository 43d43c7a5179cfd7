"""Outbox delivery on the offline fake Bot API.

    .venv/bin/python -m bench.outbox --messages 20000                 # flood limiter off
    .venv/bin/python -m bench.outbox --messages 600 --limited         # Telegram's flood limits on
    .venv/bin/python -m bench.outbox --messages 600 --api-latency 100  # the Bot API 100 ms away
    .venv/bin/python -m bench.outbox --messages 600 --api-latency 100 --sends-at-once 1 …  # compare
    (add --database-url postgresql+asyncpg://… for PostgreSQL)

Queues messages to many private chats (and, with --groups, to a few group chats), then lets the
real sender deliver them: claim the oldest due row (FIFO per chat), send, record, one transaction
each, `[outbox] sends_at_once` rows at a time (PostgreSQL; SQLite: one). Lifted: messages a
second. Limited: PTB's flood limiter as `mahalle run` configures it (30 a second in all, 20 a
minute per group), measured against those limits; a group's messages beyond its 20 a minute
wait their turn while private chats' go, and the run lasts until the last is sent
(`private_chats_done_seconds` says when the private chats had all theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from telegram.ext import ApplicationBuilder

from bench.report_flow import SlowBotAPI, _fresh_database
from bot.app import build_application, flood_limiter
from bot.jalali import utcnow
from bot.services import outbox
from models.db import create_engine, create_session_factory
from models.entities import OutboxMessage
from tests.conftest import make_settings
from tests.fakebot import FAKE_TOKEN, FakeBotAPI, stop_bot


async def run(
    messages: int,
    groups: int,
    limited: bool,
    database_url: str | None,
    api_latency: float,
    sends_at_once: int | None,
) -> None:
    url = await _fresh_database(database_url)
    at_once = {"outbox": {"sends_at_once": sends_at_once}} if sends_at_once else {}
    settings = make_settings(url, telegram={"rate_limit": limited}, **at_once)
    api = SlowBotAPI(api_latency) if api_latency else FakeBotAPI()
    builder: Any = ApplicationBuilder().token(FAKE_TOKEN).request(api).get_updates_request(api)
    if limited:
        builder = builder.rate_limiter(flood_limiter())
    app = build_application(settings, builder)
    await app.initialize()
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        for number in range(messages):
            chat = -1_000_000 - number % groups if number % 10 == 0 and groups else 500_000 + number
            outbox.enqueue(
                session, chat_id=chat, purpose=outbox.REPORTER_NOTICE,
                payload={"text": f"پیام {number}"},
            )  # fmt: skip
        await session.commit()
    await engine.dispose()
    api.record, api.counts = False, {}
    sender = app.bot_data["runtime"].sender
    started_at, started = utcnow(), time.perf_counter()
    sent = await sender.deliver_due(limit=messages)
    while sent < messages:  # rows for a group with no room were put off: deliver them when due
        await asyncio.sleep(0.5)
        sent += await sender.deliver_due(limit=messages)
    elapsed = time.perf_counter() - started
    await stop_bot(app)
    private_done = await _last_private_sent(url) - started_at
    print(
        f"backend={url.split(':', 1)[0]} limiter={'on' if limited else 'off'} messages={sent} "
        f"delivered={api.counts.get('sendMessage', 0)} seconds={elapsed:.1f} "
        f"per_second={sent / elapsed:.1f} private_chats_done_seconds="
        f"{private_done.total_seconds():.1f} api_latency_ms={api_latency * 1000:.0f} "
        f"sends_at_once={sender.sends_at_once}"
    )


async def _last_private_sent(url: str) -> datetime:
    """When the last message to a private chat was sent."""
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        last = await session.scalar(
            select(func.max(OutboxMessage.sent_at)).where(OutboxMessage.chat_id > 0)
        )
    await engine.dispose()
    assert last is not None
    return last if last.tzinfo else last.replace(tzinfo=UTC)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=0, help="send every tenth to N groups")
    parser.add_argument("--limited", action="store_true", help="Telegram's flood limits on")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--api-latency", type=float, default=0.0, help="milliseconds each Bot API call takes"
    )
    parser.add_argument(
        "--sends-at-once", type=int, default=None, help="default: as configured (SQLite: one)"
    )
    arguments = parser.parse_args()
    latency = arguments.api_latency / 1000
    asyncio.run(
        run(
            arguments.messages,
            arguments.groups,
            arguments.limited,
            arguments.database_url,
            latency,
            arguments.sends_at_once,
        )
    )


if __name__ == "__main__":
    main()
