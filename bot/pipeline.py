"""Steps that span services: placing a submitted case, and finding cases a crash left behind."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bot.jalali import utcnow
from bot.runtime import Runtime
from bot.services.routing import route_new_case
from bot.triage import TriageResult
from models.entities import Case, CaseStatus

# A case still "submitted" this long after creation was left behind by a crash mid-confirm.
STRANDED_AFTER = timedelta(minutes=1)


async def route_submitted(
    runtime: Runtime, case_id: int, *, now: datetime | None = None
) -> TriageResult | None:
    """Classify a submitted case and send it to its agency or to triage, in one transaction."""
    now = now or utcnow()
    async with runtime.session_factory() as session:
        case = await session.get(Case, case_id)
        if case is None or case.status != CaseStatus.SUBMITTED:
            return None
        result = runtime.triage.classify(case.text_original)
        await route_new_case(
            session,
            case=case,
            result=result,
            settings=runtime.settings,
            cards=runtime.card_renderer,
            now=now,
        )
        await session.commit()
    runtime.wake_outbox()
    return result


async def route_stranded(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Route every case a crash left in "submitted"; how many there were."""
    now = now or utcnow()
    async with runtime.session_factory() as session:
        stranded = await session.scalars(
            select(Case.id).where(
                Case.status == CaseStatus.SUBMITTED, Case.created_at <= now - STRANDED_AFTER
            )
        )
        case_ids = list(stranded)
    for case_id in case_ids:
        await route_submitted(runtime, case_id, now=now)
    return len(case_ids)
