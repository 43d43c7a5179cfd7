"""Statistics and exports on many generated cases.

    .venv/bin/python -m bench.stats_scale --cases 1000000 [--database-url postgresql+asyncpg://…]
    .venv/bin/python -m bench.stats_scale --database-url sqlite+aiosqlite:////tmp/1m.db --reuse

Generates cases spread over a year (with their audit rows), then times `/stats` for the last
month and streams that month to CSV, reporting the time and the process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from bench.report_flow import _fresh_database
from bot.i18n import Translator
from bot.reports import EXPORT_COLUMN_KEYS, export_rows, write_export
from bot.services import stats
from bot.services.reference import sync_reference_data
from models.db import create_engine, create_session_factory, upgrade_database
from models.entities import Case, CaseEvent, Domain, Neighbourhood
from tests.conftest import make_settings

BATCH = 20_000
STATUSES = ("forwarded", "accepted", "resolved", "closed", "rejected", "triage")
FIXED: dict[str, Any] = {
    "year": 1405, "reporter_id": None, "text_original": "گزارش آزمایشی",
    "text_normalized": "گزارش آزمایشی", "photo_file_ids": [], "share_phone": False,
    "undeliverable": False, "forwarded_at": None, "accepted_at": None, "resolved_at": None,
    "handed_over_at": None,
}  # fmt: skip


def _event(n: int, before: str, after: str, at: datetime) -> dict[str, Any]:
    return {"case_id": n + 1, "from_status": before, "to_status": after, "created_at": at}


def _case(
    n: int, created: datetime, rng: random.Random, places: list[int], domains: list[tuple[str, str]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    domain, agency = rng.choice(domains)
    status = rng.choice(STATUSES)
    case = {
        **FIXED, "id": n + 1, "code": f"1405-{n + 1:05d}", "sequence": n + 1,
        "draft_token": f"bench-{n}", "neighbourhood_id": rng.choice(places),
        "status": status, "domain_key": domain, "agency_key": agency,
        "reopen_count": rng.choice([0, 0, 0, 1]), "rating": rng.choice([None, 3, 4, 5]),
        "created_at": created, "updated_at": created,
    }  # fmt: skip
    events = [_event(n, "submitted", "forwarded", created)]
    accepted = created + timedelta(hours=rng.randrange(1, 72))
    if status in ("accepted", "resolved", "closed"):
        events.append(_event(n, "forwarded", "accepted", accepted))
    if status in ("resolved", "closed"):
        events.append(
            _event(n, "accepted", "resolved", accepted + timedelta(hours=rng.randrange(1, 300)))
        )
    for event in events:  # the milestones a transition keeps on the case
        case[f"{event['to_status']}_at"] = event["created_at"]
    case["handed_over_at"] = created
    return case, events


async def generate(factory: Any, settings: Any, count: int, now: datetime) -> None:
    """Insert `count` cases spread over the last year, in batches."""
    rng = random.Random(1405)
    async with factory() as session:
        await sync_reference_data(session=session, settings=settings)
        places = list((await session.scalars(select(Neighbourhood.id))).all())
        # One county: each domain's agency has the kind's key.
        domains = [(d.key, d.agency_kind) for d in (await session.scalars(select(Domain))).all()]
    # Filed in order, as a live database receives them: the month's cases lie together on disk.
    seconds_ago = sorted((rng.randrange(365 * 24 * 3600) for _ in range(count)), reverse=True)
    for start in range(0, count, BATCH):
        cases, events = [], []
        for n in range(start, min(start + BATCH, count)):
            created = now - timedelta(seconds=seconds_ago[n])
            case, case_events = _case(n, created, rng, places, domains)
            cases.append(case)
            events += case_events
        async with factory() as session:
            await session.execute(insert(Case), cases)
            await session.execute(insert(CaseEvent), events)
            await session.commit()


async def _settle(engine: Any) -> None:
    """What PostgreSQL's autovacuum does to a live table after a million inserts: statistics
    for the planner, and the visibility map that lets an index answer without the table."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))


async def run(count: int, database_url: str | None, *, reuse: bool) -> None:
    url = database_url if reuse and database_url else await _fresh_database(database_url)
    settings = make_settings(url)
    engine = create_engine(url)
    if reuse:  # bring older generated data up to the current schema
        started = time.perf_counter()
        await upgrade_database(engine)
        print(f"migrated in {time.perf_counter() - started:.1f} s")
    factory = create_session_factory(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    if not reuse:
        await generate(factory, settings, count, now)
        await _settle(engine)
    generated = time.perf_counter() - started
    timings = []
    for _ in range(6):  # the first run reads from disk; the others from the page cache
        async with factory() as session:
            started = time.perf_counter()
            figures = await stats.collect(
                session, settings=settings, start=now - timedelta(days=30), end=now, now=now
            )
            timings.append((time.perf_counter() - started) * 1000)
    warm = sorted(timings[1:])
    stats_ms = f"{timings[0]:.0f}/{warm[0]:.0f}/{warm[len(warm) // 2]:.0f}/{warm[-1]:.0f}"
    translate = Translator.load()

    def t(key: str, /, **values: object) -> str:
        return translate(key, "fa", **values)

    path = Path(tempfile.mkdtemp()) / "month.csv"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with factory() as session:
        started = time.perf_counter()
        rows = export_rows(session, start=now - timedelta(days=30), end=now, t=t, language="fa")
        exported = await write_export(rows, [t(k) for k in EXPORT_COLUMN_KEYS], path, "csv")
        export_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await engine.dispose()
    backend = url.split(":", 1)[0]
    print(
        f"backend={backend} cases={count} generate_s={generated:.0f} month_cases={figures.total} "
        f"stats_month_ms(first/warm_min/median/max)={stats_ms} "
        f"export_rows={exported} export_s={export_s:.1f} "
        f"peak_rss_mb_before_export={before:.0f} after={after:.0f}"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the cases already in --database-url"
    )
    arguments = parser.parse_args()
    asyncio.run(run(arguments.cases, arguments.database_url, reuse=arguments.reuse))


if __name__ == "__main__":
    main()
