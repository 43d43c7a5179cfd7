"""Statistics for coordinators and the council: counts, speed, overdue and reopen rates, ratings."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jdatetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.jalali import TEHRAN
from bot.services.deadlines import OverdueCheck
from bot.services.reference import neighbourhoods_of_county
from models.entities import Agency, Case, Domain, Neighbourhood


@dataclass(frozen=True)
class AgencyFigures:
    """How one agency did in the period."""

    name: str
    cases: int
    median_accept_hours: float | None
    median_resolve_hours: float | None
    overdue_rate: float
    reopen_rate: float
    rating: float | None


@dataclass
class Stats:
    """A period in numbers."""

    start: datetime
    end: datetime
    total: int = 0
    by_status: list[tuple[str, int]] = field(default_factory=list)
    by_domain: list[tuple[str, int]] = field(default_factory=list)
    by_district: list[tuple[str, int]] = field(default_factory=list)
    by_neighbourhood: list[tuple[str, int]] = field(default_factory=list)
    agencies: list[AgencyFigures] = field(default_factory=list)
    rating: float | None = None
    ratings: int = 0


def week_start(now: datetime) -> datetime:
    """The Saturday 00:00 (Tehran) that began the week containing `now`."""
    local = now.astimezone(TEHRAN)
    days_since_saturday = (local.weekday() - 5) % 7
    return (local - timedelta(days=days_since_saturday)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


def month_start(now: datetime) -> datetime:
    """The first day (Tehran midnight) of the Jalali month containing `now`."""
    local = jdatetime.datetime.fromgregorian(datetime=now.astimezone(TEHRAN).replace(tzinfo=None))
    first = jdatetime.datetime(local.year, local.month, 1).togregorian()
    start: datetime = first.replace(tzinfo=TEHRAN)
    return start


async def collect(
    session: AsyncSession,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    now: datetime,
    county_key: str | None = None,
) -> Stats:
    """Figures for cases filed in [start, end) (in one county, when given), counted in one
    streamed pass over the period's cases (a month of a busy county is 100,000 rows)."""
    in_period: tuple[Any, ...] = (Case.created_at >= start, Case.created_at < end)
    if scope := settings.case_filter_county(county_key):
        in_period = (*in_period, Case.neighbourhood_id.in_(neighbourhoods_of_county(scope)))
    tally = _Tally(settings, now)
    rows = await session.stream(
        select(*_COLUMNS).where(*in_period).execution_options(yield_per=10_000)
    )
    async for batch in rows.partitions():  # a row at a time would switch context per row
        for row in batch:
            tally.add(row)
    return await tally.figures(session, start=start, end=end)


# What one pass over the period reads of each case.
_COLUMNS = (
    Case.status, Case.domain_key, Case.neighbourhood_id, Case.rating, Case.agency_key,
    Case.reopen_count, Case.forwarded_at, Case.accepted_at, Case.resolved_at,
    Case.handed_over_at,
)  # fmt: skip


class _Tally:
    """Counts accumulated case by case."""

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.deadlines = OverdueCheck(settings.deadlines)
        self.now = now
        self.by_status: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        self.by_place: Counter[int] = Counter()
        self.ratings: list[int] = []
        # Per agency: (reopened, rating, hours to accept, hours to resolve, overdue) per case.
        self.agencies: dict[str, list[tuple[bool, int | None, float | None, float | None, bool]]]
        self.agencies = defaultdict(list)

    def add(self, row: Any) -> None:
        (status, domain, place, rating, agency, reopens, forwarded, accepted, resolved,
         handed_over) = row  # fmt: skip
        self.by_status[status] += 1
        if domain is not None:
            self.by_domain[domain] += 1
        self.by_place[place] += 1
        if rating is not None:
            self.ratings.append(rating)
        if agency is not None:
            overdue = handed_over is not None and self.deadlines.escalated(
                status=status, domain_key=domain, since=handed_over, now=self.now
            )
            self.agencies[agency].append(
                (reopens > 0, rating, _hours(accepted, forwarded), _hours(resolved, forwarded),
                 overdue)
            )  # fmt: skip

    async def figures(self, session: AsyncSession, *, start: datetime, end: datetime) -> Stats:
        """The tally with names in place of keys."""
        domains = {d.key: d.title for d in (await session.scalars(select(Domain))).all()}
        places = (await session.scalars(select(Neighbourhood))).all()
        place_names = {p.id: p.name for p in places}
        districts: Counter[str] = Counter()
        for place in places:
            districts[place.district.name] += self.by_place.get(place.id, 0)
        agency_names = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
        return Stats(
            start=start,
            end=end,
            total=sum(self.by_status.values()),
            by_status=self.by_status.most_common(),
            by_domain=[(domains.get(k, k), n) for k, n in self.by_domain.most_common()],
            by_district=[(name, n) for name, n in districts.most_common() if n],
            by_neighbourhood=[(place_names[k], n) for k, n in self.by_place.most_common(10)],
            agencies=[
                _agency_figures(agency_names.get(key, key), cases)
                for key, cases in sorted(self.agencies.items(), key=lambda item: -len(item[1]))
            ],
            rating=statistics.fmean(self.ratings) if self.ratings else None,
            ratings=len(self.ratings),
        )


def _agency_figures(
    name: str, cases: list[tuple[bool, int | None, float | None, float | None, bool]]
) -> AgencyFigures:
    accept = [c[2] for c in cases if c[2] is not None]
    resolve = [c[3] for c in cases if c[3] is not None]
    ratings = [c[1] for c in cases if c[1] is not None]
    return AgencyFigures(
        name=name,
        cases=len(cases),
        median_accept_hours=statistics.median(accept) if accept else None,
        median_resolve_hours=statistics.median(resolve) if resolve else None,
        overdue_rate=sum(c[4] for c in cases) / len(cases),
        reopen_rate=sum(c[0] for c in cases) / len(cases),
        rating=statistics.fmean(ratings) if ratings else None,
    )


def _hours(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() / 3600
