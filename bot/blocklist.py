"""Who is blocked, known to every process within moments of a coordinator's /block.

Each process keeps the blocked users in memory, so checking an update costs no query. On
PostgreSQL, blocking or unblocking notifies a channel in the same transaction (bot.services.users),
and every process listens on a connection of its own and reloads the list when it hears it. The
reload every minute stays, for a listening connection that died; it opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.runtime import Runtime
from bot.services import users
from bot.services.users import BLOCKLIST_CHANNEL
from models.db import UNREACHABLE

log = logging.getLogger(__name__)


async def reload_blocked(runtime: Runtime) -> None:
    """Reload who is blocked from the database."""
    async with runtime.session_factory() as session:
        banned = await users.banned_ids(session=session)
    for each in runtime.siblings.values() or [runtime]:  # every bot of the deployment
        each.banned = banned


class BlockListListener:
    """Reloads the block list whenever another process changes it (PostgreSQL only)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._connection: AsyncConnection | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        """Whether a live connection listens for changes."""
        driver = self._driver()
        return driver is not None and not driver.is_closed()

    def _driver(self) -> Any:
        if self._connection is None or self._connection.sync_connection is None:
            return None
        return self._connection.sync_connection.connection.driver_connection

    async def listen(self) -> None:
        """Listen for changes, on a new connection if there is none or it died."""
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
                await self._driver().add_listener(BLOCKLIST_CHANNEL, self._heard)
                return
            except (*UNREACHABLE, asyncpg.InterfaceError, asyncpg.PostgresError) as error:
                await self.close()
                if attempt:
                    log.warning("cannot listen for block list changes (%s)", type(error).__name__)

    def _heard(self, *_: object) -> None:
        """A change was committed somewhere: reload (the list is small)."""
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
