"""End-to-end time from the resident's confirm press to the agency card arriving, with the real
outbox worker running in the background, on the offline fake Bot API.

    .venv/bin/python -m bench.confirm_to_card --reports 50
    .venv/bin/python -m bench.confirm_to_card --reports 50 --split \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

`--split` (PostgreSQL) runs a web and a worker application, as `mahalle run --role web` and
`--role worker` would, sharing nothing but the database: the resident talks to the web one, the
card leaves the worker, which polls the outbox every second (the default) and hears of a card
queued by the web one at its commit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.report_flow import NO_REPORT_LIMITS
from tests.conftest import agency_chat, fresh_database, make_settings
from tests.fakebot import ChatUser, start_bot, stop_bot

MUNICIPALITY = agency_chat(0)
TEXT = "سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد، شماره {n}"


async def run(reports: int, database_url: str | None, split: bool) -> None:
    default = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    url = await fresh_database(database_url or default)
    settings = make_settings(
        url,
        telegram={"rate_limit": False},
        bot=NO_REPORT_LIMITS,
        outbox={"worker": True, "poll_seconds": 1.0},
    )
    if split:
        app, api = await start_bot(settings, role="web")
        worker, worker_api = await start_bot(settings, role="worker")
    else:
        app, api = await start_bot(settings)  # post_init starts the worker loop
        worker, worker_api = app, api
    timings = []
    for n in range(reports):
        resident = ChatUser(app, api, 50_000 + n, deliver=False)
        await resident.send("📝 گزارش جدید")
        await resident.send("یوسف آباد")
        await resident.press("یوسف‌آباد")
        await resident.send(TEXT.format(n=n))
        await resident.send("ادامه ⬅️")
        await resident.send("🙈 ناشناس بمانم")
        cards_before = len(worker_api.delivered(MUNICIPALITY))
        started = time.perf_counter()
        await resident.press("ثبت گزارش")
        if "گزارشی مشابه" in resident.last_text:  # "me too" offered: file this one all the same
            started = time.perf_counter()
            await resident.press("ثبت گزارش خودم")
        # Polling the fake transport is the measurement: it sees the card when the worker sends it.
        while len(worker_api.delivered(MUNICIPALITY)) == cards_before:  # noqa: ASYNC110
            await asyncio.sleep(0.0005)
        timings.append((time.perf_counter() - started) * 1000)
    await stop_bot(app)
    if split:
        await stop_bot(worker)
    timings.sort()
    print(
        f"reports={reports} split={split} confirm_to_card_ms_p50={statistics.median(timings):.1f} "
        f"p90={timings[int(len(timings) * 0.9) - 1]:.1f} max={timings[-1]:.1f}"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=50)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--split", action="store_true", help="a web and a worker (PostgreSQL)")
    args = parser.parse_args()
    if args.split and not (args.database_url or "").startswith("postgresql"):
        parser.error("--split needs --database-url postgresql+asyncpg://…")
    asyncio.run(run(args.reports, args.database_url, args.split))


if __name__ == "__main__":
    main()
