"""What other processes announce, heard within moments: a change to who is blocked, and
messages queued for delivery.

Each process keeps the blocked users in memory, so checking an update costs no query. On
PostgreSQL, blocking or unblocking notifies a channel in the same transaction (bot.services.users),
and every process that handles updates listens on a connection of its own and reloads the list
when it hears it. The reload every minute stays, for a listening connection that died; it opens
a new one.

With several bots, a person's updates note which bot is theirs only when it changes; each
process keeps who it knows, and a move to another bot is announced on a channel too.

A web process that queues a card cannot wake a worker's sender by calling it: they are apart.
Every statement that adds to the outbox notifies a channel instead (a trigger, migration 0031,
so it costs the web process no round trip), delivered at the commit; a worker listens and
wakes its senders, so a card leaves at once rather than at the sender's next poll. A process
that does everything wakes its own senders after its commits and does not listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.runtime import Runtime
from bot.services import users
from bot.services.outbox import OUTBOX_CHANNEL
from bot.services.users import BLOCKLIST_CHANNEL, WRITERS_CHANNEL
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# What a pooled connection the database dropped a moment ago may raise at its first use: the
# driver may not have seen it close yet, and then errs in its own ways.
UNUSABLE = (
    *UNREACHABLE,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresError,
)


async def reload_blocked(runtime: Runtime) -> None:
    """Reload who is blocked from the database."""
    async with runtime.session_factory() as session:
        banned = await users.banned_ids(session=session)
    for each in runtime.every_bot:
        each.banned = banned


def channels_for(role: str) -> tuple[str, ...]:
    """What a process in this role listens for: blocks and people moving between bots where
    updates are handled, queued messages where a worker sends them."""
    if role == "worker":
        return (OUTBOX_CHANNEL,)
    return (BLOCKLIST_CHANNEL, WRITERS_CHANNEL)


class Listener:
    """Hears other processes' announcements on one connection of its own (PostgreSQL only)."""

    def __init__(self, runtime: Runtime, channels: tuple[str, ...]) -> None:
        self.runtime = runtime
        self.channels = channels
        self._connection: AsyncConnection | None = None
        self._reloads: set[asyncio.Task[None]] = set()
        self._callbacks: dict[str, Callable[..., None]] = {
            BLOCKLIST_CHANNEL: self._blocklist_changed,
            OUTBOX_CHANNEL: self._messages_queued,
            WRITERS_CHANNEL: self._moved_to_a_bot,
        }

    @property
    def listening(self) -> bool:
        """Whether a live connection listens."""
        driver = self._driver()
        return driver is not None and not driver.is_closed()

    def _driver(self) -> Any:
        if self._connection is None or self._connection.sync_connection is None:
            return None
        return self._connection.sync_connection.connection.driver_connection

    async def listen(self) -> None:
        """Listen, on a new connection if there is none or it died."""
        if self.runtime.engine.dialect.name != "postgresql" or self.listening:
            return
        await self.close()
        # Pooled connections are not probed before use: one the database dropped a moment ago
        # may be handed out before the driver has seen it close, so a failure is tried once more.
        for attempt in range(2):
            try:
                connection = await self.runtime.engine.connect()
                await connection.get_raw_connection()
                self._connection = connection
                for channel in self.channels:
                    await self._driver().add_listener(channel, self._callbacks[channel])
                # What was announced while nobody listened is unknown: who wrote to which bot
                # is noted again from each person's next update.
                for runtime in self.runtime.every_bot:
                    runtime.writers.clear()
                return
            except UNUSABLE as error:
                await self.close()
                if attempt:
                    log.warning("cannot listen to other processes (%s)", type(error).__name__)

    def _messages_queued(self, *_: object) -> None:
        """Another process committed messages to send: every bot's sender looks now."""
        self.runtime.wake_outbox()

    def _moved_to_a_bot(
        self, _connection: object, _pid: object, _channel: str, payload: str
    ) -> None:
        """Someone wrote to a bot not theirs before ("user id:bot key"): the process's other
        bots no longer know them as theirs."""
        user_id, _, bot_key = payload.partition(":")
        if not user_id.lstrip("-").isdigit():
            return
        for runtime in self.runtime.every_bot:
            if runtime.bot_key != bot_key:
                runtime.writers.discard(int(user_id))

    def _blocklist_changed(self, *_: object) -> None:
        """A block or unblock was committed somewhere: reload (the list is small)."""
        reload = asyncio.create_task(self._reload(), name="blocklist-reload")
        self._reloads.add(reload)
        reload.add_done_callback(self._reloads.discard)

    async def _reload(self) -> None:
        try:
            await reload_blocked(self.runtime)
        except UNREACHABLE as error:  # the minute's reload catches up
            log.warning("could not reload the block list (%s)", type(error).__name__)

    async def close(self) -> None:
        """Stop listening and give the connection back."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.invalidate()  # not back to the pool: it still listens
                await connection.close()
