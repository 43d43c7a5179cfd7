"""Several bots in one process, each serving its own county, under an open loop.

A deployment may serve several counties, each through a bot of its own ([[bots]]); one process
then receives for all of them. Here N bots (10 by default) run in one process on one database,
each on its own fake Bot API with its own token, each serving a county of its own made in the
example config's shape (its districts, neighbourhoods and agencies under keys of its own, its
agencies', coordinators' and council's chat ids of their own). Each bot's residents go through
the whole report flow (bench.report_flow's steps) in a neighbourhood of that bot's county.
Updates fall due on a schedule, `--rate-per-bot` a second for each bot, whether or not the bots
keep up (an open loop: latency counts from when each update was due, so a backlog shows), and
enter each bot's application as its webhook hands them over (bench.report_flow's open loop).

    .venv/bin/python -m bench.ten_bots --database-url postgresql+asyncpg://…/test
    .venv/bin/python -m bench.ten_bots --bots 1 --database-url …            # one bot, 20/s
    .venv/bin/python -m bench.ten_bots --rate-per-bot 10 --database-url …   # ten bots, 100/s
    .venv/bin/python -m bench.ten_bots --users-per-bot 50 --database-url …
    .venv/bin/python -m bench.ten_bots --watch --database-url …   # the pool and the locks waited on
    .venv/bin/python -m bench.ten_bots --processes 2 --database-url …  # the bots over 2 processes

`--seconds` (default 30) sets how long residents keep arriving: each bot gets seconds × rate / 8
residents (8 updates each), so seconds × rate updates; the last residents' steps run about 14 s
beyond it (their think time). Printed: updates; each bot's and all bots' p50 / p99 / slowest
latency; updates a second achieved over the whole run (`seconds` well beyond the schedule's own
length, `schedule_seconds`, means the bots fell behind); this process's CPU an update and its
share of one core (`process_cpu`: near 100 %, the process, one thread, is what limits; well
below it with the bots behind, its updates wait on something else, or the machine gives it no
more); the whole machine's CPU an update (with the database server and whatever else runs:
compare on an idle machine); and the cases made, checked to be one for each resident, each
placed, each in its bot's county. `--watch` adds how full the connection pool was and which
locks the database's sessions waited on. `--processes N` spreads the bots over N processes,
as a deployment spreads its bots' receivers (one receiving process a bot): each builds every
bot, speaks to every N-th, and starts the schedule at the same moment; the latencies are taken
together, the CPU summed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from typing import Any

from sqlalchemy import func, select, text
from telegram.ext import ApplicationBuilder

from bench.report_flow import (
    NO_REPORT_LIMITS,
    STEPS,
    THINK_SECONDS,
    QueuedResident,
    _fetch_updates,
    _fresh_database,
    _machine_cpu,
    cases_made,
    machine_busy_seconds,
    steps_of,
)
from bot.app import build_applications, concurrent_updates
from bot.config import CountySettings, Settings, TelegramSettings
from bot.pipeline import settle
from models.db import create_engine, create_session_factory
from models.entities import Case, District, Neighbourhood
from tests.conftest import make_settings
from tests.fakebot import BOT_USER, AnyApplication, FakeBotAPI, agencies_like, stop_bot

# Residents' ids: bot n's are FIRST_USER + n × USERS_APART and on.
FIRST_USER = 10_000
USERS_APART = 100_000
# With --processes: how long after the processes are started their schedule begins (each
# builds and starts every bot first).
START_SECONDS = 25.0


def token_of(number: int) -> str:
    """Bot `number`'s token (of the Bot API's shape, each its own)."""
    bot_id = 700_000_000 + number
    return f"{bot_id}:AAHb{number:03d}Qm2LpVw9Rt4Kz8Nc3Bd6Fg0Js5Yu"


def county_like(template: CountySettings, number: int) -> CountySettings:
    """A county of the template's shape with keys, names and chats of its own."""
    key = f"c{number:02d}"
    districts = [
        district.model_copy(
            update={
                "key": f"{key}-{district.key}",
                "neighbourhoods": [
                    place.model_copy(update={"key": f"{key}-{place.key}"})
                    for place in district.neighbourhoods
                ],
            }
        )
        for district in template.districts
    ]
    agencies = agencies_like(
        template, key, str(number), lambda index: -100_000_000 - number * 1000 - index
    )
    return template.model_copy(
        update={
            "key": key,
            "name": f"شهرستان {number}",
            "coordinators": [9_000_000 + number],
            "coordinator_chat_id": -200_000_000 - number,
            "council_chat_id": -300_000_000 - number,
            "districts": districts,
            "agencies": agencies,
        }
    )


