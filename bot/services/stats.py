"""Statistics for coordinators and the council: counts, speed, overdue and reopen rates, ratings."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jdatetime
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.jalali import TEHRAN
from bot.services.deadlines import OverdueCheck
from bot.services.participation import Participation, period_figures
from bot.services.reference import neighbourhoods_of_county
from bot.services.taskview import cooperation_figures
from models.entities import Agency, Case, Domain, Neighbourhood, TriageCorrection


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
    # Residents who joined cases, and local groups' offers of help made and accepted.
    participation: Participation = field(default_factory=Participation)
    # Cases more than one agency worked on, and the pairs of agencies that did most often.
    shared_cases: int = 0
    agency_pairs: list[tuple[str, int]] = field(default_factory=list)
    # Cases sent on to another agency after they were placed (triage, a reporter's or a
    # coordinator's choice was wrong), and reroutes by the domain they were taken from.
    rerouted: int = 0
    reroutes_by_domain: list[tuple[str, int]] = field(default_factory=list)


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
    counts, overdue cases and medians included: a month of a busy county is 100,000 cases, and
    none of them is handed over one by one."""
    in_period: tuple[Any, ...] = (Case.created_at >= start, Case.created_at < end)
    if scope := settings.case_filter_county(county_key):
        in_period = (*in_period, Case.neighbourhood_id.in_(neighbourhoods_of_county(scope)))
    tally = _Tally()
    escalated = OverdueCheck(settings.deadlines).escalated_clause(now)
    for row in await session.execute(_counts(in_period, escalated)):
        tally.add_group(*row)
    await _add_medians(session, tally, in_period)
    await _add_reroutes(session, tally, in_period)
    figures = await tally.figures(session, start=start, end=end)
    figures.participation = await period_figures(session, start=start, end=end, county_key=scope)
    figures.shared_cases, figures.agency_pairs = await cooperation_figures(session, in_period)
    return figures


async def _add_reroutes(session: AsyncSession, tally: _Tally, in_period: tuple[Any, ...]) -> None:
    """Reroutes of the period's cases by the domain each was taken from, and rerouted cases."""
    found = await session.execute(
        select(TriageCorrection.from_domain_key, func.count())
        .join(Case, Case.id == TriageCorrection.case_id)
        .where(*in_period, TriageCorrection.source == "reroute")
        .group_by(TriageCorrection.from_domain_key)
    )
    for domain, reroutes in found:
        tally.reroutes[domain or ""] += reroutes
    tally.rerouted = (
        await session.scalar(
            select(func.count(func.distinct(TriageCorrection.case_id)))
            .join(Case, Case.id == TriageCorrection.case_id)
            .where(*in_period, TriageCorrection.source == "reroute")
        )
        or 0
    )


def _counts(in_period: tuple[Any, ...], escalated: ColumnElement[bool]) -> Any:
    """Cases, ratings, reopened and escalated cases per status, domain, place and agency."""
    return (
        select(
            Case.status, Case.domain_key, Case.neighbourhood_id, Case.agency_key, func.count(),
            func.count(Case.rating), func.sum(Case.rating),
            func.sum(case((Case.reopen_count > 0, 1), else_=0)),
            func.sum(case((escalated, 1), else_=0)),
        )
        .where(*in_period)
        .group_by(Case.status, Case.domain_key, Case.neighbourhood_id, Case.agency_key)
    )  # fmt: skip


async def _add_medians(session: AsyncSession, tally: _Tally, in_period: tuple[Any, ...]) -> None:
    """Each agency's median hours to accept and to resolve, worked out by the database."""
    hours = _hours_expression(session)
    to_accept = hours(Case.accepted_at, Case.forwarded_at)
    to_resolve = hours(Case.resolved_at, Case.forwarded_at)
    if session.get_bind().dialect.name == "postgresql":  # both medians in one pass
        found = await session.execute(
            select(
                Case.agency_key,
                func.percentile_cont(0.5).within_group(to_accept),
                func.percentile_cont(0.5).within_group(to_resolve),  # NULLs are left out
            )
            .where(*in_period, Case.agency_key.is_not(None), Case.accepted_at.is_not(None))
            .group_by(Case.agency_key)
        )
        for agency, accept, resolve in found:
            if accept is not None:
                tally.accept_medians[agency] = float(accept)
            if resolve is not None:
                tally.resolve_medians[agency] = float(resolve)
        return
    for taken, medians in ((to_accept, tally.accept_medians), (to_resolve, tally.resolve_medians)):
        found = await session.execute(_middle_rows(taken, in_period))
        medians.update({agency: float(median) for agency, median in found})


def _middle_rows(hours: Any, in_period: tuple[Any, ...]) -> Any:
    """Each agency's median of `hours` in portable SQL: the middle row, or the mean of the two
    middle rows, in the agency's cases ordered by hours."""
    ranked = (
        select(
            Case.agency_key.label("agency"),
            hours.label("hours"),
            func.row_number().over(partition_by=Case.agency_key, order_by=hours).label("place"),
            func.count().over(partition_by=Case.agency_key).label("cases"),
        )
        .where(*in_period, Case.agency_key.is_not(None), hours.is_not(None))
        .subquery()
    )
    middle = ranked.c.place.in_([(ranked.c.cases + 1) // 2, (ranked.c.cases + 2) // 2])
    return select(ranked.c.agency, func.avg(ranked.c.hours)).where(middle).group_by(ranked.c.agency)


def _hours_expression(session: AsyncSession) -> Callable[[Any, Any], Any]:
    """Hours between two timestamps, computed by the database (no datetimes to parse here)."""
    if session.get_bind().dialect.name == "postgresql":
        # date_part is a float; extract() is numeric since PostgreSQL 14, and slow to sort.
        return lambda later, earlier: func.date_part("epoch", later - earlier) / 3600
    return lambda later, earlier: (func.julianday(later) - func.julianday(earlier)) * 24


@dataclass
class _AgencyTally:
    cases: int = 0
    reopened: int = 0
    rated: int = 0
    rating_sum: int = 0
    overdue: int = 0


class _Tally:
    """What the queries found, before names replace keys."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        self.by_place: Counter[int] = Counter()
        self.rated, self.rating_sum = 0, 0
        self.agencies: defaultdict[str, _AgencyTally] = defaultdict(_AgencyTally)
        self.accept_medians: dict[str, float] = {}
        self.reroutes: Counter[str] = Counter()
        self.rerouted = 0
        self.resolve_medians: dict[str, float] = {}

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
        escalated: int | None,
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
            figures.overdue += escalated or 0
            figures.rated += rated
            figures.rating_sum += rating_sum or 0

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
            agencies=[
                _agency_figures(
                    agency_names.get(k, k),
                    t,
                    accept=self.accept_medians.get(k),
                    resolve=self.resolve_medians.get(k),
                )
                for k, t in ranked
                if t.cases
            ],
            rating=self.rating_sum / self.rated if self.rated else None,
            ratings=self.rated,
            rerouted=self.rerouted,
            reroutes_by_domain=[(domains.get(k, k), n) for k, n in self.reroutes.most_common()],
        )


def _agency_figures(
    name: str, tally: _AgencyTally, *, accept: float | None, resolve: float | None
) -> AgencyFigures:
    return AgencyFigures(
        name=name,
        cases=tally.cases,
        median_accept_hours=accept,
        median_resolve_hours=resolve,
        overdue_rate=tally.overdue / tally.cases,
        reopen_rate=tally.reopened / tally.cases,
        rating=tally.rating_sum / tally.rated if tally.rated else None,
    )
