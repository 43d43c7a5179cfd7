"""The triage data files: every line labelled with a known domain and style, and no test split
(held-out, blind, frozen) nearly repeating another file's lines, so what they measure is the
model on words it never saw, not its memory."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.triage.duplicates import near_duplicate_pairs, shingles
from bot.triage.model import read_examples

DATA = Path(__file__).parent / "data"
SPLITS = ["triage_train", "triage_heldout", "triage_blind", "triage_frozen"]
DOMAINS = {
    "municipal", "utilities", "security", "social", "family", "cultural", "health", "welfare",
    "education", "participation", "other",
}  # fmt: skip
STYLES = {"formal", "colloquial", "arabic_letters", "finglish", "mixed"}


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(SPLITS, 2)))
def test_no_near_duplicates_across_splits(first: str, second: str) -> None:
    """Character 5-gram Jaccard above 0.8 between two files fails (line numbers only: the
    frozen split's texts are not to be read while working on the model)."""
    one = [e.text for e in read_examples(DATA / f"{first}.jsonl")]
    other = [e.text for e in read_examples(DATA / f"{second}.jsonl")]
    pairs = near_duplicate_pairs(one, other)
    assert pairs == [], [f"{first}:{i + 1} ~ {second}:{j + 1}" for i, j in pairs[:20]]


def test_near_duplicates_are_found_through_spelling_and_spacing() -> None:
    text = "از دیشب بوی تخم‌مرغ گندیده تو راه‌پله پیچیده و کسی جواب نمیده"
    typed = "از ديشب بوي تخممرغ گنديده  تو راهپله پيچيده و كسي جواب نميده!"
    assert near_duplicate_pairs([text], ["چیز دیگری", typed]) == [(0, 1)]
    assert near_duplicate_pairs([text], ["آب محله از صبح قطع است"]) == []
    assert shingles("🙂") == ["🙂"]


@pytest.mark.parametrize("split", SPLITS)
def test_every_line_has_a_known_domain_and_style(split: str) -> None:
    examples = read_examples(DATA / f"{split}.jsonl")
    assert {e.domain for e in examples} == DOMAINS
    if split in ("triage_train", "triage_frozen"):
        assert {e.style for e in examples} <= STYLES
    assert all(e.second in DOMAINS - {e.domain} for e in examples if e.second is not None)


def test_the_training_file_has_no_repeated_lines() -> None:
    texts = [e.text for e in read_examples(DATA / "triage_train.jsonl")]
    assert [(i, j) for i, j in near_duplicate_pairs(texts, texts) if i < j] == []