def many_bots(database_url: str, bots: int, concurrent: int | None) -> Settings:
    """The example config made into `bots` counties, each served by a bot of its own."""
    at_once = {"concurrent_updates": concurrent} if concurrent else {}
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={**NO_REPORT_LIMITS, **at_once}
    )
    counties = [county_like(settings.counties[0], n) for n in range(1, bots + 1)]
    base = settings.telegram.model_dump()
    entries = [
        {
            "key": county.key,
            "counties": [county.key],
            "token_env": f"MAHALLE_BOT_TOKEN_{county.key.upper()}",
            "telegram": TelegramSettings.model_validate({**base, "token": token_of(n)}),
        }
        for n, county in enumerate(counties, start=1)
    ]
    return Settings.model_validate({**settings.model_dump(), "counties": counties, "bots": entries})


async def start_many(settings: Settings) -> tuple[list[AnyApplication], list[FakeBotAPI]]:
    """Every bot built and started as `mahalle run` does (start-up frozen), each on its own
    fake Bot API."""
    apis, builders = [], {}
    for n, key in enumerate(settings.bot_keys, start=1):
        api = FakeBotAPI()
        api.bot_user = {**BOT_USER, "id": int(token_of(n).split(":")[0]), "username": f"{key}_bot"}
        apis.append(api)
        builders[key] = (
            ApplicationBuilder().token(token_of(n)).request(api).get_updates_request(api)
        )
    apps = build_applications(settings, builders, freeze_startup=True)
    for app in apps:
        await app.initialize()
        if app.post_init is not None:
            await app.post_init(app)
    return apps, apis


async def cases_by_county(url: str) -> dict[str, int]:
    """Cases made, by the county of their neighbourhood."""
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(District.county_key, func.count())
            .select_from(Case)
            .join(Neighbourhood, Case.neighbourhood_id == Neighbourhood.id)
            .join(District, Neighbourhood.district_id == District.id)
            .group_by(District.county_key)
        )
        counted = {str(county): int(cases) for county, cases in rows.all()}
    await engine.dispose()
    return counted


# What the database's sessions of this process wait on, sampled: the wait's kind and the start
# of the statement that waits.
WAITING = text(
    "SELECT wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 48)"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND state = 'active' AND wait_event_type IN ('Lock', 'LWLock')"
)


class Watch:
    """Every `every` seconds: the pool's connections in use and the sessions waiting on a lock
    in the database (PostgreSQL), to tell a process short of CPU from one whose updates wait."""

    def __init__(self, url: str, pool: Any, every: float = 0.5) -> None:
        self.url, self.pool, self.every = url, pool, every
        self.samples = 0
        self.pool_full = 0
        self.in_use: list[int] = []
        self.waits: dict[str, int] = {}

    async def run(self) -> None:
        """Sample until cancelled."""
        engine = create_engine(self.url, connections=1)
        capacity = self.pool.size() + self.pool._max_overflow
        try:
            async with engine.connect() as connection:
                while True:
                    await asyncio.sleep(self.every)
                    self.samples += 1
                    used = self.pool.checkedout()
                    self.in_use.append(used)
                    self.pool_full += used >= capacity
                    for kind, event, query in (await connection.execute(WAITING)).all():
                        what = f"{kind}:{event} {query}"
                        self.waits[what] = self.waits.get(what, 0) + 1
                    await connection.rollback()
        finally:
            await engine.dispose()

    def line(self) -> str:
        """The samples summed up: how often the pool was exhausted, and the mean number of
        sessions waiting on each lock."""
        if not self.samples:
            return "watch: no samples"
        waits = sorted(self.waits.items(), key=lambda item: -item[1])[:4]
        shown = "; ".join(f"{n / self.samples:.1f} on {what}" for what, n in waits) or "none"
        return (
            f"watch: {self.samples} samples, pool in use mean {statistics.mean(self.in_use):.1f} "
            f"(exhausted in {self.pool_full * 100 / self.samples:.0f} %), "
            f"sessions waiting on a lock (mean): {shown}"
        )


