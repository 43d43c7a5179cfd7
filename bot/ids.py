"""Telegram's and Bale's people and chats kept apart in one database.

Telegram and Bale number their users and chats independently, in the same range of values: a
deployment with bots on both would otherwise take a Telegram resident and a Bale resident with
the same number for one person (their reports listed together, their drafts shared, and one's
/forget_me erasing the other's data). So in a deployment whose bots are on both, every id of the
other messenger than its first bot's is kept moved by `APART`: up for people and other
positive ids, down for groups, so that the sign still tells a group from a person. Ids are moved
where they cross the edge, nowhere else:

- `bot.namespaced.Namespaced`, a request class around the bot's own (PTB's documented place
  for how calls travel), moves the ids in each call back to the messenger's own, and those in
  each answer (polling's updates among them) into the deployment's;
- the webhook server moves a posted update's ids (bot/serving.py);
- the config's ids of a county such a bot serves (agency groups, coordinators, the council) are
  read moved (bot/config.py), and `/chatid` shows a group's own number (`as_written`).

A bot never sends to an id of the other messenger: such a call is answered "chat not found"
unmade (a number of a Telegram chat would, on Bale, be some stranger's). A deployment on one
messenger moves nothing and has no such request class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

# Telegram's ids have at most 52 significant bits (groups' about 40); Bale's are of the same
# size. Moved by 2^60, an id stays within a signed 64-bit column and apart from every unmoved one.
APART = 2**60
# Integer fields that hold a chat's or a person's id wherever they appear.
_ID_FIELDS = frozenset(
    {"chat_id", "user_id", "from_chat_id", "migrate_to_chat_id", "migrate_from_chat_id",
     "linked_chat_id", "sender_chat_id"}
)  # fmt: skip
# Objects that are a chat or a person (their `id`), by the field that holds them.
_CHAT_OR_USER = frozenset(
    {"from", "chat", "sender_chat", "forward_from", "forward_from_chat", "user", "via_bot",
     "left_chat_member", "new_chat_members", "sender_user", "sender_business_bot", "users"}
)  # fmt: skip
# Methods whose answer is itself a chat or a person.
_ANSWERED_WITH_ONE = frozenset({"getMe", "getChat"})


def moved_in(value: int) -> int:
    """An id of the other messenger as the deployment keeps it (a kept one stays)."""
    if abs(value) >= APART:
        return value
    return value + APART if value > 0 else value - APART


def moved_out(value: int) -> int | None:
    """A kept id back as the other messenger numbers it; None if it is not one of its ids."""
    if value >= APART:
        return value - APART
    if value <= -APART:
        return value + APART
    return None


def is_moved(value: int) -> bool:
    """Whether a kept id is one of the other messenger's."""
    return abs(value) >= APART


def as_written(value: int) -> int:
    """An id as its own messenger shows it (what an operator writes in the config)."""
    back = moved_out(value)
    return value if back is None else back


def _each_id(data: Any, move: Callable[[int], int], holder: str = "") -> Any:
    """`data` (an update, an answer or a call's parameters) with `move` applied to every
    chat's and person's id in it."""
    if isinstance(data, list):
        return [_each_id(item, move, holder) for item in data]
    if not isinstance(data, dict):
        return data
    moved: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, int) and not isinstance(value, bool):
            if key in _ID_FIELDS or (key == "id" and holder in _CHAT_OR_USER):
                value = move(value)
        elif isinstance(value, dict | list):
            value = _each_id(value, move, key)
        moved[key] = value
    return moved


def update_moved_in(update: dict[str, Any]) -> dict[str, Any]:
    """A posted update (webhook) with its ids as the deployment keeps them."""
    return cast(dict[str, Any], _each_id(update, moved_in))


def answer_moved_in(method: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A Bot API answer with its ids as the deployment keeps them."""
    holder = "chat" if method in _ANSWERED_WITH_ONE else "result"
    return {
        key: _each_id(value, moved_in, holder) if key == "result" else value
        for key, value in answer.items()
    }


class ForeignIdError(Exception):
    """A call addressed an id the bot's messenger does not have."""


def _moved_out_or_refused(value: int, apart: bool) -> int:
    if not apart:
        if is_moved(value):
            raise ForeignIdError
        return value
    back = moved_out(value)
    if back is None:
        raise ForeignIdError
    return back


def calls_moved_out(parameters: dict[str, Any], apart: bool) -> dict[str, Any]:
    """The parameters whose ids (a text_mention's person's too) change on the way out;
    ForeignIdError for an id of the other messenger."""
    changed = {}

    def back(value: int) -> int:
        return _moved_out_or_refused(value, apart)

    for key, value in parameters.items():
        moved = _each_id({key: value}, back)[key]
        if moved != value:
            changed[key] = moved
    return changed
