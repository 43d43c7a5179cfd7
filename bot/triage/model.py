"""The triage model: character and word n-grams into a linear classifier, trained offline from
the labelled examples the project ships plus the corrections humans made."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from bot.digits import ascii_digits
from bot.normalize import normalize
from bot.triage import TriageResult
from bot.triage.lexicon import lexicon_tokens
from bot.triage.rules import is_urgent
from bot.triage.scorer import DirectScorer

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_EXAMPLES = PROJECT_ROOT / "tests" / "data" / "triage_train.jsonl"


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    domain: str


def read_examples(path: Path) -> list[Example]:
    """Labelled examples from a JSON-lines file of {"text": …, "domain": …}."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("domain"), str):
            raise ValueError(f'{path}:{number}: expected {{"text": …, "domain": …}}')
        examples.append(Example(row["text"], row["domain"]))
    return examples


def features_text(text: str) -> str:
    """What the model sees: normalised, ZWNJ folded to nothing (colloquial typing omits it),
    lower-case Latin for Finglish, ASCII digits."""
    folded = ascii_digits(normalize(text)).replace("\u200c", "").lower()
    return f"{folded} {lexicon_tokens(folded)}"


def _pipeline() -> Pipeline:
    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=(1, 2),
                    sublinear_tf=True,
                    token_pattern=r"(?u)\b\w+\b",
                ),
            ),
        ]
    )
    classifier = LogisticRegression(C=20.0, max_iter=3000, class_weight="balanced")
    return Pipeline([("features", features), ("classifier", classifier)])


class TriageModel:
    """Classifies report texts; safe to share between coroutines (prediction only reads)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self.labels: list[str] = [str(label) for label in pipeline.classes_]
        self._scorer = DirectScorer.of(pipeline)

    def __getstate__(self) -> dict[str, object]:
        return {"_pipeline": self._pipeline}  # the scorer is rebuilt on loading

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["_pipeline"])  # type: ignore[misc]

    @classmethod
    def train(cls, examples: Iterable[Example]) -> TriageModel:
        """Fit a model on the examples (a second or two for a few hundred)."""
        rows = list(examples)
        pipeline = _pipeline()
        pipeline.fit([features_text(e.text) for e in rows], [e.domain for e in rows])
        return cls(pipeline)

    def classify(self, text: str) -> TriageResult:
        """The most likely domain of one text, its probability, and the urgency rule's verdict."""
        if self._scorer is None:
            return self.classify_many([text])[0]
        row = self._scorer.probabilities(features_text(text))
        best = int(row.argmax())
        return TriageResult(self.labels[best], float(row[best]), is_urgent(text))

    def classify_many(self, texts: Sequence[str]) -> list[TriageResult]:
        """Classify a batch at once (much faster per text than one by one)."""
        probabilities = self._pipeline.predict_proba([features_text(t) for t in texts])
        results = []
        for text, row in zip(texts, probabilities, strict=True):
            best = int(row.argmax())
            results.append(TriageResult(self.labels[best], float(row[best]), is_urgent(text)))
        return results
