"""Measuring the triage model: per-domain precision, recall and F1, speed, and a threshold."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.triage import TriageResult
from bot.triage.model import Example, TriageModel


@dataclass(frozen=True)
class Report:
    """What `mahalle triage eval` prints."""

    rows: list[tuple[str, float, float, float, int]]  # domain, precision, recall, f1, support
    accuracy: float
    macro_f1: float
    n: int
    per_second: float

    def lines(self) -> list[str]:
        """The table, then the one summary line tools parse."""
        out = [f"{'domain':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'n':>6}"]
        out += [f"{d:<14}{p:>10.3f}{r:>10.3f}{f:>10.3f}{s:>6}" for d, p, r, f, s in self.rows]
        out.append(
            f"accuracy={self.accuracy:.3f} macro_f1={self.macro_f1:.3f} "
            f"n={self.n} per_second={self.per_second:.0f}"
        )
        return out


def _scores(
    truth: Sequence[str], predicted: Sequence[str], domain: str
) -> tuple[float, float, float, int]:
    hits = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p == domain)
    said = sum(1 for p in predicted if p == domain)
    support = sum(1 for t in truth if t == domain)
    precision = hits / said if said else 0.0
    recall = hits / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, support


def evaluate(model: TriageModel, examples: Sequence[Example]) -> Report:
    """Score the model on labelled examples (timing the classification itself)."""
    started = time.perf_counter()
    results: list[TriageResult] = model.classify_many([e.text for e in examples])
    elapsed = time.perf_counter() - started
    truth = [e.domain for e in examples]
    predicted = [r.domain for r in results]
    domains = sorted(set(truth) | set(predicted))
    rows = [(d, *_scores(truth, predicted, d)) for d in domains]
    present = [row for row in rows if row[4] > 0]
    return Report(
        rows=rows,
        accuracy=sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth),
        macro_f1=sum(row[3] for row in present) / len(present),
        n=len(truth),
        per_second=len(truth) / elapsed if elapsed else float("inf"),
    )


def threshold_table(
    model: TriageModel, examples: Sequence[Example], thresholds: Sequence[float]
) -> list[tuple[float, float, float]]:
    """(threshold, share routed automatically, share of those routed right) for each threshold."""
    results = model.classify_many([e.text for e in examples])
    table = []
    for threshold in thresholds:
        routed = [
            (r, e)
            for r, e in zip(results, examples, strict=True)
            if r.confidence >= threshold and r.domain != "other"
        ]
        right = sum(1 for r, e in routed if r.domain == e.domain)
        table.append(
            (threshold, len(routed) / len(examples), right / len(routed) if routed else 1.0)
        )
    return table
