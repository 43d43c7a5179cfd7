"""Statistics for coordinators and the council: counts, speed, overdue and reopen rates, ratings."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jdatetime
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.jalali import TEHRAN
from bot.services.deadlines import OPEN_AT_AGENCY, OverdueCheck
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
    """Figures for cases filed in [start, end) (in one county, when given). The database
    counts; Python sees one number per case only for the medians, and the open cases only for
    the deadlines (a month of a busy county is 100,000 cases)."""
    in_period: tuple[Any, ...] = (Case.created_at >= start, Case.created_at < end)
    if scope := settings.case_filter_county(county_key):
        in_period = (*in_period, Case.neighbourhood_id.in_(neighbourhoods_of_county(scope)))
    tally = _Tally()
    for row in await session.execute(_counts(in_period)):
        tally.add_group(*row)
    hours = _hours_expression(session)
    await _stream(
        session,
        select(
            Case.agency_key,
            hours(Case.accepted_at, Case.forwarded_at),
            hours(Case.resolved_at, Case.forwarded_at),
        ).where(*in_period, Case.agency_key.is_not(None), Case.accepted_at.is_not(None)),
        tally.add_hours,
    )
    check = OverdueCheck(settings.deadlines)
    await _stream(
        session,
        select(Case.agency_key, Case.status, Case.domain_key, Case.handed_over_at).where(
            *in_period,
            Case.status.in_(OPEN_AT_AGENCY),
            Case.agency_key.is_not(None),
            Case.handed_over_at < now - check.soonest_escalation(),
        ),
        lambda agency, status, domain, since: tally.add_open(
            agency, check.escalated(status=status, domain_key=domain, since=since, now=now)
        ),
    )
    return await tally.figures(session, start=start, end=end)


def _counts(in_period: tuple[Any, ...]) -> Any:
    """Cases, ratings and reopened cases per status, domain, place and agency."""
    return (
        select(
            Case.status, Case.domain_key, Case.neighbourhood_id, Case.agency_key, func.count(),
            func.count(Case.rating), func.sum(Case.rating),
            func.sum(case((Case.reopen_count > 0, 1), else_=0)),
        )
        .where(*in_period)
        .group_by(Case.status, Case.domain_key, Case.neighbourhood_id, Case.agency_key)
    )  # fmt: skip


async def _stream(session: AsyncSession, query: Any, take: Callable[..., None]) -> None:
    """Feed each row of a possibly long result to `take`, in batches (flat memory)."""
    result = await session.stream(query.execution_options(yield_per=10_000))
    async for batch in result.partitions():  # a row at a time would switch context per row
        for row in batch:
            take(*row)


def _hours_expression(session: AsyncSession) -> Callable[[Any, Any], Any]:
    """Hours between two timestamps, computed by the database (no datetimes to parse here)."""
    if session.get_bind().dialect.name == "postgresql":
        return lambda later, earlier: func.extract("epoch", later - earlier) / 3600
    return lambda later, earlier: (func.julianday(later) - func.julianday(earlier)) * 24


@dataclass
class _AgencyTally:
    cases: int = 0
    reopened: int = 0
    rated: int = 0
    rating_sum: int = 0
    overdue: int = 0
    accept_hours: list[float] = field(default_factory=list)
    resolve_hours: list[float] = field(default_factory=list)


class _Tally:
    """What the queries found, before names replace keys."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        self.by_place: Counter[int] = Counter()
        self.rated, self.rating_sum = 0, 0
        self.agencies: defaultdict[str, _AgencyTally] = defaultdict(_AgencyTally)

    def add_group(
        self,
        status: str,
        domain: str | None,
        place: int,
        agency: str | None,
        cases: int,
        rated: int,
        rating_sum: int | None,
        reopened: int | None,
    ) -> None:
        self.by_status[status] += cases
        if domain is not None:
            self.by_domain[domain] += cases
        self.by_place[place] += cases
        self.rated += rated
        self.rating_sum += rating_sum or 0
        if agency is not None:
            figures = self.agencies[agency]
            figures.cases += cases
            figures.reopened += reopened or 0
            figures.rated += rated
            figures.rating_sum += rating_sum or 0

    def add_hours(self, agency: str, accept: float | None, resolve: float | None) -> None:
        figures = self.agencies[agency]
        if accept is not None:
            figures.accept_hours.append(float(accept))
        if resolve is not None:
            figures.resolve_hours.append(float(resolve))

    def add_open(self, agency: str, overdue: bool) -> None:
        self.agencies[agency].overdue += overdue

    async def figures(self, session: AsyncSession, *, start: datetime, end: datetime) -> Stats:
        """The tally with names in place of keys."""
        domains = {d.key: d.title for d in (await session.scalars(select(Domain))).all()}
        places = (await session.scalars(select(Neighbourhood))).all()
        place_names = {p.id: p.name for p in places}
        districts: Counter[str] = Counter()
        for place in places:
            districts[place.district.name] += self.by_place.get(place.id, 0)
        agency_names = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
        ranked = sorted(self.agencies.items(), key=lambda item: -item[1].cases)
        return Stats(
            start=start,
            end=end,
            total=sum(self.by_status.values()),
            by_status=self.by_status.most_common(),
            by_domain=[(domains.get(k, k), n) for k, n in self.by_domain.most_common()],
            by_district=[(name, n) for name, n in districts.most_common() if n],
            by_neighbourhood=[(place_names[k], n) for k, n in self.by_place.most_common(10)],
            agencies=[_agency_figures(agency_names.get(k, k), t) for k, t in ranked if t.cases],
            rating=self.rating_sum / self.rated if self.rated else None,
            ratings=self.rated,
        )


def _agency_figures(name: str, tally: _AgencyTally) -> AgencyFigures:
    return AgencyFigures(
        name=name,
        cases=tally.cases,
        median_accept_hours=(statistics.median(tally.accept_hours) if tally.accept_hours else None),
        median_resolve_hours=(
            statistics.median(tally.resolve_hours) if tally.resolve_hours else None
        ),
        overdue_rate=tally.overdue / tally.cases,
        reopen_rate=tally.reopened / tally.cases,
        rating=tally.rating_sum / tally.rated if tally.rated else None,
    )
