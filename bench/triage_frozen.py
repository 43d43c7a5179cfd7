"""Scoring the triage candidates once on the frozen test split, after everything about them was
chosen by cross-validation on the training file (`bench/triage_cv.py`): the model shipped
before (n-grams and word list, trained on the first training lines), the same model trained on
today's training file, and the candidates without the word list. Each candidate's temperature
and threshold come from its own out-of-fold probabilities on the training file (the lowest
threshold at which at least 95 % of automatically routed training cases were right).

    .venv/bin/python -m bench.triage_frozen [--embeddings CACHE]

Prints one JSON line a candidate: macro-F1 overall and by style, top-2/top-3, and the share
routed automatically and its precision at the candidate's threshold. No texts are printed."""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.triage_cv import (
    OLD_LEXICON_COMMIT,
    ROOT,
    Embeddings,
    Fitter,
    embedding_fitter,
    ensemble_fitter,
    log_softmax,
    macro_f1,
    ngram_fitter,
    old_lexicon,
    out_of_fold,
    routing_table,
    temperature,
)
from bot.triage.model import DEFAULT_EXAMPLES, Example, read_examples

FROZEN = ROOT / "tests" / "data" / "triage_frozen.jsonl"


def first_training_lines() -> list[Example]:
    """The training file as it was when the old model shipped."""
    source = subprocess.run(
        ["git", "show", f"{OLD_LEXICON_COMMIT}:tests/data/triage_train.jsonl"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [Example(**json.loads(line)) for line in source.splitlines() if line.strip()]


def judge(
    name: str, fitter: Fitter, train: Sequence[Example], test: Sequence[Example], *,
    calibrate: bool = True, cv: dict[str, Any] | None = None,
) -> dict[str, object]:  # fmt: skip
    """Train on `train`, calibrate and pick the threshold on its folds (or take both from the
    candidate's `bench.triage_cv` line), score on `test`."""
    classes = sorted({e.domain for e in train})
    truth = np.array([classes.index(e.domain) for e in train])
    other = classes.index("other")
    if cv is not None:
        t = float(cv["temperature"])
        threshold = min((row[0] for row in cv["routing"] if row[2] >= 0.95), default=0.95)
    elif calibrate:
        folds = out_of_fold(fitter, train, 5)
        t = temperature(folds, truth)
        table = routing_table(np.exp(log_softmax(folds / t)), truth, other)
        threshold = min((row[0] for row in table if row[2] >= 0.95), default=0.95)
    else:  # as shipped before: raw probabilities, threshold 0.75
        t, threshold = 1.0, 0.75
    probabilities = np.exp(log_softmax(fitter(train)(test) / t))
    order = np.argsort(-probabilities, axis=1)
    predicted = [classes[i] for i in order[:, 0]]
    labels = [e.domain for e in test]
    tested = np.array([classes.index(d) for d in labels])
    by_style = {}
    for style in sorted({e.style or "?" for e in test}):
        picked = [i for i, e in enumerate(test) if (e.style or "?") == style]
        by_style[style] = round(
            macro_f1([labels[i] for i in picked], [predicted[i] for i in picked]), 3
        )
    table = routing_table(probabilities, tested, other)
    at = next(row for row in table if row[0] == threshold)
    return {
        "name": name,
        "macro_f1": round(macro_f1(labels, predicted), 4),
        "by_style": by_style,
        "top2": round(float((order[:, :2] == tested[:, None]).any(axis=1).mean()), 3),
        "top3": round(float((order[:, :3] == tested[:, None]).any(axis=1).mean()), 3),
        "temperature": round(t, 3),
        "threshold": threshold,
        "routed": at[1],
        "right": at[2],
        "routing": table,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Score each candidate once and print a JSON line for each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--embeddings", type=Path, default=None, help="cache file of vectors")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument(
        "--cv", type=Path, default=None, help="bench.triage_cv output: temperatures, thresholds"
    )
    arguments = parser.parse_args(argv)
    cv: dict[str, dict[str, Any]] = {}
    if arguments.cv:
        for line in arguments.cv.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                cv[row["name"]] = row
    train, test = read_examples(DEFAULT_EXAMPLES), read_examples(FROZEN)
    lexicon = old_lexicon()
    # (name, its name in bench.triage_cv's output, fitter, training lines, calibrated)
    candidates: list[tuple[str, str, Fitter, Sequence[Example], bool]] = [
        ("old_shipped", "", ngram_fitter(lexicon=lexicon, old_text=True), first_training_lines(),
         False),
        ("a_wordlist_new_data", "a_ngrams_wordlist_old",
         ngram_fitter(lexicon=lexicon, old_text=True), train, True),
        ("b_ngrams", "b_ngrams_c20", ngram_fitter(), train, True),
        ("b_ngrams_skeleton", "b_skeleton24_c20", ngram_fitter(skeleton=(2, 4)), train, True),
    ]  # fmt: skip
    if arguments.embeddings:
        embeddings = Embeddings(arguments.embeddings)
        candidates.append(
            (
                "c_ensemble_e5",
                "c_ensemble_w0.5",
                ensemble_fitter(ngram_fitter(skeleton=(2, 4)), embedding_fitter(embeddings), 0.5),
                train,
                True,
            )
        )
    for name, cv_name, fitter, rows, calibrate in candidates:
        if arguments.only and name not in arguments.only:
            continue
        result = judge(name, fitter, rows, test, calibrate=calibrate, cv=cv.get(cv_name))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
