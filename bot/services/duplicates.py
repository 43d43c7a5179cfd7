"""A hint for agencies: an open case in the same place and domain that reads much the same."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Case, CaseStatus

Key = TypeVar("Key")

WINDOW = timedelta(days=14)
SIMILARITY = 0.45
OPEN = (
    CaseStatus.TRIAGE,
    CaseStatus.FORWARDED,
    CaseStatus.ACCEPTED,
    CaseStatus.NEEDS_INFO,
    CaseStatus.REOPENED,
)


# Bits in a text's sketch of its pieces (a power of two).
SKETCH_BITS = 4096


@dataclass(frozen=True, slots=True)
class Pieces:
    """A text's three-letter pieces, and a sketch of them: one bit of SKETCH_BITS set for each
    piece. Two sketches share at least the bits of the pieces their texts share, so the shared
    bits bound how alike two texts can be, for the cost of one AND."""

    each: frozenset[str]
    sketch: int


@functools.lru_cache(maxsize=1024)
def pieces(text: str) -> Pieces:
    """A text's pieces. Remembered for the last texts asked about: every new report is
    compared with up to 200 open cases' texts of its neighbourhood, at confirming and again at
    placing, and taking a text apart costs several times comparing two."""
    squeezed = " ".join(text.split())
    each = frozenset(squeezed[i : i + 3] for i in range(max(len(squeezed) - 2, 1)))
    sketch = 0
    for piece in each:
        sketch |= 1 << (hash(piece) & (SKETCH_BITS - 1))
    return Pieces(each, sketch)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two sets of pieces."""
    # |a ∪ b| from the sizes: building the union set would cost as much again.
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a and b else 0.0


def most_alike(text: str, candidates: Iterable[tuple[Key, str]]) -> Key | None:
    """The key of the candidate text most like `text`, if one is at least SIMILARITY alike
    (of equals, the last)."""
    wanted = pieces(text)
    best_key, best = None, SIMILARITY
    for key, other in candidates:
        theirs = pieces(other)
        sizes = len(wanted.each) + len(theirs.each)
        # The most pieces the two can share; alike at most most / (sizes - most).
        most = min((wanted.sketch & theirs.sketch).bit_count(), len(wanted.each), len(theirs.each))
        if most / (sizes - most) < best:
            continue
        score = jaccard(wanted.each, theirs.each)
        if score >= best:
            best_key, best = key, score
    return best_key


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
    # A storm brings up to 200 candidates.
    found = await session.execute(query)
    return most_alike(case.text_normalized, ((code, text) for code, text in found))
