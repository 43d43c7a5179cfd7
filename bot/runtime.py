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
from bot.triage.service import Triage

if TYPE_CHECKING:
    from bot.blocklist import BlockListListener
    from bot.broadcasting import CampaignSender
    from bot.delivery import OutboxSender


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
    # Users a coordinator blocked, and what reloads them when another process changes them.
    banned: set[int] = field(default_factory=set)
    blocklist: BlockListListener | None = None
    # When the admin chat last heard of each kind of error (an outage must not flood it).
    admin_told: dict[str, float] = field(default_factory=dict)
    # Which chats are groups (Bale's have positive ids): the config's, and those updates showed.
    groups: GroupChats = field(default_factory=GroupChats)

    @property
    def card_renderer(self) -> Cards:
        """Cards, which exist once the application is built."""
        assert self.cards is not None, "build_application sets the cards"
        return self.cards

    def wake_outbox(self) -> None:
        """Tell the sender something was committed for delivery."""
        if self.sender is not None:
            self.sender.wake()
