"""Statistics for coordinators and the council: counts, speed, overdue and reopen rates, ratings."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jdatetime
from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.jalali import TEHRAN
from bot.services.deadlines import overdue_cases
from bot.services.reference import neighbourhoods_of_county
from models.entities import Agency, Case, CaseEvent, CaseStatus, District, Domain, Neighbourhood


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


def _hours(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() / 3600


async def collect(
    session: AsyncSession,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    now: datetime,
    county_key: str | None = None,
) -> Stats:
    """Figures for cases filed in [start, end) (in one county, when given)."""
    stats = Stats(start=start, end=end)
    in_period: tuple[Any, ...] = (Case.created_at >= start, Case.created_at < end)
    if scope := settings.case_filter_county(county_key):
        in_period = (*in_period, Case.neighbourhood_id.in_(neighbourhoods_of_county(scope)))
    counts = await session.execute(
        select(Case.status, func.count()).where(*in_period).group_by(Case.status)
    )
    stats.by_status = sorted(((status, n) for status, n in counts), key=lambda p: -p[1])
    stats.total = sum(n for _, n in stats.by_status)
    stats.by_domain = _pairs(
        await session.execute(
            select(Domain.title, func.count())
            .join(Case, Case.domain_key == Domain.key)
            .where(*in_period)
            .group_by(Domain.title)
            .order_by(func.count().desc())
        )
    )
    stats.by_district = _pairs(
        await session.execute(
            select(District.name, func.count())
            .join(Neighbourhood, Neighbourhood.district_id == District.id)
            .join(Case, Case.neighbourhood_id == Neighbourhood.id)
            .where(*in_period)
            .group_by(District.name)
            .order_by(func.count().desc())
        )
    )
    stats.by_neighbourhood = _pairs(
        await session.execute(
            select(Neighbourhood.name, func.count())
            .join(Case, Case.neighbourhood_id == Neighbourhood.id)
            .where(*in_period).group_by(Neighbourhood.name)
            .order_by(func.count().desc()).limit(10)
        )
    )  # fmt: skip
    average, rated = (
        await session.execute(
            select(func.avg(Case.rating), func.count(Case.rating)).where(*in_period)
        )
    ).one()
    stats.rating, stats.ratings = (float(average) if average is not None else None), int(rated)
    stats.agencies = await _agencies(session, settings=settings, in_period=in_period, now=now)
    return stats


def _pairs(rows: Iterable[Any]) -> list[tuple[str, int]]:
    return [(str(name), int(count)) for name, count in rows]


async def _agencies(
    session: AsyncSession, *, settings: Settings, in_period: tuple[Any, ...], now: datetime
) -> list[AgencyFigures]:
    def first(status: str) -> Any:
        return func.min(when((CaseEvent.to_status == status, CaseEvent.created_at)))

    rows = await session.execute(
        select(
            Case.id,
            Case.agency_key,
            Case.reopen_count,
            Case.rating,
            first(CaseStatus.FORWARDED),
            first(CaseStatus.ACCEPTED),
            first(CaseStatus.RESOLVED),
        )
        .join(CaseEvent, CaseEvent.case_id == Case.id)
        .where(*in_period, Case.agency_key.is_not(None))
        .group_by(Case.id, Case.agency_key, Case.reopen_count, Case.rating)
    )
    overdue = {
        o.case_id
        for o in await overdue_cases(session, settings=settings, now=now, where=in_period)
        if o.kind != "remind"
    }
    per_agency: dict[str, list[tuple[int, int, int | None, float | None, float | None]]] = (
        defaultdict(list)
    )
    for case_id, agency_key, reopens, rating, forwarded, accepted, resolved in rows:
        per_agency[agency_key].append(
            (case_id, reopens, rating, _hours(accepted, forwarded), _hours(resolved, forwarded))
        )
    names = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
    figures = []
    for key, cases in sorted(per_agency.items(), key=lambda item: -len(item[1])):
        accept = [c[3] for c in cases if c[3] is not None]
        resolve = [c[4] for c in cases if c[4] is not None]
        ratings = [c[2] for c in cases if c[2] is not None]
        figures.append(
            AgencyFigures(
                name=names.get(key, key), cases=len(cases),
                median_accept_hours=statistics.median(accept) if accept else None,
                median_resolve_hours=statistics.median(resolve) if resolve else None,
                overdue_rate=sum(c[0] in overdue for c in cases) / len(cases),
                reopen_rate=sum(c[1] > 0 for c in cases) / len(cases),
                rating=statistics.fmean(ratings) if ratings else None,
            )
        )  # fmt: skip
    return figures
