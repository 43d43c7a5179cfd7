"""One update of a chat at a time, in the one process that receives the bot's updates.

Updates of different chats are handled at once and each chat's one after another
(ChatOrderedProcessor): handled strictly one at a time, every resident would wait while
another's reply travels to Telegram and back, a process's throughput capped by the Bot API's
round trip rather than by its work. One process receives each bot's updates (bot/receiving.py),
so this order is the only one there is, and the conversation states in its memory are the ones
that count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseUpdateProcessor

from bot.bale import with_command_entities
from bot.context import RUNTIME_KEY
from bot.jalali import utcnow
from bot.persistence import SQLConversationPersistence
from bot.services import handled
from bot.unit import UpdateUnit, update_unit
from models.db import UNREACHABLE

log = logging.getLogger(__name__)


def chat_of(update: object) -> int | None:
    """The chat an update belongs to, if any."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    return update.effective_chat.id


def conversation_of(update: object) -> tuple[int, int] | None:
    """The update's conversation key (chat id, user id), as ConversationHandler's."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    if update.effective_user is None:
        return None
    return update.effective_chat.id, update.effective_user.id


@dataclass
class _ChatLine:
    """A chat's updates in this process: the one being handled holds the lock, the rest wait
    on it in the order they came (asyncio's lock wakes its waiters first come, first served)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    updates: int = 0


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Handles updates of different chats at once, up to `handled_at_once`, and each chat's
    updates one at a time in the order they came."""

    # PTB's own bound counts the updates in hand, those waiting for their chat's earlier ones
    # too; it is set high so that a chat flooding the bot holds up no other (they wait in line
    # for their own chat without taking one of the handling places).
    IN_HAND = 1000

    def __init__(self, handled_at_once: int, places: asyncio.Semaphore | None = None) -> None:
        """`places`: the handling places, shared by every bot of the process (each update
        holds a database connection, and the pool is sized for `handled_at_once` in all)."""
        super().__init__(max_concurrent_updates=self.IN_HAND)
        self.handled_at_once = handled_at_once
        self._places = places or asyncio.Semaphore(handled_at_once)
        self._lines: dict[int, _ChatLine] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Wait for the chat's earlier updates, then for a free place, then handle it."""
        chat_id = chat_of(update)
        if chat_id is None:
            async with self._places:
                await coroutine
            return
        line = self._lines.setdefault(chat_id, _ChatLine())
        line.updates += 1
        try:
            async with line.lock, self._places:
                await coroutine
        finally:
            line.updates -= 1
            if not line.updates:
                del self._lines[chat_id]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


async def _record_handled(unit: UpdateUnit) -> None:
    """Record the update as handled, unless its conversation state's statement did."""
    if unit.to_record is None:
        return
    recording, unit.to_record = unit.to_record, None
    try:
        async with unit.autocommit() as session:  # one statement
            await handled.record(session=session, update_id=recording, now=utcnow())
            await session.commit()
    except UNREACHABLE as error:  # the update was answered; a repeat of it would be again
        log.warning("could not record an update as handled (%s)", type(error).__name__)


class TurnTakingApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application that handles each update with one database session, and tells a
    webhook waiting on an update when it was handled."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Webhook requests waiting for their update to be handled, by update id.
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def when_handled(self, update_id: int) -> asyncio.Future[None]:
        """A future done once the update with this id was handled (or failed)."""
        return self._waiting.setdefault(update_id, asyncio.get_running_loop().create_future())

    def stop_waiting(self, update_id: int) -> None:
        """The webhook answered without waiting any longer: nobody needs to hear of it."""
        self._waiting.pop(update_id, None)

    async def process_update(self, update: object) -> None:
        """Handle the update with one database session (bot/unit.py)."""
        update = with_command_entities(update, self.bot)
        try:
            runtime = self.bot_data.get(RUNTIME_KEY)
            if runtime is None:
                await super().process_update(update)
                return
            async with update_unit(runtime.engine, runtime.session_factory) as unit:
                with self._holding_states(update, unit):
                    await super().process_update(update)
                await _record_handled(unit)
                if unit.handled_key is not None:  # a repeat is dropped without a statement
                    runtime.handled_here.add(unit.handled_key)
        finally:
            if isinstance(update, Update):
                waiting = self._waiting.pop(update.update_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)

    def _holding_states(
        self, update: object, unit: UpdateUnit
    ) -> contextlib.AbstractContextManager[None]:
        """The update's conversation state changes are written in its unit."""
        if not isinstance(self.persistence, SQLConversationPersistence):
            return contextlib.nullcontext()
        return self.persistence.holding(conversation_of(update), unit)
