"""Which process runs the scheduled jobs: the one holding a PostgreSQL advisory lock.

The lock lives on a connection kept open for the purpose; if the process dies the connection
closes, the lock is released, and another worker takes it at its next try (every 30 seconds).
SQLite deployments are one process, which always leads.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

LOCK_KEY = 0x6D6168616C6C65  # "mahalle"
RETRY_SECONDS = 30


async def still_open(connection: AsyncConnection) -> bool:
    """Whether a lock's connection survived (a database restart drops it, lock and all); one
    that did not is dropped."""
    try:
        await connection.scalar(text("SELECT 1"))
        await connection.commit()
    except Exception:
        with contextlib.suppress(Exception):
            await connection.invalidate()
        return False
    return True


class Leadership:
    """Tries to hold the jobs lock; `leading` says whether this process has it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connection: AsyncConnection | None = None
        self.leading = engine.dialect.name != "postgresql"

    async def try_lead(self) -> bool:
        """Take the lock if it is free; True when this process leads (now or already)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._connection is not None:
            if await still_open(self._connection):
                return True
            log.warning("lost the jobs lock with its database connection; trying to take it back")
            self._connection, self.leading = None, False
        connection = await self.engine.connect()
        try:
            acquired = bool(
                await connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
                )
            )
        except Exception:
            await connection.close()
            raise
        if not acquired:
            await connection.close()
            return False
        await connection.commit()  # keep the session-level lock, end the transaction
        self._connection, self.leading = connection, True
        log.info("this process now runs the scheduled jobs")
        return True

    async def step_down(self) -> None:
        """Release the lock (at shutdown)."""
        connection, self._connection = self._connection, None
        self.leading = self.engine.dialect.name != "postgresql"
        if connection is None:
            return
        try:
            # Unlock explicitly: closing only returns the connection to the pool, lock and all.
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            await connection.close()
        except Exception:  # the connection died already, and the lock with it
            with contextlib.suppress(Exception):
                await connection.invalidate()
