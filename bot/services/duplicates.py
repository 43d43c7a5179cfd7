"""A hint for agencies: an open case in the same place and domain that reads much the same."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Case, CaseStatus

WINDOW = timedelta(days=14)
SIMILARITY = 0.45
OPEN = (
    CaseStatus.TRIAGE,
    CaseStatus.FORWARDED,
    CaseStatus.ACCEPTED,
    CaseStatus.NEEDS_INFO,
    CaseStatus.REOPENED,
)


def _trigrams(text: str) -> set[str]:
    squeezed = " ".join(text.split())
    return {squeezed[i : i + 3] for i in range(max(len(squeezed) - 2, 1))}


def similarity(first: str, second: str) -> float:
    """Jaccard similarity of character trigrams of two normalised texts."""
    a, b = _trigrams(first), _trigrams(second)
    return len(a & b) / len(a | b) if a and b else 0.0


async def find_duplicate(
    session: AsyncSession, *, case: Case, domain_key: str, now: datetime
) -> str | None:
    """The code of the most similar open case, if one is similar enough."""
    query = (
        select(Case.code, Case.text_normalized)
        .where(
            Case.neighbourhood_id == case.neighbourhood_id,
            Case.domain_key == domain_key,
            Case.status.in_(OPEN),
            Case.created_at >= now - WINDOW,
            Case.id != case.id,
        )
        .order_by(Case.id.desc())
        .limit(200)
    )
    best_code, best = None, SIMILARITY
    for code, text in await session.execute(query):
        score = similarity(case.text_normalized, text)
        if score >= best:
            best_code, best = code, score
    return best_code
