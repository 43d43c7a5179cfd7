"""Persian text normalisation for matching, search and triage (the original text is kept)."""

from __future__ import annotations

import re
import unicodedata

ZWNJ = "\u200c"

# One table for every single-character rule of the design: letter variants, digits, and
# characters that are removed outright (tatweel, diacritics, direction controls).
_LETTERS = {
    "ي": "ی", "ى": "ی", "ك": "ک",
    "ة": "ه", "ۀ": "ه", "ە": "ه", "ھ": "ه",
    "أ": "ا", "إ": "ا", "ٱ": "ا", "ؤ": "و",
}  # fmt: skip
_DIGITS = {chr(0x06F0 + i): str(i) for i in range(10)} | {
    chr(0x0660 + i): str(i) for i in range(10)
}
_REMOVED = (
    ["\u0640", "\u0670", "\u061c", "\u200e", "\u200f"]
    + [chr(c) for c in range(0x064B, 0x0653)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)
_TABLE = str.maketrans(_LETTERS | _DIGITS | dict.fromkeys(_REMOVED, None))

_ZWNJ_RUN = re.compile(ZWNJ + "{2,}")
# A ZWNJ next to a space, at either end of the text, or beside punctuation joins nothing.
_ZWNJ_AT_EDGE = re.compile(
    rf"(?:(?<=\s){ZWNJ}|{ZWNJ}(?=\s)|^{ZWNJ}|{ZWNJ}$|{ZWNJ}(?=\W)|(?<=\W){ZWNJ})"
)
_SPACES = re.compile(r"[^\S\n]+")


# Control characters (but line breaks and tabs) and lone surrogates: invisible, and NUL or a
# lone surrogate cannot even be stored (PostgreSQL refuses NUL; UTF-8 has no surrogates).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """What a person typed, minus the characters nobody can see or store."""
    return _UNSTORABLE.sub("", text)


def normalize(text: str) -> str:
    """Fold the spellings people type into one form; idempotent and total."""
    folded = unicodedata.normalize("NFKC", text).translate(_TABLE)
    # NFKC can reveal new foldable characters (presentation forms); a second pass settles them.
    folded = unicodedata.normalize("NFKC", folded).translate(_TABLE)
    previous = None
    while previous != folded:
        previous = folded
        folded = _ZWNJ_AT_EDGE.sub("", _ZWNJ_RUN.sub(ZWNJ, folded))
    return _SPACES.sub(" ", folded).strip()


def squash(text: str) -> str:
    """A spacing-blind key for fuzzy name matching: normalised, no ZWNJ, spaces or punctuation."""
    return re.sub(r"[\W_]+", "", normalize(text).replace(ZWNJ, ""))


_LIST_SEPARATORS = re.compile(r"[,،؛;\n]+")


def split_list(text: str) -> list[str]:
    """Items typed as a list, separated by Latin or Persian commas, semicolons or new lines."""
    return [item.strip() for item in _LIST_SEPARATORS.split(text) if item.strip()]


# What a search of descriptions ignores: a ZWNJ typed or not, and آ typed as ا.
SEARCH_BLIND = (("\u200c", ""), ("آ", "ا"))


def search_form(text: str) -> str:
    """A normalised word as a search compares it (`SEARCH_BLIND`)."""
    for typed, meant in SEARCH_BLIND:
        text = text.replace(typed, meant)
    return text
