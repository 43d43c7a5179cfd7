"""One receiver per bot: the process holding a PostgreSQL advisory lock on the bot takes its
updates; the others stand by and one of them takes over within seconds when it goes.

Why one: a bot may send about 30 messages a second, roughly 17 updates a second at the calls an
update costs, while one process handles several times that. So a bot's updates need no more
than one process, and with one, a chat's updates are handled in the order they came by that
process alone (bot.turns.ChatOrderedProcessor), its conversation states are the ones in its
memory, and nothing has to be passed between processes. Several processes still share the work
of a deployment with several bots (each leads some), the sending (the outbox's rows are claimed
with SKIP LOCKED) and stand by for each other.

Each lock lives on a connection kept open for it; if the process dies the connection closes,
the lock is released and a standby takes it at its next try (every RETRY_SECONDS). While no
process has taken it yet, Telegram keeps a webhook's updates and sends them again, and a
polled bot's updates wait on Telegram's side. A process takes at most one more bot at each try,
so processes whose start-ups end within RETRY_SECONDS of each other share the bots out; a bot
is not moved while its receiver lives. On SQLite the one process leads every bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.lanes import stopping
from bot.leader import still_open

log = logging.getLogger(__name__)

# The two-number advisory locks of receivers: a key space of their own, the bot's index second.
RECEIVER_SPACE = 0x6D62  # "mb"
RETRY_SECONDS = 2.0

Change = Callable[[str], Awaitable[None]]


async def _nothing(_: str) -> None:
    return None


class Receivers:
    """The bots this process receives for (`leading`), by their keys in config order."""

    def __init__(
        self,
        engine: AsyncEngine,
        bot_keys: list[str],
        *,
        on_gain: Change = _nothing,
        on_loss: Change = _nothing,
    ) -> None:
        self.engine = engine
        self.bot_keys = list(bot_keys)
        self.on_gain, self.on_loss = on_gain, on_loss
        # The lock's connection of each bot received for (None on SQLite: no lock needed).
        self._held: dict[str, AsyncConnection | None] = {}
        self.shared = engine.dialect.name == "postgresql"

    @property
    def leading(self) -> set[str]:
        """The bots this process receives for now."""
        return set(self._held) if self.shared else set(self.bot_keys)

    def leads(self, bot_key: str) -> bool:
        """Whether this process receives this bot's updates now."""
        return not self.shared or bot_key in self._held

    async def step(self) -> None:
        """Check the locks held are still held, then try to take one bot nobody receives for."""
        if not self.shared:
            for key in self.bot_keys:
                if key not in self._held:
                    await self.on_gain(key)
                    self._held[key] = None
            return
        for key, connection in list(self._held.items()):
            if connection is None or not await still_open(connection):
                del self._held[key]
                log.warning("lost the receiving lock of bot %s with its connection", key)
                await self.on_loss(key)
        for key in self.bot_keys:
            if key in self._held:
                continue
            connection = await self._take(key)
            if connection is None:
                continue
            try:  # ready first (its chats' states read), then its updates are taken
                await self.on_gain(key)
            except BaseException:
                await self._let_go(key, connection)
                raise
            self._held[key] = connection
            log.info("this process now receives the updates of bot %s", key)
            return  # one more a try: processes started together share the bots out

    async def _take(self, key: str) -> AsyncConnection | None:
        """The bot's lock on a connection of its own, or None when another process holds it."""
        connection = await self.engine.connect()
        try:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:space, :bot)"),
                {"space": RECEIVER_SPACE, "bot": self.bot_keys.index(key)},
            )
            await connection.commit()  # keep the session-level lock, end the transaction
        except Exception:
            await connection.close()
            raise
        if not taken:
            await connection.close()
            return None
        return connection

    async def run_forever(self) -> None:
        """Try every RETRY_SECONDS until cancelled, the first RETRY_SECONDS after the try the
        process made as it started (at once, it would take a second bot before another
        process started with it had its first try)."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.step()
            except Exception:  # the database may be away; the next try may find it back
                if stopping():  # a stop the driver wrapped in an error of its own
                    raise asyncio.CancelledError from None
                log.exception("checking which bots this process receives for failed")

    async def release_all(self) -> None:
        """Stop receiving for every bot and let the standbys take them (at shutdown)."""
        for key, connection in list(self._held.items()):
            del self._held[key]
            await self.on_loss(key)
            if connection is not None:
                await self._let_go(key, connection)

    async def _let_go(self, key: str, connection: AsyncConnection) -> None:
        """Release a bot's lock and close its connection."""
        try:
            # Unlock explicitly: closing only returns the connection to the pool, lock and all.
            await connection.execute(
                text("SELECT pg_advisory_unlock(:space, :bot)"),
                {"space": RECEIVER_SPACE, "bot": self.bot_keys.index(key)},
            )
            await connection.close()
        except Exception:  # the connection died already, and the lock with it
            with contextlib.suppress(Exception):
                await connection.invalidate()
