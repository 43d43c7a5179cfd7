"""Triage classifications a second, one process: in batches (as `mahalle triage eval` runs)
and one text at a time (as the bot classifies a confirmed report).

    .venv/bin/python -m bench.triage_speed
"""

from __future__ import annotations

import time
from pathlib import Path

from bot.triage.model import read_examples
from bot.triage.service import shipped_model

HELD_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "triage_heldout.jsonl"


def main() -> None:
    """Time both ways over the held-out texts, repeated to about ten thousand."""
    started = time.perf_counter()
    model = shipped_model()
    trained = time.perf_counter() - started
    texts = [e.text for e in read_examples(HELD_OUT)] * 60
    started = time.perf_counter()
    model.classify_many(texts)
    batch = len(texts) / (time.perf_counter() - started)
    single_texts = texts[:2000]
    started = time.perf_counter()
    for text in single_texts:
        model.classify(text)
    elapsed = time.perf_counter() - started
    print(
        f"train_seconds={trained:.2f} texts={len(texts)} batch_per_second={batch:.0f} "
        f"single_per_second={len(single_texts) / elapsed:.0f} "
        f"single_ms={elapsed / len(single_texts) * 1000:.2f}"
    )


if __name__ == "__main__":
    main()
