"""Triage: which domain a report belongs to, how sure we are, and whether it is urgent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

OTHER = "other"


@dataclass(frozen=True)
class TriageResult:
    """A domain key, the model's probability for it, and whether danger words were found."""

    domain: str
    confidence: float
    urgent: bool = False


class Classifier(Protocol):
    """Anything that can place a report's text."""

    def classify(self, text: str) -> TriageResult:
        """The domain of one text."""
        ...
