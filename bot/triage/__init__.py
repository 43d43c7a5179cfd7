"""Triage: which domain a report belongs to, how sure we are, and whether it is urgent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

OTHER = "other"


@dataclass(frozen=True)
class TriageResult:
    """A domain key, the model's probability for it, whether danger words were found, every
    domain ranked, and a second domain when the text also raises another domain's problem."""

    domain: str
    confidence: float
    urgent: bool = False
    # Every domain with its probability, likeliest first (what a resident may be offered).
    ranked: tuple[tuple[str, float], ...] = ()
    # A second domain the text also concerns (two problems in one message), or None.
    second: str | None = None


class Classifier(Protocol):
    """Anything that can place a report's text."""

    def classify(self, text: str) -> TriageResult:
        """The domain of one text."""
        ...
