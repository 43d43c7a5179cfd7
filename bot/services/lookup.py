"""Finding cases at a desk: a code read out on the phone, an agency's open cases (overdue
first), the triage queue, and a search; always within what the asker may see.

Staff see the cases their agency holds or once held (each step of a case's history names the
agency that held it after the step); a coordinator sees the cases of their county. A case
outside that is not found, exactly as a code that names no case: the answer never tells
whether it exists.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.config import Settings
from bot.jalali import TrackingCode, as_utc
from bot.normalize import SEARCH_BLIND, normalize, search_form
from bot.services.deadlines import OPEN_AT_AGENCY, OverdueCheck, is_overdue
from models.entities import Case, CaseEvent, CaseStatus, District, Neighbourhood

# A list holds at most this many cases (an agency's open cases are far fewer).
LIST_BOUND = 1000
SEARCH_LIMIT = 10
# The statuses a list may be narrowed to, in the order a picker offers them.
LIST_STATUSES = (
    CaseStatus.FORWARDED, CaseStatus.REOPENED, CaseStatus.ACCEPTED, CaseStatus.NEEDS_INFO,
    CaseStatus.RESOLVED, CaseStatus.CLOSED, CaseStatus.REJECTED, CaseStatus.TRIAGE,
)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    """What one person may look up: the agencies they are staff of here, the counties they
    coordinate."""

    agencies: frozenset[str] = frozenset()
    counties: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        """Whether the scope sees anything at all."""
        return bool(self.agencies or self.counties)


def _in_county(counties: Collection[str]) -> ColumnElement[bool]:
    """A case filed in one of these counties."""
    places = (
        select(Neighbourhood.id)
        .join(District, District.id == Neighbourhood.district_id)
        .where(District.county_key.in_(counties))
    )
    return Case.neighbourhood_id.in_(places)


def visible(scope: Scope) -> ColumnElement[bool]:
    """A case within the scope, as SQL."""
    clauses: list[ColumnElement[bool]] = []
    if scope.agencies:
        held = select(CaseEvent.case_id).where(CaseEvent.agency_key.in_(scope.agencies))
        clauses += [Case.agency_key.in_(scope.agencies), Case.id.in_(held)]
    if scope.counties:
        clauses.append(_in_county(scope.counties))
    return or_(*clauses) if clauses else false()


async def find_case(
    session: AsyncSession, *, codes: Collection[TrackingCode], scope: Scope
) -> Case | None:
    """The first of `codes` that names a case within the scope, with its history; None
    otherwise, whether or not such a case exists."""
    for code in codes:
        case = await session.scalar(
            select(Case)
            .options(selectinload(Case.events))
            .where(Case.year == code.year, Case.sequence == code.sequence, visible(scope))
        )
        if case is not None:
            return case
    return None


async def case_in_scope(session: AsyncSession, *, case_id: int, scope: Scope) -> Case | None:
    """A case by id with its history, if the scope sees it."""
    return await session.scalar(
        select(Case).options(selectinload(Case.events)).where(Case.id == case_id, visible(scope))
    )


@dataclass(frozen=True)
class Filters:
    """What a list is narrowed to; None: any. Without a status, the open ones."""

    neighbourhood_id: int | None = None
    domain_key: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Listed:
    """One line of a list."""

    case_id: int
    code: str
    status: str
    domain_key: str | None
    neighbourhood: str
    text: str
    since: datetime  # when it reached its agency (or was filed)
    overdue: bool


@dataclass(frozen=True)
class Page:
    """One page of a list, with the whole list's counts."""

    items: list[Listed]
    total: int
    overdue: int
    page: int
    pages: int


def agency_cases(agency_key: str) -> ColumnElement[bool]:
    """The cases an agency holds now."""
    return Case.agency_key == agency_key


def triage_queue(county_key: str) -> ColumnElement[bool]:
    """The county's cases waiting for a coordinator to pick their domain."""
    return and_(Case.status == CaseStatus.TRIAGE, _in_county([county_key]))


def _narrowed(base: ColumnElement[bool], filters: Filters, *, default_open: bool) -> list[Any]:
    """The conditions of a list: its base, then the filters."""
    where: list[Any] = [base]
    if filters.status is not None:
        where.append(Case.status == filters.status)
    elif default_open:
        where.append(Case.status.in_(OPEN_AT_AGENCY))
    if filters.neighbourhood_id is not None:
        where.append(Case.neighbourhood_id == filters.neighbourhood_id)
    if filters.domain_key is not None:
        where.append(Case.domain_key == filters.domain_key)
    return where


