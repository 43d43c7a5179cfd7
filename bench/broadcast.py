"""Broadcast delivery on the offline fake Bot API.

    .venv/bin/python -m bench.broadcast --recipients 100000            # rate limit lifted
    .venv/bin/python -m bench.broadcast --recipients 3000 --limited    # configured rate, one minute
    .venv/bin/python -m bench.broadcast --recipients 3000 --limited --api-latency 100 # 100 ms away
    (add --database-url postgresql+asyncpg://… for PostgreSQL)

Lifted: messages a second through the whole sender (claim, send, record, one transaction each)
and the process's peak memory. Limited: the rate achieved over a minute against the configured one.
--api-latency: the fake Bot API answers each call after that many milliseconds, as Telegram a
network away does.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

from sqlalchemy import insert

from bench.report_flow import SlowBotAPI, _fresh_database
from bot.app import broadcast_sends_at_once
from bot.broadcasting import CampaignSender
from bot.jalali import utcnow
from bot.services import broadcasts
from models.db import create_engine, create_session_factory
from models.entities import User
from tests.conftest import COORDINATOR, make_settings
from tests.fakebot import start_bot, stop_bot


async def run(
    recipients: int,
    limited: bool,
    seconds: float,
    database_url: str | None,
    api_latency: float,
    sends_at_once: int | None,
) -> None:
    url = await _fresh_database(database_url)
    at_once = {"sends_at_once": sends_at_once} if sends_at_once else {}
    settings = make_settings(url, telegram={"rate_limit": False}, broadcast=at_once)
    app, api = await start_bot(settings, SlowBotAPI(api_latency) if api_latency else None)
    engine = create_engine(url)
    factory = create_session_factory(engine)
    async with factory() as session:
        for first in range(0, recipients, 10_000):
            person: dict[str, Any] = {
                "language": "fa", "broadcasts_opt_in": True, "broadcasts_chosen": True,
                "broadcast_intro_sent": True, "blocked_bot": False, "created_at": utcnow(),
            }  # fmt: skip
            last = min(first + 10_000, recipients)
            rows = [{**person, "id": 1_000_000 + n} for n in range(first, last)]
            await session.execute(insert(User), rows)
        campaign = await broadcasts.start_draft(session, created_by=COORDINATOR)
        campaign.content, campaign.audience = {"text": "اطلاعیه", "entities": []}, {"kind": "all"}
        await broadcasts.launch(
            session, campaign=campaign, scheduled_at=utcnow(), progress_chat_id=COORDINATOR
        )
        await session.commit()
        campaign_id = campaign.id
    sender = CampaignSender(
        app.bot, factory, settings.broadcast, intro="", rate_per_second=None if limited else 1e9,
        sends_at_once=broadcast_sends_at_once(settings),
    )  # fmt: skip
    api.record, api.counts = False, {}
    started = time.perf_counter()
    task = asyncio.create_task(sender.run(campaign_id))
    if limited:
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    else:
        await task
    elapsed = time.perf_counter() - started
    sent = api.counts.get("sendMessage", 0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await engine.dispose()
    await stop_bot(app)
    mode = f"limited configured={settings.broadcast.rate_per_second:g}/s" if limited else "lifted"
    print(
        f"backend={url.split(':', 1)[0]} mode={mode} recipients={recipients} sent={sent} "
        f"seconds={elapsed:.1f} per_second={sent / elapsed:.1f} peak_rss_mb={peak_mb:.0f} "
        f"api_latency_ms={api_latency * 1000:.0f} at_once={sender.sends_at_once}"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument(
        "--limited", action="store_true", help="keep the configured rate, run --seconds"
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--api-latency", type=float, default=0.0, help="milliseconds each Bot API call takes"
    )
    parser.add_argument(
        "--sends-at-once", type=int, help="recipients sent to at once (default: the config's)"
    )
    arguments = parser.parse_args()
    asyncio.run(
        run(
            arguments.recipients,
            arguments.limited,
            arguments.seconds,
            arguments.database_url,
            arguments.api_latency / 1000,
            arguments.sends_at_once,
        )
    )


if __name__ == "__main__":
    main()
