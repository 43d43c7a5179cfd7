"""Building the shipped training file, tests/data/triage_train.jsonl: the lines it held before
the protocol of tests/data/README.md (each given the style its spelling shows) plus the lines
written to that protocol, without exact or near duplicates, and without any line that nearly
repeats a line of a test split (held-out, blind, frozen).

    .venv/bin/python -m bench.triage_data NEW.jsonl [NEW.jsonl …]

Near duplicates: normalised character 5-grams with a Jaccard similarity above 0.8 (the same
measure tests/test_triage_data.py holds the splits to). Prints counts, never texts of the
frozen split."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bot.triage.duplicates import near_duplicate_pairs

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TRAIN = DATA / "triage_train.jsonl"
TEST_SPLITS = [
    DATA / "triage_heldout.jsonl",
    DATA / "triage_blind.jsonl",
    DATA / "triage_frozen.jsonl",
]
# The training file as it was before the protocol: its lines are kept, with a style added.
BEFORE = "19b6572"
DOMAINS = {
    "municipal", "utilities", "security", "social", "family", "cultural", "health", "welfare",
    "education", "participation", "other",
}  # fmt: skip
STYLES = {"formal", "colloquial", "arabic_letters", "finglish", "mixed"}

_PERSIAN = re.compile(r"[\u0600-\u06ff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_ARABIC_ONLY = re.compile(r"[يكةۀ\u0660-\u0669]")
# Spoken Tehrani forms that formal writing does not use: verbs ending in -ه (میکنه، نداره),
# the spoken vowel -ون (خونه، خیابون، اون), and a few words.
_COLLOQUIAL = re.compile(
    r"(?<!\w)(?:ن?می\u200c?\w{2,}ه|ن?می\u200c?\w{2,}ن|(?:ب|ن|می\u200c?|نمی\u200c?)?(?:کنه|شه|داره|باشه|بره|بیاد|میاد)|"
    r"خون\w*|خیابون\w*|اون|اونا|اونجا|اینا|ایشون|یه|دیگه|چیکار|واسه|آخه|اخه|هیچکی|"
    r"\w+مون|\w+شون|\w*اومد\w*|هستن|نیستن|ندارن|دارن|کنین|بدین|بکنین|نکردن|شدن|بودن|رو)(?!\w)"
)


def infer_style(text: str) -> str:
    """The style a line written before the protocol shows: Latin letters alone are Finglish,
    Latin words in Persian text are mixed, Arabic letters or digits are arabic_letters, spoken
    forms are colloquial, the rest formal."""
    persian, latin = bool(_PERSIAN.search(text)), bool(_LATIN_WORD.search(text))
    if latin and not persian:
        return "finglish"
    if latin and persian:
        return "mixed"
    if _ARABIC_ONLY.search(text):
        return "arabic_letters"
    return "colloquial" if _COLLOQUIAL.search(text) else "formal"


def read_lines(path: Path) -> list[dict[str, str]]:
    """JSON lines with a known domain (and style and second, where given and known)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            print(f"{path.name}:{number}: not JSON, left out", file=sys.stderr)
            continue
        text, domain = row.get("text"), row.get("domain")
        if not isinstance(text, str) or not text.strip() or domain not in DOMAINS:
            print(f"{path.name}:{number}: no text or an unknown domain, left out", file=sys.stderr)
            continue
        kept = {"text": text.strip(), "domain": domain}
        style = row.get("style")
        kept["style"] = style if style in STYLES else infer_style(text)
        second = row.get("second")
        if second in DOMAINS and second != domain:
            kept["second"] = second
        rows.append(kept)
    return rows


def before_lines() -> list[dict[str, str]]:
    """The training file's lines from before the protocol, each with its inferred style."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:tests/data/triage_train.jsonl"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = [json.loads(line) for line in source.splitlines() if line.strip()]
    return [{**row, "style": infer_style(row["text"])} for row in rows]


def merge(new_files: Sequence[Path]) -> tuple[list[dict[str, str]], Counter[str]]:
    """The merged lines (earlier ones first) and the count of lines left out, by reason."""
    dropped: Counter[str] = Counter()
    candidates = before_lines()
    for path in new_files:
        candidates += read_lines(path)
    tests = [row["text"] for path in TEST_SPLITS if path.exists() for row in read_lines(path)]
    texts = [row["text"] for row in candidates]
    # A training line that nearly repeats a test line would leak the test: left out.
    leaking = {i for i, _ in near_duplicate_pairs(texts, tests)}
    dropped["near a test line"] = len(leaking)
    # Within the training lines, the later of two near duplicates is left out.
    repeated = {max(i, j) for i, j in near_duplicate_pairs(texts, texts) if i != j}
    dropped["near an earlier training line"] = len(repeated - leaking)
    kept = [row for i, row in enumerate(candidates) if i not in leaking | repeated]
    return kept, dropped


def main(argv: Sequence[str] | None = None) -> None:
    """Write the merged training file and print what it holds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("new", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=TRAIN)
    arguments = parser.parse_args(argv)
    rows, dropped = merge(arguments.new)
    with arguments.out.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"lines={len(rows)} dropped={dict(dropped)}")
    print("domains", dict(Counter(r["domain"] for r in rows).most_common()))
    print("styles", dict(Counter(r["style"] for r in rows).most_common()))
    print("second", sum("second" in r for r in rows))


if __name__ == "__main__":
    main()
