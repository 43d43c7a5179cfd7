"""The triage model: character and word n-grams into a linear classifier, trained offline from
the labelled examples the project ships plus the corrections humans made. Its probabilities are
calibrated (one temperature over the classifier's scores, fitted on cross-validated
probabilities of the training file), so a confidence of 0.9 is right about nine times in ten;
every domain is ranked, and a second domain is named when the runner-up is likely enough.

The settings here (regularisation, n-gram ranges, temperature, the second-domain floor) were
chosen by stratified cross-validation on the training file alone (`bench/triage_cv.py`).

A trained model is kept as plain data (`TriageModel.to_arrays` and `from_arrays`): the terms
and settings as JSON, the weights as numbers, rebuilt into the same scikit-learn objects on
loading. Unpickling a file runs whatever code it names, so a file anyone could write would run
that code in every process that reloads the model; plain data can only be wrong, and is then
refused (`ModelFileError`)."""

from __future__ import annotations

import json
import re
import unicodedata
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
from bot.triage import OTHER, TriageResult
from bot.triage.rules import is_urgent
from bot.triage.scorer import DirectScorer

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_EXAMPLES = PROJECT_ROOT / "tests" / "data" / "triage_train.jsonl"
# What `to_arrays` writes; a file of another format is refused, not guessed at.
FORMAT = "mahalle-triage-model/2"
# The logistic regression's inverse regularisation (cross-validated macro-F1: 5 and 50 did
# a little worse than 20).
REGULARISATION = 20.0
# Probabilities are softmax(scores / TEMPERATURE): the temperature with the least log-loss on
# the out-of-fold scores of 5-fold cross-validation on the training file (below 1: the balanced,
# regularised classifier's raw probabilities were less sure than it was right).
TEMPERATURE = 0.63
# The runner-up is named as a second domain from this probability on (never "other"). Measured
# on the cross-validated training file (23 lines labelled with a second domain, and many that
# mention another domain's objects in passing): at every floor below 0.5 fewer than one named
# second domain in ten was the labelled one (0.30: 180 named, 2 right), and naming it per
# sentence did no better. Precision over recall: a second domain is named only when the
# runner-up is as likely as the first, which these data never showed.
SECOND_FLOOR = 0.5


class ModelFileError(ValueError):
    """A stored model that is not one `to_arrays` wrote for these feature settings."""


@dataclass(frozen=True)
class Example:
    """One labelled text; the shipped files also say how it is written (`style`) and, for a
    text raising two problems, the other one's domain (`second`)."""

    text: str
    domain: str
    style: str | None = None
    second: str | None = None


