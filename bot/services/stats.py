"""Statistics for coordinators and the council: counts, speed, overdue and reopen rates, ratings."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import jdatetime
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.jalali import TEHRAN, as_utc
from bot.services.deadlines import OPEN_AT_AGENCY, OverdueCheck
from bot.services.participation import Participation, period_figures
from bot.services.reference import neighbourhoods_of_county
from bot.services.taskview import cooperation_figures
from bot.services.worktime import WorkCalendar
from models.entities import Agency, Case, Domain, Neighbourhood, TriageCorrection


@dataclass(frozen=True)
class AgencyFigures:
    """How one agency did in the period."""

    name: str
    cases: int
    median_accept_hours: float | None  # working hours (bot/services/worktime.py)
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


def report_week(now: datetime) -> tuple[datetime, datetime]:
    """The last complete Iranian week before `now`: Saturday 00:00 to the Friday's end (Tehran),
    as [start, end). On a Saturday morning, the week that has just ended."""
    end = week_start(now).astimezone(UTC)
    return end - timedelta(days=7), end


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
    check = OverdueCheck(settings.deadlines)
    for row in await session.execute(_counts(in_period, check.escalated_clause(now))):
        tally.add_group(*row)
    await _add_medians(session, tally, in_period, check.calendar)
    await _add_reroutes(session, tally, in_period)
    figures = await tally.figures(session, start=start, end=end)
    figures.participation = await period_figures(session, start=start, end=end, county_key=scope)
    figures.shared_cases, figures.agency_pairs = await cooperation_figures(session, in_period)
    return figures


@dataclass(frozen=True)
class AgencyWeek:
    """One agency at the end of a week: its cases still open then, those it resolved in the
    week, and those past a deadline the coordinators hear about (bot/services/deadlines.py)."""

    name: str
    open: int
    resolved: int
    overdue: int


async def agency_week(
    session: AsyncSession, *, settings: Settings, county_key: str, start: datetime, end: datetime
) -> list[AgencyWeek]:
    """Each agency of the county with something open, resolved or overdue at the end of the
    week [start, end), most open first. A case resolved after the week ended counts as open at
    its end; overdue is the deadline machinery's escalation, as it stood when the week ended."""
    before_end = Case.created_at < end
    open_then = and_(before_end, or_(Case.status.in_(OPEN_AT_AGENCY), Case.resolved_at >= end))
    resolved = and_(Case.resolved_at >= start, Case.resolved_at < end)
    overdue = and_(before_end, OverdueCheck(settings.deadlines).escalated_clause(end))
    rows = await session.execute(
        select(
            Agency.name,
            func.sum(case((open_then, 1), else_=0)),
            func.sum(case((resolved, 1), else_=0)),
            func.sum(case((overdue, 1), else_=0)),
        )
        .join(Case, Case.agency_key == Agency.key)
        .where(Agency.county_key == county_key, or_(open_then, resolved))
        .group_by(Agency.key, Agency.name)
    )
    found = [AgencyWeek(str(name), int(o or 0), int(r or 0), int(d or 0)) for name, o, r, d in rows]
    return sorted(found, key=lambda a: (-a.open, -a.resolved, a.name))


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


async def _add_medians(
    session: AsyncSession, tally: _Tally, in_period: tuple[Any, ...], calendar: WorkCalendar
) -> None:
    """Each agency's median hours to accept, in working time (office hours, without Fridays and
    holidays: what the deadlines count), and to resolve, in calendar hours. Working time is
    counted per case by the calendar (a lookup each); the resolve median stays in the database."""
    accepted = await session.execute(
        select(Case.agency_key, Case.forwarded_at, Case.accepted_at).where(
            *in_period,
            Case.agency_key.is_not(None),
            Case.forwarded_at.is_not(None),
            Case.accepted_at.is_not(None),
        )
    )
    waits: defaultdict[str, list[float]] = defaultdict(list)
    for agency, forwarded, accepted_at in accepted:
        if agency is None or forwarded is None or accepted_at is None:
            continue  # the query left them out: for the type checker
        waited = calendar.elapsed(as_utc(forwarded), as_utc(accepted_at))
        waits[agency].append(waited.total_seconds() / 3600)
    tally.accept_medians.update({agency: median(hours) for agency, hours in waits.items()})
    to_resolve = _hours_expression(session)(Case.resolved_at, Case.forwarded_at)
    if session.get_bind().dialect.name == "postgresql":
        found = await session.execute(
            select(Case.agency_key, func.percentile_cont(0.5).within_group(to_resolve))
            .where(*in_period, Case.agency_key.is_not(None), Case.resolved_at.is_not(None))
            .group_by(Case.agency_key)
        )
        tally.resolve_medians.update(
            {agency: float(hours) for agency, hours in found if hours is not None}
        )
        return
    found = await session.execute(_middle_rows(to_resolve, in_period))
    tally.resolve_medians.update({agency: float(hours) for agency, hours in found})


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
