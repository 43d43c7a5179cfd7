"""What an unsure triage offers the reporter to choose from, and how often that holds the truth.

Unsure is below `[triage] threshold`. The reporter is offered the likeliest domains an agency
acts on ("other" is never offered: «نمی‌دانم» sends a case to the coordinators just as "other"
does): always two, a third when the model gives it a real chance. `offer_coverage` measures on a
labelled set how often the true domain is among the choices offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.triage import OTHER, TriageResult

# At most this many domains are offered, and the third only at this probability or more.
MOST_CHOICES = 3
THIRD_AT_LEAST = 0.08


def offered_choices(result: TriageResult) -> tuple[str, ...]:
    """The domains to offer the reporter, likeliest first; fewer than two means: do not ask."""
    candidates = [domain for domain, _ in result.ranked if domain != OTHER]
    chances = dict(result.ranked)
    offered = candidates[:2]
    if len(candidates) > 2 and chances[candidates[2]] >= THIRD_AT_LEAST:
        offered.append(candidates[2])
    return tuple(offered[:MOST_CHOICES]) if len(offered) >= 2 else ()


@dataclass(frozen=True)
class Coverage:
    """How the offers did on a labelled set, over the texts triage was unsure of."""

    unsure: int  # texts below the threshold (the ones a reporter would be asked about)
    covered: int  # of those, offered with the true domain among the choices
    true_other: int  # of those, truly "other" (only «نمی‌دانم» is right for them)
    mean_offered: float  # choices offered on average
    total: int

    def line(self) -> str:
        """The summary line `mahalle triage eval` prints."""
        asked = self.unsure - self.true_other
        share = self.covered / asked if asked else 1.0
        return (
            f"offered_choices: unsure={self.unsure}/{self.total} "
            f"true_in_offer={self.covered}/{asked} ({share:.3f}) "
            f"true_other={self.true_other} mean_offered={self.mean_offered:.2f}"
        )


def offer_coverage(
    results: Sequence[TriageResult], truth: Sequence[str], threshold: float
) -> Coverage:
    """How often the true domain is among the choices offered when triage is unsure."""
    unsure = covered = true_other = offered_total = 0
    for result, domain in zip(results, truth, strict=True):
        if result.confidence >= threshold:
            continue
        unsure += 1
        offered = offered_choices(result)
        offered_total += len(offered)
        if domain == OTHER:
            true_other += 1
        elif domain in offered:
            covered += 1
    return Coverage(
        unsure=unsure,
        covered=covered,
        true_other=true_other,
        mean_offered=offered_total / unsure if unsure else 0.0,
        total=len(truth),
    )
