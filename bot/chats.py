"""Which chats are groups, for the limits that apply only to groups.

Telegram gives groups and channels negative ids, and the flood limiter and the outbox's group
pacing used to go by the sign. Bale gives groups positive ids, like people's: by the sign alone
an agency group on Bale would get no pacing, and the bot would run into the messenger's
per-group limit. A chat is a group here when its id is negative, when it is a chat the config
names for a group (an agency's, the coordinators', the council's, the admin chat), or when an
update has shown it with the type group, supergroup or channel.
"""

from __future__ import annotations

from collections.abc import Iterable

from telegram import Chat

from bot.config import Settings

_GROUP_TYPES = frozenset({"group", "supergroup", "channel"})


class GroupChats:
    """The set of chats known to be groups; a negative id (or a @username) always is one."""

    def __init__(self, known: Iterable[int] = ()) -> None:
        self._ids: set[int] = set(known)

    @classmethod
    def of(cls, settings: Settings) -> GroupChats:
        """The groups the config names: agency, coordinator, council and admin chats."""
        ids: list[int | None] = [settings.bot.admin_chat_id]
        for county in settings.counties:
            ids += [county.coordinator_chat_id, county.council_chat_id]
            ids += [agency.chat_id for agency in county.agencies]
        return cls(chat for chat in ids if chat is not None)

    def __contains__(self, chat: object) -> bool:
        if isinstance(chat, str):  # a @username: only public groups and channels have one
            return True
        return isinstance(chat, int) and (chat < 0 or chat in self._ids)

    def learn(self, chat: Chat | None) -> None:
        """Remember a chat an update showed to be a group."""
        if chat is not None and chat.type in _GROUP_TYPES and chat.id > 0:
            self._ids.add(chat.id)
