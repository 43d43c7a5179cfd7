"""How many updates a second one process handles through the whole report flow.

Every simulated resident sends /start, taps New report, types a neighbourhood, picks it, writes a
description, skips media, stays anonymous and confirms: 8 updates, 1 case. The real Application
runs on the offline fake Bot API, so the figure is the bot's own cost (PTB, handlers, database).

    .venv/bin/python -m bench.report_flow --users 200
    .venv/bin/python -m bench.report_flow --users 200 --database-url postgresql+asyncpg://…/test
    .venv/bin/python -m bench.report_flow --users 500 --rate 200     # open loop, p50/p99
    .venv/bin/python -m bench.report_flow --users 500 --rate 200 --processes 2 --database-url …
    .venv/bin/python -m bench.report_flow --users 250 --rate 100 --api-latency 100 --database-url …
    .venv/bin/python -m bench.report_flow --users 200 --role web --database-url postgresql+…

The closed loop also prints the whole machine's CPU an update (Linux): this process's and the
database server's, with whatever else runs meanwhile, so run it on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from telegram import Update

from bot.pipeline import settle
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseStatus
from tests.conftest import fresh_database, make_settings
from tests.fakebot import ApiCall, ChatUser, FakeBotAPI, start_bot, stop_bot

# Residents think between steps for a random time around this (a fixed think time lines their
# steps up: every resident due at the same moments, bursts instead of a steady rate).
THINK_SECONDS = 2.0

# Every simulated resident's report is taken: no limit of a resident's nor of all residents'.
NO_REPORT_LIMITS = {"reports_per_hour": 1000, "reports_per_minute_all": 1_000_000}

STEPS = [
    ("send", "/start"),
    ("send", "📝 گزارش جدید"),
    ("send", "یوسف آباد"),
    ("press", "یوسف‌آباد"),
    ("send", "چراغ‌های کوچهٔ ما یک هفته است خاموش است و شب‌ها خیلی تاریک است"),
    ("send", "ادامه ⬅️"),
    ("send", "🙈 ناشناس بمانم"),
    ("press", "ثبت گزارش"),
]

DESCRIPTION = STEPS[4][1]
_DIGITS = "۰۱۲۳۴۵۶۷۸۹"


def made_own(text: str, user_id: int) -> str:
    """A description made this resident's own: the same text from every resident would be
    offered as the first one's open case to join ("me too") and make no case. Numbers of their
    own (the same in every run; triage reads words, not numbers) leave it unlike any other
    resident's."""
    numbers = random.Random(user_id)
    own = " ".join(
        "".join(numbers.choice(_DIGITS) for _ in range(numbers.randint(3, 6))) for _ in range(14)
    )
    return f"{text} {own}"


def steps_of(user_id: int) -> list[tuple[str, str]]:
    """STEPS with this resident's description made their own."""
    return [
        (kind, made_own(value, user_id) if value == DESCRIPTION else value) for kind, value in STEPS
    ]


async def _fresh_database(url: str | None) -> str:
    """The given database emptied and migrated, or a new SQLite file."""
    return await fresh_database(
        url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    )


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux's /proc/stat), or None."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return None
    user, nice, system, _idle, _iowait, irq, softirq = stat.read_text().split()[1:8]
    ticks = sum(int(part) for part in (user, nice, system, irq, softirq))
    return ticks / os.sysconf("SC_CLK_TCK")


async def cases_made(url: str, users: int) -> int:
    """How many cases the run made, checked to be one a resident, each placed: a resident
    refused (a limit) or a case left unplaced would make the figures those of a cheaper run.
    A case triage was unsure of waits on its reporter's choice of domain (they were asked):
    placed as far as the run goes."""
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        cases = await session.scalar(select(func.count()).select_from(Case))
        unplaced = await session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.status == CaseStatus.SUBMITTED, Case.domain_asked_at.is_(None))
        )
    await engine.dispose()
    assert cases == users and not unplaced, f"{cases} cases for {users}, {unplaced} not placed"
    return cases