def _percentiles(seconds: list[float]) -> str:
    ms = sorted(x * 1000 for x in seconds)
    return (
        f"p50_ms={statistics.median(ms):.1f} p99_ms={ms[max(int(len(ms) * 0.99) - 1, 0)]:.1f} "
        f"max_ms={ms[-1]:.1f}"
    )


async def drive(
    bots: int,
    rate_per_bot: float,
    users_per_bot: int,
    url: str,
    concurrent: int | None,
    watch: bool = False,
    part: tuple[int, int] = (0, 1),
    start_at: float | None = None,
) -> dict[str, Any]:
    """This process's bots' residents on their schedules at once: the bots `b` with
    `b % parts == part` of a deployment of `bots` (every bot, in one process). Every bot is
    started, as each process of a deployment builds them all; only this part's are spoken to.
    `start_at`: the wall-clock time the schedule starts at (processes started together share
    it). What was measured, by bot."""
    mine, parts = part
    settings = many_bots(url, bots, concurrent)
    apps, apis = await start_many(settings)
    driven = [bot for bot in range(bots) if bot % parts == mine]
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in apps]
    fetchers = [asyncio.create_task(_fetch_updates(apps[bot], queues[bot])) for bot in driven]
    latencies: list[list[float]] = [[] for _ in apps]
    watcher = Watch(url, apps[0].bot_data["runtime"].engine.pool) if watch else None
    watching = asyncio.create_task(watcher.run()) if watcher else None
    gap = len(STEPS) / rate_per_bot  # between one bot's residents' arrivals
    if start_at is not None:
        if time.time() > start_at:  # its schedule would overlap another process's start-up
            print(f"part {mine}: started {time.time() - start_at:.1f} s late", file=sys.stderr)
        await asyncio.sleep(max(start_at - time.time(), 0))
    started, cpu_started = time.perf_counter(), time.process_time()
    machine_started = machine_busy_seconds()

    async def resident(bot: int, index: int, thinking: random.Random) -> None:
        user_id = FIRST_USER + bot * USERS_APART + index
        person = QueuedResident(queues[bot], apps[bot], apis[bot], user_id, deliver=False)
        person._update_ids = update_ids[bot]  # each bot numbers its own updates
        # The bots' residents arrive in turn, not all bots' at the same moments.
        due = started + (index + bot / bots) * gap
        # Each bot's index-th resident writes what report_flow's index-th does: the triage is
        # sure of those (a few other residents' numbers leave it unsure, and it asks them).
        for kind, value in steps_of(FIRST_USER + index):
            await asyncio.sleep(max(due - time.perf_counter(), 0))
            await (person.send(value) if kind == "send" else person.press(value))
            latencies[bot].append(time.perf_counter() - due)
            last_due[0] = max(last_due[0], due)
            due += THINK_SECONDS * thinking.uniform(0.5, 1.5)

    update_ids = [itertools.count(1_000_000) for _ in apps]
    last_due = [started]
    residents = []
    for bot in driven:
        thinking = random.Random(FIRST_USER + bot)  # the same schedule in every run
        residents += [resident(bot, index, thinking) for index in range(users_per_bot)]
    await asyncio.gather(*residents)
    for task in [*fetchers, *([watching] if watching else [])]:
        task.cancel()
    for app in apps:
        await settle(app.bot_data["runtime"])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    machine_ended = machine_busy_seconds()
    for app in reversed(apps):  # the first bot's closes the shared pool: last
        await stop_bot(app)
    return {
        "latencies": {settings.bot_keys[bot]: latencies[bot] for bot in driven},
        "elapsed": elapsed,
        "schedule": last_due[0] - started,
        "cpu": cpu,
        "machine": (machine_started, machine_ended),
        "at_once": concurrent_updates(settings),
        "watch": watcher.line() if watcher else None,
    }


