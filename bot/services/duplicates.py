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
    piece. The pieces two texts share set bits both sketches have, two pieces at times the same
    bit; so the bits both have, plus the fewer pieces either text lost to such collisions
    (`lost`), bound the pieces shared, and how alike the two can be, for the cost of one AND."""

    each: frozenset[str]
    sketch: int
    lost: int  # pieces whose bit another piece of the same text had set already

    def most_shared_with(self, other: Pieces) -> int:
        """No fewer than the pieces the two texts share."""
        bits = (self.sketch & other.sketch).bit_count() + min(self.lost, other.lost)
        return min(bits, len(self.each), len(other.each))


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
    return Pieces(each, sketch, len(each) - sketch.bit_count())


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
        most = wanted.most_shared_with(theirs)  # alike at most most / (both sizes − most)
        if most / (len(wanted.each) + len(theirs.each) - most) < best:
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