async def run(users: int, database_url: str | None, role: str = "all") -> None:
    url = await _fresh_database(database_url)
    settings = make_settings(url, telegram={"rate_limit": False}, bot=NO_REPORT_LIMITS)
    app, api = await start_bot(settings, role=role, freeze_startup=True)
    latencies: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    machine_started = machine_busy_seconds()
    for user_id in range(10_000, 10_000 + users):
        # The outbox worker runs beside the bot in production; this measures the handling alone.
        # The confirm answers before its case is placed; placing runs beside the next updates,
        # as in a real process, and counts in the elapsed time.
        resident = (WebhookResident if role == "web" else ChatUser)(
            app, api, user_id, deliver=False, settle=False
        )
        for kind, value in steps_of(user_id):
            before = time.perf_counter()
            await (resident.send(value) if kind == "send" else resident.press(value))
            latencies.append(time.perf_counter() - before)
    await settle(app.bot_data["runtime"])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    machine_ended = machine_busy_seconds()
    cases = await cases_made(url, users)
    await stop_bot(app)
    ms = sorted(x * 1000 for x in latencies)
    backend = url.split(":", 1)[0]
    print(
        f"backend={backend} role={role} users={users} updates={len(latencies)} cases={cases} "
        f"seconds={elapsed:.2f} updates_per_second={len(latencies) / elapsed:.0f} "
        f"p50_ms={statistics.median(ms):.2f} p99_ms={ms[int(len(ms) * 0.99) - 1]:.2f} "
        f"cpu_ms_per_update={cpu * 1000 / len(latencies):.2f}",
        _machine_cpu(machine_started, machine_ended, len(latencies)),
    )


def _machine_cpu(started: float | None, ended: float | None, updates: int) -> str:
    if started is None or ended is None:
        return ""
    return f"machine_cpu_ms_per_update={(ended - started) * 1000 / updates:.2f}"


class WebhookResident(ChatUser):
    """A resident of a web process: each update goes through the process's update queue, as the
    webhook hands it over, then is handled."""

    async def _process(self, payload: dict[str, Any]) -> list[ApiCall]:
        payload["update_id"] = next(self._update_ids)
        queue = self.app.update_queue
        await queue.put(Update.de_json(payload, self.app.bot))
        await self.app.process_update(queue.get_nowait())
        queue.task_done()
        return []