async def _parts(arguments: argparse.Namespace, url: str, users: int) -> list[dict[str, Any]]:
    """The bots spread over `--processes` processes started together, each this module with
    `--part`; what each measured."""
    start_at = time.time() + START_SECONDS
    common = [
        *("--start-at", str(start_at), "--database-url", url, "--bots", str(arguments.bots)),
        *("--rate-per-bot", str(arguments.rate_per_bot), "--users-per-bot", str(users)),
    ]
    if arguments.concurrent_updates:
        common += ["--concurrent-updates", str(arguments.concurrent_updates)]
    children = []
    for part in range(arguments.processes):
        share = ["--part", f"{part}/{arguments.processes}"]
        command = [sys.executable, "-m", "bench.ten_bots", *share, *common]
        child = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        children.append(child)
    results = []
    for child in children:
        out, _ = await child.communicate()
        assert child.returncode == 0, f"a part failed (exit {child.returncode})"
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def run(arguments: argparse.Namespace, users: int) -> None:
    """Every bot's residents on their schedules at once, in one process or spread over
    several; then the figures, and the check that each resident's case was made, placed and
    in their bot's county."""
    bots = arguments.bots
    if arguments.part:
        mine, parts = (int(x) for x in arguments.part.split("/"))
        measured = await drive(
            bots, arguments.rate_per_bot, users, arguments.database_url,
            arguments.concurrent_updates, arguments.watch, (mine, parts), arguments.start_at,
        )  # fmt: skip
        print(json.dumps(measured))
        return
    url = await _fresh_database(arguments.database_url)
    if arguments.processes > 1:
        measured_parts = await _parts(arguments, url, users)
    else:
        one = await drive(
            bots, arguments.rate_per_bot, users, url, arguments.concurrent_updates,
            arguments.watch,
        )  # fmt: skip
        measured_parts = [one]
    by_bot = {key: own for part in measured_parts for key, own in part["latencies"].items()}
    every = [x for own in by_bot.values() for x in own]
    elapsed = max(part["elapsed"] for part in measured_parts)
    schedule = max(part["schedule"] for part in measured_parts)
    cpu = sum(part["cpu"] for part in measured_parts)
    machine = measured_parts[0]["machine"]
    for key in sorted(by_bot):
        print(f"bot={key} updates={len(by_bot[key])} {_percentiles(by_bot[key])}")
    print(
        f"backend={url.split(':', 1)[0]} bots={bots} processes={len(measured_parts)} "
        f"offered={arguments.rate_per_bot * bots:.0f}/s ({arguments.rate_per_bot:g}/s a bot) "
        f"users={bots * users} updates={len(every)} "
        f"seconds={elapsed:.1f} schedule_seconds={schedule:.1f} "
        f"updates_per_second={len(every) / elapsed:.1f} "
        f"{_percentiles(every)} cpu_ms_per_update={cpu * 1000 / len(every):.2f} "
        f"process_cpu={cpu * 100 / elapsed / len(measured_parts):.0f}% (each, on average)",
        _machine_cpu(machine[0], machine[1], len(every)) if len(measured_parts) == 1 else "",
        f"at_once={measured_parts[0]['at_once']} a bot",
    )
    for part in measured_parts:
        if part["watch"]:
            print(part["watch"])
    # A resident refused or a case left unplaced would make the figures a cheaper run's.
    cases = await cases_made(url, bots * users)
    by_county = await cases_by_county(url)
    expected = {county.key: users for county in many_bots(url, bots, None).counties}
    assert by_county == expected, f"cases by county {by_county}, expected {expected}"
    print(f"cases={cases}, each placed, {users} in each bot's county")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, default=10, help="bots (and counties) in the process")
    parser.add_argument(
        "--rate-per-bot",
        type=float,
        default=20.0,
        help="updates falling due a second for each bot, whether or not it keeps up",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="how long residents keep arriving (seconds × rate / 8 residents a bot)",
    )
    parser.add_argument(
        "--users-per-bot", type=int, help="residents of each bot (8 updates each), over --seconds"
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="PostgreSQL (postgresql+asyncpg://…); SQLite is taken with a warning",
    )
    parser.add_argument(
        "--concurrent-updates",
        type=int,
        help="updates each bot handles at once (default: the config's)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="PostgreSQL: sample the pool's use and the sessions waiting on a lock",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="spread the bots over this many processes, as a deployment's receivers are (one "
        "receiver a bot); every process builds every bot and speaks to its share",
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)  # i/N: one of --processes' processes
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if not arguments.database_url.startswith("postgresql"):
        print(
            "warning: not PostgreSQL; SQLite handles one update at a time for all the bots",
            file=sys.stderr,
        )
    users = arguments.users_per_bot or round(
        arguments.seconds * arguments.rate_per_bot / len(STEPS)
    )
    assert users > 0, "no residents: give --seconds or --users-per-bot"
    asyncio.run(run(arguments, users))


if __name__ == "__main__":
    main()
