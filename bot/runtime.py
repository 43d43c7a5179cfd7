"""What every handler and job shares for the life of the process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.cards import Cards
from bot.chats import GroupChats
from bot.config import Settings
from bot.i18n import Translator
from bot.leader import Leadership
from bot.services.handled import HandledHere
from bot.triage.service import Triage
from bot.windows import Windows

if TYPE_CHECKING:
    from telegram import Bot

    from bot.broadcasting import CampaignSender
    from bot.delivery import OutboxSender
    from bot.listening import Listener


# Each bot's share of the handled updates' keys: Telegram's update ids stay below 2³¹.
UPDATE_RANGE = 2**44
# A person may press 20 buttons in 10 seconds and send `[bot] updates_per_minute` messages a
# minute (handlers/common.py).
PRESS_WINDOW_SECONDS, MESSAGE_WINDOW_SECONDS = 10.0, 60.0


class Remembered:
    """A set of the most recently added ids, at most `limit` of them (the oldest go first)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._ids: dict[int, None] = {}

    def add(self, key: int) -> None:
        """Remember the id (as the newest)."""
        self._ids.pop(key, None)
        self._ids[key] = None
        if len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def discard(self, key: int) -> None:
        """Forget the id."""
        self._ids.pop(key, None)

    def clear(self) -> None:
        """Forget every id."""
        self._ids.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class Runtime:
    """Settings, the database, strings, triage, and the outbox sender; built once at start."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    translate: Translator
    triage: Triage
    leadership: Leadership
    # "all" (one process does everything), "web" (updates only) or "worker" (sending and jobs).
    role: str = "all"
    # Set by `build_application` once the bot (and so its token) exists.
    cards: Cards | None = None
    sender: OutboxSender | None = None
    campaigns: CampaignSender | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Submitted cases being classified and routed after their reporter got the tracking code.
    placing: set[asyncio.Task[None]] = field(default_factory=set)
    # Broadcasts being sent by this process, by campaign id.
    campaign_tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    # Users a coordinator blocked; and what hears other processes (a block, messages queued).
    banned: set[int] = field(default_factory=set)
    listener: Listener | None = None
    # When the admin chat last heard of each kind of error (an outage must not flood it).
    admin_told: dict[str, float] = field(default_factory=dict)
    # Which chats are groups (Bale's have positive ids): the config's, and those updates showed.
    groups: GroupChats = field(default_factory=GroupChats)
    # The bot this runtime serves (a deployment may serve several, one runtime each, sharing
    # the database, triage and strings), and every bot's runtime by key, this one included.
    bot_key: str = "main"
    bot: Bot | None = None
    # The places to handle updates in, shared by the process's bots (bot/turns.py).
    update_places: asyncio.Semaphore | None = None
    siblings: dict[str, Runtime] = field(default_factory=dict)
    # The updates of this bot the process handled (bot/services/handled.py), and each person's
    # presses and messages in the current window (bot/windows.py): this process alone receives
    # the bot's updates while it holds them.
    handled_here: HandledHere = field(init=False)
    presses: Windows = field(default_factory=lambda: Windows(PRESS_WINDOW_SECONDS))
    messages: Windows = field(default_factory=lambda: Windows(MESSAGE_WINDOW_SECONDS))
    # With several bots: people known to have this bot as theirs (users.bot_key), so their
    # updates need not note it again; forgotten when they write to another (bot/listening.py).
    writers: Remembered = field(default_factory=Remembered)

    @property
    def every_bot(self) -> list[Runtime]:
        """The runtime of every bot this process serves, this one included."""
        return list(self.siblings.values()) or [self]

    def wrote_here(self, user_id: int) -> None:
        """The person's bot is now this one: the other bots of the process forget them."""
        for other in self.siblings.values():
            if other is not self:
                other.writers.discard(user_id)
        self.writers.add(user_id)

    def __post_init__(self) -> None:
        low = self.settings.bot_keys.index(self.bot_key) * UPDATE_RANGE
        self.handled_here = HandledHere(low, low + UPDATE_RANGE - 1)

    @property
    def leads(self) -> bool:
        """Whether this is the deployment's first bot, whose application runs the jobs."""
        return self.bot_key == self.settings.bot_keys[0]

    @property
    def served_counties(self) -> list[str] | None:
        """The counties this bot serves; None when it serves them all."""
        return self.settings.counties_of_bot(self.bot_key)

    def handled_key(self, update_id: int) -> int:
        """An update's key among those handled: each bot numbers its updates from its own
        start, so every bot after the first has a range of its own (the first keeps the ids)."""
        return update_id + self.handled_here.low

    def for_chat(self, chat_id: int) -> Runtime:
        """The runtime of the bot whose counties name this chat (this one, if none does)."""
        for county in self.settings.counties:
            if chat_id in county.named_chats():
                return self.for_county(county.key)
        return self

    def for_county(self, county_key: str) -> Runtime:
        """The runtime of the bot that serves a county (this one, with a single bot)."""
        return self.siblings.get(self.settings.bot_of_county(county_key), self)

    @property
    def card_renderer(self) -> Cards:
        """Cards, which exist once the application is built."""
        assert self.cards is not None, "build_application sets the cards"
        return self.cards

    def wake_outbox(self) -> None:
        """Tell the senders something was committed for delivery (each bot has its own)."""
        for runtime in self.every_bot:
            if runtime.sender is not None:
                runtime.sender.wake()