class QueuedResident(ChatUser):
    """A resident whose updates reach the bot through one queue, as the webhook's do."""

    def __init__(self, queue: asyncio.Queue[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = queue

    async def _process(self, payload: dict[str, Any]) -> list[ApiCall]:
        payload["update_id"] = next(self._update_ids)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((Update.de_json(payload, self.app.bot), done))
        await done
        return []


class SlowBotAPI(FakeBotAPI):
    """The fake Bot API, answering each call after `latency` seconds (Telegram's round trip)."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        await asyncio.sleep(self.latency)
        return await super().do_request(*args, **kwargs)


async def _fetch_updates(app: Any, queue: asyncio.Queue[Any]) -> None:
    """The process's update loop, as PTB's: each update is given to the application's update
    processor in a task of its own (which handles several chats' updates at once, each chat's in
    turn)."""
    handling: set[asyncio.Task[None]] = set()

    async def handle(update: object, done: asyncio.Future[None]) -> None:
        try:
            await app.update_processor.process_update(update, app.process_update(update))
        finally:
            done.set_result(None)

    while True:
        update, done = await queue.get()
        task = asyncio.create_task(handle(update, done))
        handling.add(task)
        task.add_done_callback(handling.discard)


async def run_open_loop(
    users: int,
    rate: float,
    database_url: str | None,
    *,
    role: str = "all",
    first_user: int = 10_000,
    start_at: float | None = None,
    latencies_to: str | None = None,
    concurrent_updates: int | None = None,
    api_latency: float = 0.0,
) -> None:
    """Updates fall due on a schedule, `rate` a second in all, whether or not the bot keeps up;
    latency counts from when each was due, so a backlog shows. Residents arrive evenly and take
    about THINK_SECONDS (from half to one and a half times it) between their steps. With
    `start_at` (a wall-clock time) the database is used as it is and the schedule starts then,
    so that several processes start together."""
    url = database_url if start_at and database_url else await _fresh_database(database_url)
    at_once = {"concurrent_updates": concurrent_updates} if concurrent_updates else {}
    settings = make_settings(
        url, telegram={"rate_limit": False}, bot={**NO_REPORT_LIMITS, **at_once}
    )
    slow = SlowBotAPI(api_latency) if api_latency else None
    app, api = await start_bot(settings, slow, role=role, freeze_startup=True)
    # Telegram numbers a bot's updates once for all its processes.
    QueuedResident._update_ids = itertools.count(first_user * 1000)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    handler = asyncio.create_task(_fetch_updates(app, queue))
    latencies: list[float] = []
    presses: list[float] = []  # of those, the button presses'
    if start_at:
        await asyncio.sleep(max(start_at - time.time(), 0))
    started, cpu_started = time.perf_counter(), time.process_time()

    thinking = random.Random(first_user)  # the same schedule in every run

    async def resident(index: int) -> None:
        person = QueuedResident(queue, app, api, first_user + index, deliver=False)
        due = started + index * len(STEPS) / rate
        for kind, value in steps_of(first_user + index):
            await asyncio.sleep(max(due - time.perf_counter(), 0))
            await (person.send(value) if kind == "send" else person.press(value))
            latencies.append(time.perf_counter() - due)
            if kind == "press":
                presses.append(latencies[-1])
            due += THINK_SECONDS * thinking.uniform(0.5, 1.5)

    await asyncio.gather(*(resident(n) for n in range(users)))
    handler.cancel()
    await settle(app.bot_data["runtime"])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if not start_at:  # one of several processes: the parent counts them all
        await cases_made(url, users)
    await stop_bot(app)
    if latencies_to:
        await asyncio.to_thread(Path(latencies_to).write_text, json.dumps(latencies))
    print(
        _open_loop_line(url, rate, users, latencies, elapsed, role),
        f"presses_p50_ms={statistics.median(presses) * 1000:.1f}",
        f"cpu_ms_per_update={cpu * 1000 / len(latencies):.2f}",
        _handling(app, api_latency),
    )


def _open_loop_line(
    url: str, rate: float, users: int, latencies: list[float], elapsed: float, role: str
) -> str:
    ms = sorted(x * 1000 for x in latencies)
    return (
        f"backend={url.split(':', 1)[0]} role={role} offered={rate:.0f}/s users={users} "
        f"updates={len(ms)} seconds={elapsed:.1f} p50_ms={statistics.median(ms):.1f} "
        f"p99_ms={ms[int(len(ms) * 0.99) - 1]:.1f} max_ms={ms[-1]:.1f}"
    )


def _handling(app: Any, api_latency: float) -> str:
    """How the updates were handled: how many at once, and the Bot API's round trip."""
    at_once = app.update_processor.handled_at_once
    return f"at_once={at_once} api_latency_ms={api_latency * 1000:.0f}"


async def run_open_loop_processes(
    users: int, rate: float, database_url: str, processes: int, extra: list[str]
) -> None:
    """The open loop shared by several processes (separate OS processes on one database), each
    offered its share of the rate and residents of its own, as each bot of several is received
    by a process of its own; latencies are pooled."""
    await _fresh_database(database_url)
    start_at = time.time() + 10  # every process has started its bot by then
    share = users // processes
    folder = Path(tempfile.mkdtemp())
    children = []
    for n in range(processes):
        arguments = {
            "--users": share, "--rate": rate / processes, "--role": "web",
            "--database-url": database_url, "--first-user": 10_000 + n * share,
            "--start-at": start_at, "--latencies-to": folder / f"{n}.json",
        }  # fmt: skip
        flags = [str(part) for pair in arguments.items() for part in pair] + extra
        children.append(
            await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.report_flow", *flags)
        )
    for child in children:
        assert await child.wait() == 0, "a web process failed"
    await cases_made(database_url, share * processes)
    pooled = [x for n in range(processes) for x in json.loads((folder / f"{n}.json").read_text())]
    line = _open_loop_line(database_url, rate, share * processes, pooled, 0, "web")
    print(f"processes={processes} {line.replace(' seconds=0.0', '')}", *extra)


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--users", type=int, default=200, help="simulated residents (8 updates each)"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: updates fall due at this rate a second, whether or not the bot keeps up",
    )
    parser.add_argument(
        "--concurrent-updates",
        type=int,
        help="open loop: updates a process handles at once (default: the config's; 1: serially)",
    )
    parser.add_argument(
        "--api-latency",
        type=float,
        default=0.0,
        help="open loop: milliseconds the fake Bot API takes to answer each call",
    )
    parser.add_argument(
        "--role",
        choices=["all", "web"],
        default="all",
        help="web: a process that receives and does not send (PostgreSQL)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="open loop over this many web processes (PostgreSQL), the rate shared among them",
    )
    # Set by --processes for each web process it starts.
    parser.add_argument("--first-user", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--latencies-to", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rate and arguments.processes > 1:
        assert arguments.database_url, "several processes need --database-url (PostgreSQL)"
        extra = [f"--api-latency={arguments.api_latency}"]
        if arguments.concurrent_updates:
            extra.append(f"--concurrent-updates={arguments.concurrent_updates}")
        asyncio.run(
            run_open_loop_processes(
                arguments.users, arguments.rate, arguments.database_url, arguments.processes, extra
            )
        )
    elif arguments.rate:
        asyncio.run(
            run_open_loop(
                arguments.users,
                arguments.rate,
                arguments.database_url,
                role=arguments.role,
                first_user=arguments.first_user,
                start_at=arguments.start_at,
                latencies_to=arguments.latencies_to,
                concurrent_updates=arguments.concurrent_updates,
                api_latency=arguments.api_latency / 1000,
            )
        )
    else:
        asyncio.run(run(arguments.users, arguments.database_url, arguments.role))


if __name__ == "__main__":
    main()
