"""A small high-precision rule layer: words that mean danger right now.

Matched on normalised text with ZWNJ and spaces folded, so "آتش‌سوزی", "آتش سوزی" and
"اتیش سوزی" all count. Precision over recall: the model still places the case; this only adds
the emergency numbers to the reply.
"""

from __future__ import annotations

import re

from bot.normalize import normalize

_DANGER = [
    r"آتش ?سوزی", r"اتیش ?سوزی", r"آتیش ?سوزی", r"حریق", r"آتش گرفت", r"آتیش گرفت", r"اتیش گرفت",
    r"دود (?:غلیظ|سیاه)", r"بوی گاز", r"نشت گاز", r"گاز نشت", r"انفجار", r"منفجر",
    r"چاقو", r"قمه", r"تیراندازی", r"شلیک", r"اسلحه", r"چاقوکشی", r"خون ?ریزی",
    r"برق گرفت", r"غرق شد", r"تهدید به کشتن", r"خودکشی", r"زیر آوار",
    r"\bfire\b", r"atish ?soozi", r"boo ?(?:ye )?gaz", r"chaghoo", r"ghame",
]  # fmt: skip
_PATTERN = re.compile("|".join(_DANGER), re.IGNORECASE)


def is_urgent(text: str) -> bool:
    """Whether the text names a danger that should be called in, not only reported."""
    folded = normalize(text).replace("\u200c", " ")
    folded = re.sub(r"\s+", " ", folded)
    return _PATTERN.search(folded) is not None
