"""One update of a private chat at a time across web processes.

A reply reaches the resident before the conversation state is saved; someone who answers at once
may have their next update land on another web process, which would read the old state. Each
update of a private chat is therefore handled holding a PostgreSQL advisory lock on that chat,
taken before the state is read and released once it is saved. A dead process's lock goes with
its connection. SQLite deployments are one process, where PTB already handles updates in turn.
Which of a chat's updates goes first is the inbox's to say (bot/inbox.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from telegram import Update
from telegram.ext import Application

from bot.context import RUNTIME_KEY
from bot.inbox import InboxQueue, private_chat
from bot.services.inbox import Verdict
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# The two-number advisory locks are a key space of their own, apart from the jobs lock's.
TURN_SPACE = 0x6D61  # "ma"


def chat_key(chat_id: int) -> int:
    """A 32-bit lock key for a chat id (two chats sharing one only wait for each other)."""
    return (chat_id % 2**32) - 2**31


@contextlib.asynccontextmanager
async def chat_turn(engine: AsyncEngine, chat_id: int) -> AsyncIterator[None]:
    """Wait for any other process handling this chat, and hold the chat until the block ends.
    Without a database the update is handled anyway, and fails politely where it needs one."""
    if engine.dialect.name != "postgresql":
        yield
        return
    connection = await _take_turn(engine, chat_id)
    try:
        yield
    finally:
        if connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.close()  # rolls back, releasing the lock


async def _take_turn(engine: AsyncEngine, chat_id: int) -> AsyncConnection | None:
    """A connection holding the chat's lock, or None when the database cannot be reached."""
    connection = None
    try:
        connection = await engine.connect()
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:space, :chat)"),
            {"space": TURN_SPACE, "chat": chat_key(chat_id)},
        )
    except UNREACHABLE as error:
        log.warning("could not take a chat's turn (%s); handling it anyway", type(error).__name__)
        if connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.close()
        return None
    return connection


class TurnTakingApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application that, in a web process, handles a private chat's update in its turn."""

    async def process_update(self, update: object) -> None:
        """Take the chat's turn (web processes only), then handle the update as usual."""
        runtime = self.bot_data.get(RUNTIME_KEY)
        chat_id = private_chat(update)
        if runtime is None or runtime.role != "web" or chat_id is None:
            await super().process_update(update)
            return
        async with chat_turn(runtime.engine, chat_id):
            await self._handle_in_order(update, chat_id)

    async def _handle_in_order(self, update: object, chat_id: int) -> None:
        """Handle the update, unless the inbox says an earlier one goes first or it is gone."""
        queue = self.update_queue
        if not isinstance(queue, InboxQueue) or not isinstance(update, Update):
            await super().process_update(update)
            return
        verdict = await queue.verdict(update, chat_id)
        if verdict is Verdict.LATER:
            queue.put_back(update)
        if verdict is not Verdict.HANDLE:
            return
        try:
            await super().process_update(update)
        finally:
            await queue.finish(update)
