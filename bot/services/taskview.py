"""Reading a case's tasks for what others show: the lead agency's card lines and the figures of
/stats. Apart from bot/services/tasks.py so that cards and statistics can read tasks without
depending on how tasks are worked."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Agency, Case, CaseTask, Domain, TaskStatus

# A task whose agency took its part on: the case was worked by both.
JOINED = (TaskStatus.ACCEPTED, TaskStatus.DONE)


async def card_lines(session: AsyncSession, case_id: int) -> tuple[tuple[str, str], ...]:
    """(asked agency's name, task status) of each task of the case, oldest first."""
    rows = await session.execute(
        select(Agency.name, CaseTask.status)
        .join(Agency, Agency.key == CaseTask.to_agency_key)
        .where(CaseTask.case_id == case_id)
        .order_by(CaseTask.id)
    )
    return tuple((str(name), str(status)) for name, status in rows)


async def cooperation_figures(
    session: AsyncSession, in_period: tuple[Any, ...]
) -> tuple[int, list[tuple[str, int]]]:
    """How many cases of the period more than one agency worked on (an asked agency took its
    part on), and which pairs of agencies worked together, most often first ("A + B", count)."""
    shared = await session.scalar(
        select(func.count(func.distinct(CaseTask.case_id)))
        .join(Case, Case.id == CaseTask.case_id)
        .where(*in_period, CaseTask.status.in_(JOINED))
    )
    names = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
    pairs: Counter[tuple[str, str]] = Counter()
    rows = await session.execute(
        select(
            CaseTask.case_id,
            func.coalesce(CaseTask.from_agency_key, Case.agency_key),
            CaseTask.to_agency_key,
        )
        .join(Case, Case.id == CaseTask.case_id)
        .where(*in_period, CaseTask.status.in_(JOINED))
        .distinct()
    )
    for _, lead, asked in rows:  # each case counts once for each pair
        if lead is None or lead == asked:
            continue
        first, second = sorted((names.get(lead, lead), names.get(asked, asked)))
        pairs[(first, second)] += 1
    return int(shared or 0), [(f"{a} + {b}", n) for (a, b), n in pairs.most_common(5)]


async def second_agency_to_ask(session: AsyncSession, case: Case) -> tuple[str, str] | None:
    """(key, name) of the agency of the second domain the report also concerns, when the lead
    may ask it in one press: the county's agency of that kind, reachable, not the lead, and not
    asked already with its part still open."""
    if not case.second_domain_key or case.second_domain_key == case.domain_key:
        return None
    domain = await session.get(Domain, case.second_domain_key)
    lead = await session.get(Agency, case.agency_key) if case.agency_key else None
    if domain is None or lead is None or not domain.agency_kind:
        return None
    agency = await session.scalar(
        select(Agency).where(
            Agency.county_key == lead.county_key, Agency.kind == domain.agency_kind
        )
    )
    if agency is None or agency.chat_id is None or agency.key == lead.key:
        return None
    busy = await session.scalar(
        select(func.count())
        .select_from(CaseTask)
        .where(
            CaseTask.case_id == case.id,
            CaseTask.to_agency_key == agency.key,
            CaseTask.status.in_((TaskStatus.ASKED, TaskStatus.ACCEPTED)),
        )
    )
    return None if busy else (agency.key, agency.name)
