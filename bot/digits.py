"""Digits and bidirectional isolates for what people read."""

from __future__ import annotations

_TO_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

LRI, FSI, PDI = "\u2066", "\u2068", "\u2069"


def persian_digits(value: object) -> str:
    """Render a number (or any text) with Persian digits."""
    return str(value).translate(_TO_PERSIAN)


def ascii_digits(text: str) -> str:
    """Turn Persian and Arabic-Indic digits into ASCII ones."""
    return text.translate(_TO_ASCII)


def ltr(fragment: str) -> str:
    """Isolate a left-to-right fragment (a code, a number) inside Persian text."""
    return f"{LRI}{fragment}{PDI}"


def isolate(fragment: str) -> str:
    """Isolate a fragment of unknown direction (user-supplied text, a name)."""
    return f"{FSI}{fragment}{PDI}"
