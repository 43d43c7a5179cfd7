"""One update of a chat at a time: within a process, and across web processes.

Within a process, updates of different chats are handled at once and each chat's one after
another (ChatOrderedProcessor): handled strictly one at a time, every resident would wait while
another's reply travels to Telegram and back, a process's throughput capped by the Bot API's
round trip rather than by its work.

Across web processes:

A reply reaches the resident before the conversation state is saved; someone who answers at once
may have their next update land on another web process, which would read the old state. Each
update of a chat is therefore handled holding a PostgreSQL advisory lock on that chat, taken
before the state is read and released once it is saved. SQLite deployments are one process,
where PTB already handles updates in turn. Which of a chat's updates goes first is the inbox's to
say (bot/inbox.py).

The lock is a session-level one, held on the update's own connection (bot/unit.py) between its
transactions: a transaction-level lock would keep a transaction open for the whole update, so a
connection "idle in transaction" while handlers wait on Telegram (seconds under a 429), holding
the table locks a migration's ALTER TABLE queues behind. As the turn ends, the update's new
conversation states and the deletion of its inbox row commit together, then the lock is
released; a dead process's lock goes with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, BaseUpdateProcessor

from bot.bale import with_command_entities
from bot.context import RUNTIME_KEY
from bot.inbox import InboxQueue, chat_of
from bot.persistence import SQLConversationPersistence
from bot.services import inbox
from bot.services.inbox import Verdict
from bot.unit import UpdateUnit, update_unit
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# The two-number advisory locks are a key space of their own, apart from the jobs lock's.
TURN_SPACE = 0x6D61  # "ma"
# A turn normally comes within milliseconds. A process stuck mid-update would hold its chat's turn
# for ever, and every process that waited for it would stop too (each handles one update at a
# time); after this long the update is handled without the turn instead.
TURN_WAIT = "30s"
# The time-out is set for the statement's own transaction, so it ends with it; the lock does not.
_TAKE = text("SELECT set_config('lock_timeout', :wait, true), pg_advisory_lock(:space, :chat)")
_RELEASE = text("SELECT pg_advisory_unlock(:space, :chat)")


def chat_key(chat_id: int) -> int:
    """A 32-bit lock key for a chat id (two chats sharing one only wait for each other)."""
    return (chat_id % 2**32) - 2**31


@contextlib.asynccontextmanager
async def chat_turn(unit: UpdateUnit, chat_id: int) -> AsyncIterator[bool]:
    """Wait for any other process handling this chat, and hold the chat, on the update's
    connection, until the block ends. Yields whether the turn is held: without a database the
    update is handled anyway, and fails politely where it needs one."""
    if unit.dialect != "postgresql":
        yield False
        return
    key = {"space": TURN_SPACE, "chat": chat_key(chat_id)}
    try:
        await unit.take_session_lock(_TAKE, {"wait": TURN_WAIT, **key})
    except UNREACHABLE as error:  # also the lock's time-out
        log.warning("could not take a chat's turn (%s); handling it anyway", type(error).__name__)
        held = False
    else:
        held = True
    if not held:
        yield False
        return
    unit.in_turn = True
    try:
        yield True
    finally:
        unit.in_turn = False
        await unit.release_session_lock(_RELEASE, key)


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

    def __init__(self, handled_at_once: int) -> None:
        super().__init__(max_concurrent_updates=self.IN_HAND)
        self.handled_at_once = handled_at_once
        self._places = asyncio.Semaphore(handled_at_once)
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


class TurnTakingApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application that handles each update with one database session and, in a web
    process, in its chat's turn."""

    async def process_update(self, update: object) -> None:
        """Handle the update with one database session (bot/unit.py), in the chat's turn."""
        update = with_command_entities(update, self.bot)
        runtime = self.bot_data.get(RUNTIME_KEY)
        if runtime is None:
            await super().process_update(update)
            return
        async with update_unit(runtime.engine, runtime.session_factory) as unit:
            with self._holding_states(update, unit):
                await self._process_in_turn(update, runtime, unit)

    def _holding_states(
        self, update: object, unit: UpdateUnit
    ) -> contextlib.AbstractContextManager[None]:
        """The update's conversation state changes are written in its unit."""
        if not isinstance(self.persistence, SQLConversationPersistence):
            return contextlib.nullcontext()
        return self.persistence.holding(conversation_of(update), unit)

    async def _process_in_turn(self, update: object, runtime: Any, unit: UpdateUnit) -> None:
        """In a web process, hold the chat's turn while its update is handled."""
        chat_id = chat_of(update)
        if runtime.role != "web" or chat_id is None:
            await super().process_update(update)
            return
        async with chat_turn(unit, chat_id) as held:
            handled = await self._handle_in_order(update, chat_id, unit if held else None)
            if held:
                await self._end_turn(unit, handled)

    async def _handle_in_order(
        self, update: object, chat_id: int, turn: UpdateUnit | None
    ) -> int | None:
        """Handle the update, unless the inbox says an earlier one goes first or it is gone.
        Returns the id of the inbox row to delete as the turn ends, if any."""
        queue = self.update_queue
        if (
            not isinstance(queue, InboxQueue)
            or not isinstance(update, Update)
            or update.update_id not in queue.kept
        ):
            await super().process_update(update)
            return None
        if turn is None:  # the database went away since the update was kept: answer anyway
            queue.forget(update.update_id)  # a sweep hands its row on once the database is back
            await super().process_update(update)
            return None
        verdict = await queue.verdict(turn, update, chat_id)
        if verdict is Verdict.LATER:
            queue.put_back(update)
        if verdict is not Verdict.HANDLE:
            return None
        if await queue.given_up(update):
            await self._apologise(chat_id)
        else:
            await super().process_update(update)
        return update.update_id

    async def _end_turn(self, unit: UpdateUnit, handled: int | None) -> None:
        """Commit the update's new conversation states and the deletion of its inbox row
        together: a process that dies before leaves the update, as it was, to another."""
        if handled is not None and isinstance(self.update_queue, InboxQueue):
            self.update_queue.forget(handled)
        try:
            if isinstance(self.persistence, SQLConversationPersistence):
                await self.persistence.write_held(unit, finishing=handled)
            elif handled is not None:
                async with unit.autocommit() as session:
                    await inbox.finish(session=session, update_id=handled)
        except UNREACHABLE as error:
            log.warning("could not save the end of an update (%s)", type(error).__name__)

    async def _apologise(self, chat_id: int) -> None:
        """Tell a chat that a message of theirs was given up."""
        runtime = self.bot_data[RUNTIME_KEY]
        with contextlib.suppress(TelegramError):
            await self.bot.send_message(chat_id, runtime.translate("update-given-up"))
