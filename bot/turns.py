"""One update of a chat at a time across web processes.

A reply reaches the resident before the conversation state is saved; someone who answers at once
may have their next update land on another web process, which would read the old state. Each
update of a chat is therefore handled holding a PostgreSQL advisory lock on that chat, taken
before the state is read and released once it is saved. A dead process's lock goes with its
connection. SQLite deployments are one process, where PTB already handles updates in turn.
Which of a chat's updates goes first is the inbox's to say (bot/inbox.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.context import RUNTIME_KEY
from bot.inbox import InboxQueue, chat_of
from bot.services.inbox import Verdict
from bot.unit import update_unit
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# The connection holding the turn of the chat whose update this task is handling, if any: the
# conversation state is read and written in its transaction (bot.persistence), so the new state
# and the inbox row's deletion commit together, as the turn ends.
current_turn: ContextVar[AsyncConnection | None] = ContextVar("current_turn", default=None)

# The two-number advisory locks are a key space of their own, apart from the jobs lock's.
TURN_SPACE = 0x6D61  # "ma"
# A turn normally comes within milliseconds. A process stuck mid-update would hold its chat's turn
# for ever, and every process that waited for it would stop too (each handles one update at a
# time); after this long the update is handled without the turn instead.
TURN_WAIT = "30s"


def chat_key(chat_id: int) -> int:
    """A 32-bit lock key for a chat id (two chats sharing one only wait for each other)."""
    return (chat_id % 2**32) - 2**31


@contextlib.asynccontextmanager
async def chat_turn(engine: AsyncEngine, chat_id: int) -> AsyncIterator[AsyncConnection | None]:
    """Wait for any other process handling this chat, and hold the chat until the block ends.
    Yields the connection holding it, whose transaction commits when the block ends normally
    (and rolls back on an error), or None: without a database the update is handled anyway,
    and fails politely where it needs one."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    connection = await _take_turn(engine, chat_id)
    if connection is None:
        yield None
        return
    try:
        yield connection
        with contextlib.suppress(*UNREACHABLE):
            await connection.commit()  # releases the lock
    finally:
        with contextlib.suppress(*UNREACHABLE):
            await connection.close()  # rolls back what was not committed, releasing the lock


async def _take_turn(engine: AsyncEngine, chat_id: int) -> AsyncConnection | None:
    """A connection holding the chat's lock, or None when the database cannot be reached."""
    connection = None
    try:
        connection = await engine.connect()
        await connection.execute(
            text(
                "SELECT set_config('lock_timeout', :wait, true), "
                "pg_advisory_xact_lock(:space, :chat)"
            ),
            {"wait": TURN_WAIT, "space": TURN_SPACE, "chat": chat_key(chat_id)},
        )
    except UNREACHABLE as error:  # also the lock's time-out
        log.warning("could not take a chat's turn (%s); handling it anyway", type(error).__name__)
        if connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.close()
        return None
    return connection


class TurnTakingApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application that handles each update with one database session and, in a web
    process, in its chat's turn."""

    async def process_update(self, update: object) -> None:
        """Handle the update with one database session (bot/unit.py), in the chat's turn."""
        runtime = self.bot_data.get(RUNTIME_KEY)
        if runtime is None:
            await super().process_update(update)
            return
        async with update_unit(runtime.engine, runtime.session_factory):
            await self._process_in_turn(update, runtime)

    async def _process_in_turn(self, update: object, runtime: Any) -> None:
        """In a web process, hold the chat's turn while its update is handled."""
        chat_id = chat_of(update)
        if runtime.role != "web" or chat_id is None:
            await super().process_update(update)
            return
        async with chat_turn(runtime.engine, chat_id) as turn:
            in_turn = current_turn.set(turn)
            try:
                await self._handle_in_order(update, chat_id, turn)
            finally:
                current_turn.reset(in_turn)

    async def _handle_in_order(
        self, update: object, chat_id: int, turn: AsyncConnection | None
    ) -> None:
        """Handle the update, unless the inbox says an earlier one goes first or it is gone."""
        queue = self.update_queue
        if (
            not isinstance(queue, InboxQueue)
            or not isinstance(update, Update)
            or update.update_id not in queue.kept
        ):
            await super().process_update(update)
            return
        if turn is None:  # the database went away since the update was kept: answer anyway
            queue.forget(update.update_id)  # a sweep hands its row on once the database is back
            await super().process_update(update)
            return
        verdict = await queue.verdict(turn, update, chat_id)
        if verdict is Verdict.LATER:
            queue.put_back(update)
        if verdict is not Verdict.HANDLE:
            return
        if await queue.given_up(update):
            await queue.finish(turn, update)
            await self._apologise(chat_id)
            return
        await super().process_update(update)
        await queue.finish(turn, update)

    async def _apologise(self, chat_id: int) -> None:
        """Tell a chat that a message of theirs was given up."""
        runtime = self.bot_data[RUNTIME_KEY]
        with contextlib.suppress(TelegramError):
            await self.bot.send_message(chat_id, runtime.translate("update-given-up"))
