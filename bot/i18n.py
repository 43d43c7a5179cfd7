"""Every user-facing string, looked up by kebab-case key from locales/<language>.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bot.digits import persian_digits

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


class Translator:
    """Looks up a key in one language's catalogue and fills in its {placeholders}."""

    def __init__(self, catalogues: dict[str, dict[str, str]], default_language: str) -> None:
        if default_language not in catalogues:
            raise ValueError(f"no locale file for default language {default_language!r}")
        self.catalogues = catalogues
        self.default_language = default_language

    @classmethod
    def load(cls, default_language: str = "fa", directory: Path = LOCALES_DIR) -> Translator:
        """Read every locales/*.toml file."""
        catalogues = {
            path.stem: tomllib.loads(path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*.toml"))
        }
        return cls(catalogues, default_language)

    def __call__(self, key: str, language: str | None = None, /, **values: object) -> str:
        """The text for `key`; numbers among `values` get the language's digits."""
        language = language if language in self.catalogues else self.default_language
        template = self.catalogues[language][key]
        if language == "fa":
            values = {
                name: persian_digits(value) if isinstance(value, int) else value
                for name, value in values.items()
            }
        return template.format(**values) if values else template

    def every_language(self, key: str) -> list[str]:
        """The key's text in each language: reply-keyboard labels are matched in any of them."""
        return [catalogue[key] for catalogue in self.catalogues.values()]