async def list_cases(
    session: AsyncSession,
    *,
    base: ColumnElement[bool],
    filters: Filters,
    settings: Settings,
    now: datetime,
    page: int,
    size: int,
    default_open: bool = True,
) -> Page:
    """A page of the cases matching `base` and `filters`: overdue ones first (by the working
    time of `[deadlines]`), each part oldest first."""
    rows = await session.execute(
        select(
            Case.id,
            Case.code,
            Case.status,
            Case.domain_key,
            Neighbourhood.name,
            Case.text_original,
            func.coalesce(Case.handed_over_at, Case.created_at),
        )
        .join(Neighbourhood, Neighbourhood.id == Case.neighbourhood_id)
        .where(*_narrowed(base, filters, default_open=default_open))
        .order_by(Case.id)
        .limit(LIST_BOUND)
    )
    check = OverdueCheck(settings.deadlines)
    found = [
        Listed(
            case_id,
            code,
            status,
            domain_key,
            place,
            text,
            as_utc(since),
            is_overdue(check.kinds(status=status, domain_key=domain_key, since=since, now=now)),
        )
        for case_id, code, status, domain_key, place, text, since in rows
    ]
    found.sort(key=lambda item: (not item.overdue, item.since, item.case_id))
    pages = max(1, -(-len(found) // size))
    page = min(max(page, 0), pages - 1)
    overdue = sum(item.overdue for item in found)
    return Page(found[page * size : (page + 1) * size], len(found), overdue, page, pages)


async def facets(
    session: AsyncSession, *, base: ColumnElement[bool], filters: Filters, what: str
) -> list[tuple[str, str, int]]:
    """The values one filter may take in a list as it is narrowed now (the other filters
    kept), with how many cases each has: (value, label, count). `what`: "n" (neighbourhood),
    "d" (domain) or "s" (status, over every status)."""
    if what == "s":
        narrowed = Filters(filters.neighbourhood_id, filters.domain_key, None)
        where = _narrowed(base, narrowed, default_open=False)
        rows = await session.execute(
            select(Case.status, func.count()).where(*where).group_by(Case.status)
        )
        counts = dict(rows.all())
        return [(s.value, s.value, counts[s]) for s in LIST_STATUSES if counts.get(s)]
    if what == "n":
        where = _narrowed(
            base, Filters(None, filters.domain_key, filters.status), default_open=True
        )
        places = await session.execute(
            select(Neighbourhood.id, Neighbourhood.name, func.count())
            .join(Case, Case.neighbourhood_id == Neighbourhood.id)
            .where(*where)
            .group_by(Neighbourhood.id, Neighbourhood.name)
            .order_by(func.count().desc(), Neighbourhood.name)
        )
        return [(str(key), str(name), int(count)) for key, name, count in places]
    where = _narrowed(
        base, Filters(filters.neighbourhood_id, None, filters.status), default_open=True
    )
    rows = await session.execute(
        select(Case.domain_key, func.count())
        .where(*where, Case.domain_key.is_not(None))
        .group_by(Case.domain_key)
        .order_by(func.count().desc())
    )
    return [(str(key), str(key), count) for key, count in rows]


async def search(
    session: AsyncSession, *, words: str, scope: Scope, limit: int = SEARCH_LIMIT
) -> tuple[list[Case], int]:
    """The newest cases within the scope whose description holds every word (spelling- and
    spacing-blind), at most `limit`, and how many there are in all."""
    terms = [search_form(term) for term in normalize(words).split() if search_form(term)][:8]
    if not terms:
        return [], 0
    searched: ColumnElement[str] = Case.text_normalized  # type: ignore[assignment]
    for typed, meant in SEARCH_BLIND:
        searched = func.replace(searched, typed, meant)
    where = [visible(scope), *(searched.contains(term, autoescape=True) for term in terms)]
    total = int(await session.scalar(select(func.count()).select_from(Case).where(*where)) or 0)
    found = await session.scalars(
        select(Case).where(*where).order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)
    )
    return list(found.all()), total
