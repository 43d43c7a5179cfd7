"""Measuring the triage model: per-domain precision, recall and F1, speed, how often the truth is
among the first two or three domains offered, the share routed automatically per threshold and
how many of those are right (overall and per writing style), and the second-domain rule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.triage import OTHER, TriageResult
from bot.triage.model import Example, TriageModel

# Thresholds `mahalle triage eval --thresholds` prints: 0.20 to 0.95 in steps of 0.05.
THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(4, 20))


@dataclass(frozen=True)
class Report:
    """What `mahalle triage eval` prints."""

    rows: list[tuple[str, float, float, float, int]]  # domain, precision, recall, f1, support
    accuracy: float
    macro_f1: float
    n: int
    per_second: float
    top2: float = 0.0
    top3: float = 0.0

    def lines(self) -> list[str]:
        """The table, the top-k line, then the one summary line tools parse."""
        out = [f"{'domain':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'n':>6}"]
        out += [f"{d:<14}{p:>10.3f}{r:>10.3f}{f:>10.3f}{s:>6}" for d, p, r, f, s in self.rows]
        out.append(f"top2={self.top2:.3f} top3={self.top3:.3f}")
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


def score(
    examples: Sequence[Example], results: Sequence[TriageResult], per_second: float = 0.0
) -> Report:
    """The report of results already computed for these examples."""
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
        per_second=per_second,
        top2=_top(examples, results, 2),
        top3=_top(examples, results, 3),
    )


def _top(examples: Sequence[Example], results: Sequence[TriageResult], k: int) -> float:
    """Share of texts whose true domain is among the first k of the ranking."""
    found = sum(
        e.domain in {d for d, _ in r.ranked[:k]} for e, r in zip(examples, results, strict=True)
    )
    return found / len(examples)


def evaluate(model: TriageModel, examples: Sequence[Example]) -> Report:
    """Score the model on labelled examples (timing the classification itself)."""
    started = time.perf_counter()
    results: list[TriageResult] = model.classify_many([e.text for e in examples])
    elapsed = time.perf_counter() - started
    return score(examples, results, len(examples) / elapsed if elapsed else float("inf"))


def routing(
    examples: Sequence[Example], results: Sequence[TriageResult], threshold: float
) -> tuple[float, float]:
    """(share routed automatically, share of those routed right) at one threshold: a case is
    routed when its domain is not "other" and its confidence is at least the threshold."""
    routed = [
        (r, e)
        for r, e in zip(results, examples, strict=True)
        if r.confidence >= threshold and r.domain != OTHER
    ]
    right = sum(1 for r, e in routed if r.domain == e.domain)
    return len(routed) / len(examples), right / len(routed) if routed else 1.0


def threshold_table(
    model: TriageModel, examples: Sequence[Example], thresholds: Sequence[float]
) -> list[tuple[float, float, float]]:
    """(threshold, share routed automatically, share of those routed right) for each threshold."""
    results = model.classify_many([e.text for e in examples])
    return [(t, *routing(examples, results, t)) for t in thresholds]


def threshold_lines(
    examples: Sequence[Example], results: Sequence[TriageResult], configured: float | None = None
) -> list[str]:
    """The routing table per threshold, overall then per style when the examples have one;
    the configured threshold's lines end with "<- configured"."""
    groups: list[tuple[str, list[int]]] = [("", list(range(len(examples))))]
    for style in sorted({e.style for e in examples if e.style}):
        groups.append((f"style={style} ", [i for i, e in enumerate(examples) if e.style == style]))
    out = []
    for prefix, picked in groups:
        chosen = [examples[i] for i in picked]
        got = [results[i] for i in picked]
        for threshold in THRESHOLDS:
            routed, right = routing(chosen, got, threshold)
            mark = " <- configured" if configured is not None and threshold == configured else ""
            out.append(
                f"{prefix}threshold={threshold:.2f} routed={routed:.3f} right={right:.3f} "
                f"n={len(chosen)}{mark}"
            )
    return out


def second_line(examples: Sequence[Example], results: Sequence[TriageResult]) -> str | None:
    """How often a second domain was named and how often it was the labelled one, on files
    that label second domains; None for files that label none."""
    if not any(e.second for e in examples):
        return None
    named = [(e, r) for e, r in zip(examples, results, strict=True) if r.second]
    right = sum(1 for e, r in named if r.second == e.second)
    labelled = sum(1 for e in examples if e.second)
    return (
        f"second: labelled={labelled} named={len(named)} right={right} "
        f"precision={right / len(named) if named else 1.0:.3f} "
        f"recall={right / labelled:.3f}"
    )
