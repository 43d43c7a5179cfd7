"""The fitted pipeline's probabilities for one text, computed directly from its vocabulary, idf
and coefficients. sklearn's `predict_proba` checks and converts its input on every call: 2–3 ms
for one text, most of a report's placing and all of it on the event loop; this takes ~0.35 ms.
The same arithmetic (tf-idf with sublinear tf and l2 norm per vectoriser, then a softmax of the
scores over the model's temperature), so the results agree with sklearn's to rounding;
`tests/test_triage.py` holds them to it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

# term → (column in the classifier's coefficients, idf)
Vocabulary = dict[str, tuple[int, float]]


class DirectScorer:
    """Class probabilities for one text, as the pipeline's `predict_proba` would give them."""

    def __init__(
        self,
        parts: list[tuple[Callable[[str], list[str]], Vocabulary]],
        classifier: LogisticRegression,
        temperature: float,
    ) -> None:
        self._parts = parts
        self._temperature = temperature
        self._coefficients: NDArray[np.float64] = classifier.coef_
        self._intercepts: NDArray[np.float64] = classifier.intercept_

    @classmethod
    def of(cls, pipeline: Pipeline, temperature: float = 1.0) -> DirectScorer | None:
        """A scorer for this pipeline, or None where it is built in a way this does not follow."""
        classifier = pipeline.named_steps["classifier"]
        if not isinstance(classifier, LogisticRegression) or classifier.coef_.shape[0] < 3:
            return None  # two classes use a sigmoid, not a softmax
        parts, offset = [], 0
        for _, vectorizer in pipeline.named_steps["features"].transformer_list:
            if not _followed(vectorizer):
                return None
            vocabulary = {
                term: (offset + column, float(vectorizer.idf_[column]))
                for term, column in vectorizer.vocabulary_.items()
            }
            parts.append((vectorizer.build_analyzer(), vocabulary))
            offset += len(vocabulary)
        return cls(parts, classifier, temperature)

    def probabilities(self, text: str) -> NDArray[np.float64]:
        """One probability a class, in the classifier's order of classes."""
        columns: list[int] = []
        weights: list[float] = []
        for analyze, vocabulary in self._parts:
            counts = Counter(term for term in analyze(text) if term in vocabulary)
            values = [(1.0 + math.log(n)) * vocabulary[term][1] for term, n in counts.items()]
            norm = math.sqrt(sum(v * v for v in values)) or 1.0
            columns.extend(vocabulary[term][0] for term in counts)
            weights.extend(v / norm for v in values)
        scores = self._coefficients[:, columns] @ np.array(weights) + self._intercepts
        scores = scores / self._temperature
        exponents = np.exp(scores - scores.max())
        result: NDArray[np.float64] = exponents / exponents.sum()
        return result


def _followed(vectorizer: object) -> bool:
    """Whether the vectoriser weighs terms the way `probabilities` does."""
    return (
        isinstance(vectorizer, TfidfVectorizer)
        and vectorizer.use_idf
        and vectorizer.sublinear_tf
        and vectorizer.norm == "l2"
        and not vectorizer.binary
    )
