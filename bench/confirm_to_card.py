"""End-to-end time from the resident's confirm press to the agency card arriving, with the real
outbox worker running in the background, on the offline fake Bot API.

    .venv/bin/python -m bench.confirm_to_card --reports 50
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


async def run(reports: int) -> None:
    url = await fresh_database(f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    settings = make_settings(
        url,
        telegram={"rate_limit": False},
        bot=NO_REPORT_LIMITS,
        outbox={"worker": True, "poll_seconds": 1.0},
    )
    app, api = await start_bot(settings)  # post_init starts the worker loop
    timings = []
    for n in range(reports):
        resident = ChatUser(app, api, 50_000 + n, deliver=False)
        await resident.send("📝 گزارش جدید")
        await resident.send("یوسف آباد")
        await resident.press("یوسف‌آباد")
        await resident.send(TEXT.format(n=n))
        await resident.send("ادامه ⬅️")
        await resident.send("🙈 ناشناس بمانم")
        cards_before = len(api.delivered(MUNICIPALITY))
        started = time.perf_counter()
        await resident.press("ثبت گزارش")
        if "گزارشی مشابه" in resident.last_text:  # "me too" offered: file this one all the same
            started = time.perf_counter()
            await resident.press("ثبت گزارش خودم")
        # Polling the fake transport is the measurement: it sees the card when the worker sends it.
        while len(api.delivered(MUNICIPALITY)) == cards_before:  # noqa: ASYNC110
            await asyncio.sleep(0.0005)
        timings.append((time.perf_counter() - started) * 1000)
    await stop_bot(app)
    timings.sort()
    print(
        f"reports={reports} confirm_to_card_ms_p50={statistics.median(timings):.1f} "
        f"p90={timings[int(len(timings) * 0.9) - 1]:.1f} max={timings[-1]:.1f}"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=50)
    asyncio.run(run(parser.parse_args().reports))


if __name__ == "__main__":
    main()
