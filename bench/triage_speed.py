"""Triage classifications a second, one process: in batches (as `mahalle triage eval` runs)
and one text at a time (as the bot classifies a confirmed report), on the training file's texts
written as residents write (the protocol part: median length about twice the held-out file's),
so the figure is not flattered by short texts.

    .venv/bin/python -m bench.triage_speed
"""

from __future__ import annotations

import statistics
import time

from bot.triage.model import DEFAULT_EXAMPLES, read_examples
from bot.triage.service import shipped_model

# The training file's first lines are short reports; the rest were written as residents write.
FIRST_LINES = 716


def main() -> None:
    """Time both ways over the texts written as residents write, repeated to ten thousand."""
    started = time.perf_counter()
    model = shipped_model()
    trained = time.perf_counter() - started
    written = [e.text for e in read_examples(DEFAULT_EXAMPLES)[FIRST_LINES:]]
    texts = (written * (10_000 // max(len(written), 1) + 1))[:10_000]
    started = time.perf_counter()
    model.classify_many(texts)
    batch = len(texts) / (time.perf_counter() - started)
    single_texts = texts[:2000]
    started = time.perf_counter()
    for text in single_texts:
        model.classify(text)
    elapsed = time.perf_counter() - started
    print(
        f"train_seconds={trained:.2f} texts={len(texts)} "
        f"median_chars={statistics.median(len(t) for t in written):.0f} "
        f"batch_per_second={batch:.0f} "
        f"single_per_second={len(single_texts) / elapsed:.0f} "
        f"single_ms={elapsed / len(single_texts) * 1000:.2f}"
    )


if __name__ == "__main__":
    main()