def read_examples(path: Path) -> list[Example]:
    """Labelled examples from a JSON-lines file of {"text": …, "domain": …}."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("domain"), str):
            raise ValueError(f'{path}:{number}: expected {{"text": …, "domain": …}}')
        style, second = row.get("style"), row.get("second")
        examples.append(
            Example(
                row["text"],
                row["domain"],
                style if isinstance(style, str) else None,
                second if isinstance(second, str) else None,
            )
        )
    return examples


# Emoji and other pictographs, their modifiers and joiners: they never decide a domain.
_PICTOGRAPHS = re.compile(r"[\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")


def features_text(text: str) -> str:
    """What the model sees: normalised, ZWNJ folded to nothing (colloquial typing omits it),
    lower-case Latin for Finglish, ASCII digits, no emoji or other symbols."""
    folded = ascii_digits(normalize(text)).replace("\u200c", "").lower()
    folded = "".join(c for c in _PICTOGRAPHS.sub("", folded) if unicodedata.category(c) != "So")
    return " ".join(folded.split())


# Persian letters and Finglish spellings onto one consonant skeleton, so that "madrese" and
# «مدرسه», "ab ghat shode" and «آب قطع شده» share features: the model learns Finglish from the
# Persian examples. Letters that sound alike share a symbol; vowels (and the letters that write
# them: ا و ی, a final ه) are left out, since Persian script mostly leaves them unwritten.
_PERSIAN_SKELETON = str.maketrans(
    {
        "ب": "b", "پ": "p", "ت": "t", "ط": "t", "ث": "s", "س": "s", "ص": "s", "ج": "j",
        "چ": "C", "ح": "h", "ه": "h", "خ": "X", "د": "d", "ذ": "z", "ز": "z", "ض": "z",
        "ظ": "z", "ر": "r", "ژ": "Z", "ش": "S", "غ": "Q", "ق": "Q", "ف": "f", "ک": "k",
        "گ": "g", "ل": "l", "م": "m", "ن": "n", "ا": "", "آ": "", "و": "", "ی": "", "ع": "",
        "ئ": "", "ء": "",
    }
)  # fmt: skip
_FINGLISH_PAIRS = [("kh", "X"), ("gh", "Q"), ("ch", "C"), ("sh", "S"), ("zh", "Z")]
_FINGLISH_SINGLE = str.maketrans(
    {"a": "", "e": "", "i": "", "o": "", "u": "", "y": "", "w": "", "v": "", "'": "", "c": "k",
     "q": "Q", "x": "X"}
)  # fmt: skip
_WORD = re.compile(r"\w+")


def skeleton(text: str) -> str:
    """The consonant skeleton of a model text, word by word (Persian and Finglish alike)."""
    words = []
    for word in _WORD.findall(text):
        if word.isascii():
            for pair, symbol in _FINGLISH_PAIRS:
                word = word.replace(pair, symbol)
            word = word.translate(_FINGLISH_SINGLE)
        else:
            word = (word[:-1] if word.endswith("ه") and len(word) > 1 else word).replace("و", "")
            word = word.translate(_PERSIAN_SKELETON)
        word = re.sub(r"(.)\1+", r"\1", word)
        word = word[:-1] if word.endswith("h") else word  # صبح "sob", کوچه "kuche"
        if word:
            words.append(word)
    return " ".join(words)


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
    temperature = header.get("temperature")
    if not isinstance(temperature, float) or not 0.01 <= temperature <= 100:
        raise ModelFileError("the temperature is not a number between 0.01 and 100")
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
    """Character n-grams within words, words and word pairs, and character n-grams of the
    consonant skeleton (Finglish and Persian alike), into a multinomial logistic regression."""
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
            (
                "skeleton",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 4),
                    sublinear_tf=True,
                    preprocessor=skeleton,
                    lowercase=False,
                ),
            ),
        ]
    )
    classifier = LogisticRegression(C=REGULARISATION, max_iter=3000, class_weight="balanced")
    return Pipeline([("features", features), ("classifier", classifier)])


class TriageModel:
    """Classifies report texts; safe to share between coroutines (prediction only reads)."""

    def __init__(self, pipeline: Pipeline, temperature: float = TEMPERATURE) -> None:
        self._pipeline = pipeline
        self.temperature = temperature
        self.labels: list[str] = [str(label) for label in pipeline.classes_]
        self._scorer = DirectScorer.of(pipeline, temperature)

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """The fitted parameters as plain arrays: settings, classes and terms as UTF-8 JSON,
        then each vectoriser's idf and the classifier's weights (for `numpy.savez`)."""
        described, arrays = [], {}
        for name, vectorizer in _vectorizers(self._pipeline):
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            described.append({"name": name, "settings": _settings(vectorizer), "terms": terms})
            arrays[f"idf_{name}"] = np.asarray(vectorizer.idf_, dtype=np.float64)
        classifier = self._pipeline.named_steps["classifier"]
        header = {
            "format": FORMAT,
            "classes": self.labels,
            "temperature": self.temperature,
            "features": described,
        }
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
        return cls(pipeline, header["temperature"])

    @classmethod
    def train(cls, examples: Iterable[Example]) -> TriageModel:
        """Fit a model on the examples (a second or two for a few hundred)."""
        rows = list(examples)
        pipeline = _pipeline()
        pipeline.fit([features_text(e.text) for e in rows], [e.domain for e in rows])
        return cls(pipeline)

    def classify(self, text: str) -> TriageResult:
        """The most likely domain of one text, its probability, every domain ranked, a second
        domain if any, and the urgency rule's verdict."""
        features = features_text(text)
        if self._scorer is None or _nothing_to_read(features):
            return self.classify_many([text])[0]
        return self._result(text, self._scorer.probabilities(features))

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Calibrated probabilities, one row a text, columns in the order of `labels`."""
        features = [features_text(t) for t in texts]
        scores = np.asarray(self._pipeline.decision_function(features))
        scores = scores.reshape(len(texts), -1) / self.temperature
        exponents = np.exp(scores - scores.max(axis=1, keepdims=True))
        result: NDArray[np.float64] = exponents / exponents.sum(axis=1, keepdims=True)
        if OTHER in self.labels:  # no letter or digit: nothing a model could read
            blank = [i for i, f in enumerate(features) if _nothing_to_read(f)]
            result[blank] = 0.0
            result[blank, self.labels.index(OTHER)] = 1.0
        return result

    def classify_many(self, texts: Sequence[str]) -> list[TriageResult]:
        """Classify a batch at once (much faster per text than one by one)."""
        if not texts:
            return []
        rows = self.probabilities(texts)
        return [self._result(text, row) for text, row in zip(texts, rows, strict=True)]

    def _result(self, text: str, row: NDArray[np.float64]) -> TriageResult:
        """The TriageResult of one text's probabilities."""
        ranked = tuple(
            (self.labels[i], float(row[i])) for i in sorted(range(len(row)), key=lambda i: -row[i])
        )
        return TriageResult(
            domain=ranked[0][0],
            confidence=ranked[0][1],
            urgent=is_urgent(text),
            ranked=ranked,
            second=second_domain(ranked),
        )


def _nothing_to_read(features: str) -> bool:
    """Whether the model's text has no letter or digit (emoji alone, punctuation alone)."""
    return not any(c.isalnum() for c in features)


def second_domain(ranked: Sequence[tuple[str, float]]) -> str | None:
    """The runner-up when it is likely enough and names an agency (not "other")."""
    if len(ranked) < 2 or ranked[0][0] == OTHER:
        return None
    domain, probability = ranked[1]
    return domain if probability >= SECOND_FLOOR and domain != OTHER else None
