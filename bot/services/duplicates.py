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


def trigrams(text: str) -> set[str]:
    squeezed = " ".join(text.split())
    return {squeezed[i : i + 3] for i in range(max(len(squeezed) - 2, 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two trigram sets."""
    # |a ∪ b| from the sizes: building the union set would cost as much again.
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a and b else 0.0


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
    # A storm brings up to 200 candidates: the new text's trigrams are taken once, not per pair.
    wanted = trigrams(case.text_normalized)
    for code, text in await session.execute(query):
        score = jaccard(wanted, trigrams(text))
        if score >= best:
            best_code, best = code, score
    return best_code
