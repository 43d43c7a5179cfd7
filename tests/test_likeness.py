"""How alike two reports read ("me too" offers and the agencies' duplicate hint): the sketch
that rules pairs out must never rule out one that is alike enough."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.services import duplicates
from bot.services.duplicates import SIMILARITY, jaccard, most_alike, pieces

# Persian letters, a few digits and spaces: texts that share many pieces by chance.
LETTERS = st.sampled_from(list("آابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی۰۱۲ ‌"))
TEXTS = st.text(LETTERS, max_size=400)


@pytest.fixture(params=[duplicates.SKETCH_BITS, 64], ids=["shipped sketch", "tiny sketch"])
def sketch_bits(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The sketch as shipped, and one of 64 bits, where most pieces collide."""
    monkeypatch.setattr(duplicates, "SKETCH_BITS", request.param)
    pieces.cache_clear()
    yield request.param
    pieces.cache_clear()


def brute_force(text: str, candidates: list[tuple[int, str]]) -> int | None:
    """The most alike candidate by comparing every pair in full (of equals, the last)."""
    best_key, best = None, SIMILARITY
    for key, other in candidates:
        score = jaccard(pieces(text).each, pieces(other).each)
        if score >= best:
            best_key, best = key, score
    return best_key


# The sketch's size is set once for all of a test's examples: the fixture need not run again.
ONE_SIZE = [HealthCheck.function_scoped_fixture]


@settings(max_examples=200, deadline=None, suppress_health_check=ONE_SIZE)
@given(a=TEXTS, b=TEXTS)
def test_the_sketch_never_counts_fewer_pieces_than_two_texts_share(
    sketch_bits: int, a: str, b: str
) -> None:
    first, second = pieces(a), pieces(b)
    assert first.most_shared_with(second) >= len(first.each & second.each)


@settings(max_examples=100, deadline=None, suppress_health_check=ONE_SIZE)
@given(text=TEXTS, others=st.lists(TEXTS, max_size=12), edits=st.lists(TEXTS, max_size=4))
def test_the_most_alike_is_the_one_a_full_comparison_finds(
    sketch_bits: int, text: str, others: list[str], edits: list[str]
) -> None:
    # Near copies of the text among the candidates, so that some are alike enough.
    near = [text[: len(text) // 2] + edit + text[len(text) // 2 :] for edit in edits]
    candidates = list(enumerate([*others, *near]))
    assert most_alike(text, candidates) == brute_force(text, candidates)
