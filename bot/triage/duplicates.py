"""Near-duplicate texts between data files: a test split whose lines nearly repeat training
lines measures memory, not the model. Two texts are near duplicates when the Jaccard similarity
of their sets of character 5-grams, after folding spelling (normalised, ASCII digits, no ZWNJ,
lower case, one space), is above 0.8."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from bot.digits import ascii_digits
from bot.normalize import normalize

SIMILARITY = 0.8


def shingles(text: str) -> list[str]:
    """The text's distinct character 5-grams after folding (the whole text when shorter)."""
    folded = " ".join(ascii_digits(normalize(text)).replace("\u200c", "").lower().split())
    return sorted({folded[i : i + 5] for i in range(max(1, len(folded) - 4))})


def near_duplicate_pairs(
    first: Sequence[str], second: Sequence[str], similarity: float = SIMILARITY
) -> list[tuple[int, int]]:
    """(index in first, index in second) of every pair more similar than `similarity`."""
    if not first or not second:
        return []
    counter = CountVectorizer(analyzer=shingles, binary=True, dtype=np.float64)
    counter.fit(list(first) + list(second))
    a, b = counter.transform(first), counter.transform(second)
    shared = (a @ b.T).tocoo()
    sizes_a = np.asarray(a.sum(axis=1)).ravel()
    sizes_b = np.asarray(b.sum(axis=1)).ravel()
    union = sizes_a[shared.row] + sizes_b[shared.col] - shared.data
    close = shared.data / union > similarity
    return sorted(zip(shared.row[close].tolist(), shared.col[close].tolist(), strict=True))
