"""The triage model: character and word n-grams into a linear classifier, trained offline from
the labelled examples the project ships plus the corrections humans made.

A trained model is kept as plain data (`TriageModel.to_arrays` and `from_arrays`): the terms
and settings as JSON, the weights as numbers, rebuilt into the same scikit-learn objects on
loading. Unpickling a file runs whatever code it names, so a file anyone could write would run
that code in every process that reloads the model; plain data can only be wrong, and is then
refused (`ModelFileError`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import NDArray
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
# What `to_arrays` writes; a file of another format is refused, not guessed at.
FORMAT = "mahalle-triage-model/1"


class ModelFileError(ValueError):
    """A stored model that is not one `to_arrays` wrote for these feature settings."""


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


def _vectorizers(pipeline: Pipeline) -> list[tuple[str, TfidfVectorizer]]:
    """The pipeline's named vectorisers, in the order their columns come."""
    return list(pipeline.named_steps["features"].transformer_list)


def _settings(vectorizer: TfidfVectorizer) -> dict[str, object]:
    """A vectoriser's settings that can be written as JSON (the rest are None or types)."""
    plain = (str, int, float, bool, tuple)
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in sorted(vectorizer.get_params().items())
        if isinstance(value, plain)
    }


def _header(arrays: Mapping[str, NDArray[Any]]) -> dict[str, Any]:
    """The file's JSON part, checked for shape: classes and each feature's unique terms."""
    expected = {"header", "coef", "intercept"} | {f"idf_{n}" for n, _ in _vectorizers(_pipeline())}
    if set(arrays) != expected:
        raise ModelFileError(f"expected the arrays {sorted(expected)}, found {sorted(arrays)}")
    raw = arrays["header"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError("the header is not UTF-8 bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as error:
        raise ModelFileError(f"the header is not JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"not a {FORMAT} file")
    classes, features = header.get("classes"), header.get("features")
    if not _unique_strings(classes) or len(classes) < 3 or not isinstance(features, list):
        raise ModelFileError("the classes are not three or more distinct names")
    for part in features:
        if not isinstance(part, dict) or not _unique_strings(part.get("terms")):
            raise ModelFileError("each feature needs a list of distinct terms")
    return header


def _unique_strings(value: object) -> TypeGuard[list[str]]:
    """Whether a JSON value is a list of distinct strings."""
    return (
        isinstance(value, list)
        and all(isinstance(item, str) for item in value)
        and len(set(value)) == len(value)
    )


def _numbers(
    arrays: Mapping[str, NDArray[Any]], name: str, shape: tuple[int, ...]
) -> NDArray[np.float64]:
    """A float64 array of the given shape, every value finite."""
    array = arrays[name]
    if array.dtype != np.float64 or array.shape != shape:
        raise ModelFileError(f"{name}: expected float64 {shape}, found {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise ModelFileError(f"{name}: not every value is a finite number")
    return array


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

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """The fitted parameters as plain arrays: settings, classes and terms as UTF-8 JSON,
        then each vectoriser's idf and the classifier's weights (for `numpy.savez`)."""
        described, arrays = [], {}
        for name, vectorizer in _vectorizers(self._pipeline):
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            described.append({"name": name, "settings": _settings(vectorizer), "terms": terms})
            arrays[f"idf_{name}"] = np.asarray(vectorizer.idf_, dtype=np.float64)
        classifier = self._pipeline.named_steps["classifier"]
        header = {"format": FORMAT, "classes": self.labels, "features": described}
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        arrays["coef"] = np.asarray(classifier.coef_, dtype=np.float64)
        arrays["intercept"] = np.asarray(classifier.intercept_, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]]) -> TriageModel:
        """The model `to_arrays` described, rebuilt; ModelFileError for anything else."""
        header = _header(arrays)
        pipeline = _pipeline()
        offset = 0
        for (name, vectorizer), part in zip(
            _vectorizers(pipeline), header["features"], strict=True
        ):
            terms = part["terms"]
            if part["name"] != name or part["settings"] != _settings(vectorizer):
                raise ModelFileError(f"features {part['name']!r} were built another way")
            idf = _numbers(arrays, f"idf_{name}", (len(terms),))
            vectorizer.vocabulary_ = {term: column for column, term in enumerate(terms)}
            vectorizer.fixed_vocabulary_ = False
            vectorizer.idf_ = idf
            offset += len(terms)
        classes = header["classes"]
        classifier = pipeline.named_steps["classifier"]
        classifier.coef_ = _numbers(arrays, "coef", (len(classes), offset))
        classifier.intercept_ = _numbers(arrays, "intercept", (len(classes),))
        classifier.classes_ = np.array(classes)
        classifier.n_features_in_ = offset
        return cls(pipeline)

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
        return self._result(text, self._scorer.probabilities(features_text(text)))

    def _result(self, text: str, row: NDArray[np.float64]) -> TriageResult:
        """One text's verdict from its probabilities, every domain ranked."""
        best = int(row.argmax())
        ranked = tuple(
            sorted(((label, float(p)) for label, p in zip(self.labels, row, strict=True)),
                   key=lambda pair: -pair[1])
        )  # fmt: skip
        return TriageResult(self.labels[best], float(row[best]), is_urgent(text), ranked)

    def classify_many(self, texts: Sequence[str]) -> list[TriageResult]:
        """Classify a batch at once (much faster per text than one by one)."""
        probabilities = self._pipeline.predict_proba([features_text(t) for t in texts])
        results = []
        for text, row in zip(texts, probabilities, strict=True):
            results.append(self._result(text, row))
        return results
