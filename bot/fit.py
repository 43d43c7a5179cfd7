"""Every text the bot builds, within what Telegram takes.

Telegram refuses a message over 4,096 characters, a caption over 1,024 and a button's answer
(an alert) over 200, counted in UTF-16 code units: an emoji outside the Basic Multilingual Plane
counts two, a combining mark or a ZWNJ one. A refused card never arrives, and a refused reply
leaves the resident with an error instead of their answer, so lengths are counted here on what
is shown, never on a normalised text.

What a person typed (a description, a question, an answer) is the only unbounded part of a text
the bot builds; it is the part cut, at its end, with «…», so every header line and the status
line stay. Where the rest is:

- a description is bounded where it is typed (`bot.services.cases.description_problem`, on the
  raw text as shown), so the summary, the agency card and the triage card hold it whole; the cut
  here is a guard for what is bounded elsewhere (long names in the config, cases filed before the
  bound), and the full text stays on the case, in the exports;
- the resident's case view pages its history: each page holds what fits, older steps are a
  button away (handlers/resident.py);
- a notice or a relay carries a question or an answer already bounded where it was typed; the
  outbox cuts what would still be too long as it sends (`within`), the last guard, so a row is
  never refused for its length.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALERT_LIMIT = 200
ELLIPSIS = "…"


class _HasText(Protocol):
    """A view of a case whose `text` (what the reporter typed) may be cut."""

    @property
    def text(self) -> str:
        """What the reporter typed."""
        ...


View = TypeVar("View", bound=_HasText)


def units(text: str) -> int:
    """The length Telegram counts: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` if it fits `limit` units, else its start and «…» within `limit`. A character is
    never split, and marks that would be left hanging (combining marks, joiners, direction
    controls) go with the character they belonged to."""
    if units(text) <= limit:
        return text
    room = limit - units(ELLIPSIS)
    if room <= 0:
        return ELLIPSIS if limit >= units(ELLIPSIS) else ""
    kept: list[str] = []
    used = 0
    for character in text:
        size = 2 if ord(character) > 0xFFFF else 1
        if used + size > room:
            break
        kept.append(character)
        used += size
    while kept and _hangs(kept[-1]):
        kept.pop()
    return "".join(kept).rstrip() + ELLIPSIS


def _hangs(character: str) -> bool:
    """A character that only means something next to the one after it, or is invisible."""
    return unicodedata.category(character) in {"Mn", "Me", "Cf", "Zs"} or character.isspace()


def fit(render: Callable[[str], str], words: str, limit: int = TEXT_LIMIT) -> str:
    """`render(words)`, with `words` cut so the whole fits `limit` (the rest of the text is
    bounded by the bot: headers, labels, names)."""
    whole = render(words)
    if units(whole) <= limit:
        return whole
    room = limit - units(render(""))
    return within(render(cut(words, room)), limit)


def fit_card(render: Callable[[View], dict[str, Any]], view: View) -> dict[str, Any]:
    """A card (text and buttons) of `view`, its description cut so the card fits a message."""
    card = render(view)
    if units(str(card["text"])) <= TEXT_LIMIT:
        return card
    room = TEXT_LIMIT - units(str(render(replace(view, text=""))["text"]))  # type: ignore[type-var]
    card = render(replace(view, text=cut(view.text, room)))  # type: ignore[type-var]
    return card | {"text": within(str(card["text"]))}


def in_messages(lines: list[str], limit: int = TEXT_LIMIT) -> list[str]:
    """`lines` joined into as few messages as fit `limit` each, in order, a line never split
    between two (one longer than a message alone is cut to fit): a list, an agenda, is sent
    whole in several messages rather than cut short in one."""
    messages: list[str] = []
    for line in (cut(line, limit) for line in lines):
        if messages and units(messages[-1]) + 1 + units(line) <= limit:
            messages[-1] += "\n" + line
        else:
            messages.append(line)
    return messages


def within(text: str, limit: int = TEXT_LIMIT) -> str:
    """The last guard: a whole text cut to `limit` when nothing better was done."""
    return cut(text, limit)
