"""Every user-facing string lives in locales/, and every key there is used."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.i18n import Translator

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("bot", "handlers")
# Calls whose string arguments are locale keys.
LOOKUPS = {
    "t",
    "translate",
    "every_language",
    "_labels",
    "_notice",
    "unexpected",
    "composing",
    "registering",
}


def _trees() -> list[ast.Module]:
    return [
        ast.parse(path.read_text(encoding="utf-8"))
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*.py")
    ]


def _string_constants() -> set[str]:
    return {
        node.value
        for tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def _looked_up_keys() -> set[str]:
    """String literals passed to a lookup, and the values of *_KEYS tables."""
    keys: set[str] = set()
    for tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = (
                    node.func.attr
                    if isinstance(node.func, ast.Attribute)
                    else getattr(node.func, "id", "")
                )
                if name in LOOKUPS:
                    keys |= {
                        a.value
                        for a in node.args
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    }
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(n.endswith("_KEYS") for n in names):
                    keys |= {
                        v.value
                        for v in node.value.values
                        if isinstance(v, ast.Constant) and isinstance(v.value, str)
                    }
    return keys


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.load()


def test_every_language_has_the_same_keys(translator: Translator) -> None:
    fa, en = set(translator.catalogues["fa"]), set(translator.catalogues["en"])
    assert fa - en == set(), "keys missing from en.toml"
    assert en - fa == set(), "keys missing from fa.toml"


def test_every_key_the_code_looks_up_exists(translator: Translator) -> None:
    missing = _looked_up_keys() - set(translator.catalogues["fa"])
    assert missing == set()


def test_every_locale_key_is_used_by_code(translator: Translator) -> None:
    unused = set(translator.catalogues["fa"]) - _string_constants()
    assert unused == set()


def test_no_persian_text_in_handlers_or_services() -> None:
    persian = [
        f"{path.relative_to(ROOT)}: {node.value[:30]!r}"
        for folder in ("handlers", "bot/services")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and any("\u0600" <= ch <= "\u06ff" for ch in node.value)
    ]
    assert persian == []


def test_numbers_get_persian_digits_in_persian_only(translator: Translator) -> None:
    assert translator("photo-received", "fa", count=3, limit=5) == "عکس ۳ از ۵ دریافت شد."
    assert translator("photo-received", "en", count=3, limit=5) == "Photo 3 of 5 received."


def test_unknown_language_falls_back_to_default(translator: Translator) -> None:
    assert translator("menu-help", "de") == translator("menu-help", "fa")
