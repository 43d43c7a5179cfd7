"""One database session per update: every `context.session()` block of an update shares it.

Handlers open short `async with context.session()` blocks between their replies. Each used to be
a session of its own: a connection taken from the pool (on PostgreSQL, pinged first), a
transaction begun and rolled back, so an update of three blocks paid for three. Now the first
block of an update takes a connection and opens the session on it; later blocks reuse both and
the update's end gives the connection back.

A block keeps the meaning it had as a session of its own: what it loaded is detached when it
ends (readable, never refreshed behind its back), and what it wrote without committing is rolled
back, on error or not; no transaction outlives its block. An `autocommit()` block is for
statements that each stand alone (reads, a write whole in one statement): on PostgreSQL they
commit one by one, without the BEGIN and COMMIT or ROLLBACK round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# The unit of the update this task is handling, if any.
current_unit: ContextVar[UpdateUnit | None] = ContextVar("current_unit", default=None)


@dataclass(frozen=True)
class Alongside:
    """More for a statement to write (PostgreSQL: data-modifying CTEs, with their parameters),
    and what to note once it was written."""

    ctes: tuple[CTE, ...]
    parameters: dict[str, Any]
    written: Callable[[], None]


class UpdateUnit:
    """The database work of one update: a connection held from its first use to the update's
    end, and one session on it."""

    def __init__(self, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]):
        self._engine = engine
        self._factory = session_factory
        # A task the update starts (placing a case) outlives it, and must not share its session.
        self._task = asyncio.current_task()
        self._connection: AsyncConnection | None = None
        self._session: AsyncSession | None = None
        self._in_block = False
        self._closed = False
        # Conversation states the update changed, written by the persistence in its session.
        self.held_states: dict[tuple[str, Any], object | None] = {}
        # The update's key among those handled, to record as it ends (bot/services/handled.py);
        # None once recorded, or for an update not to record (one that arrived again).
        self.to_record: int | None = None
        # The same key, kept once recorded: the process remembers it as handled here.
        self.handled_key: int | None = None
        # Conversation states written ahead, with the step's data (bot/persistence.py): the
        # update's end writes them only if they came out otherwise.
        self.ahead: dict[tuple[str, Any], str] = {}

    @property
    def dialect(self) -> str:
        """The database's dialect name ("postgresql", "sqlite")."""
        return self._engine.dialect.name

    @property
    def is_open(self) -> bool:
        """Whether the update is still being handled."""
        return not self._closed

    def serves_this_task(self) -> bool:
        """Whether the running task is the update's own."""
        return asyncio.current_task() is self._task

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The update's session for one block (a block inside a block shares the outer's)."""
        if self._in_block:
            assert self._session is not None
            yield self._session
            return
        session = await self._open()
        self._in_block = True
        try:
            yield session
        finally:
            self._in_block = False
            await self._end_block()

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncSession]:
        """The update's session for a block of statements that each stand alone: reads, or a
        write whole in one statement. On PostgreSQL each runs as its own transaction, without
        the BEGIN and ROLLBACK (or COMMIT) round trips of a block: two of the three round trips
        of a one-statement block, which most of an update's blocks are. Inside another block,
        that block's session and transaction."""
        if self._in_block or self.dialect != "postgresql":  # SQLite has no round trips to save
            async with self.session() as session:
                yield session
            return
        async with self._autocommitting(), self.session() as session:
            yield session

    @contextlib.asynccontextmanager
    async def _autocommitting(self) -> AsyncIterator[AsyncConnection]:
        """The update's connection in autocommit until the block ends."""
        await self._open()
        connection = self._connection
        assert connection is not None
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield connection
        finally:  # ends SQLAlchemy's transaction (the database had none), so the level can change
            if connection is self._connection:  # not dropped meanwhile
                await connection.rollback()
                await connection.execution_options(
                    isolation_level=connection.default_isolation_level
                )

    async def close(self) -> None:
        """End the update's transaction and give its connection back to the pool."""
        self._closed = True
        if self.held_states:  # the update ended before its last handler group saved them
            log.warning("%d conversation states not saved", len(self.held_states))
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        session, connection = self._session, self._connection
        self._session = self._connection = None
        with contextlib.suppress(*UNREACHABLE):
            if session is not None:
                await session.close()
            if connection is not None:
                await connection.close()

    async def _open(self) -> AsyncSession:
        if self._session is None:
            self._connection = await self._engine.connect()
            self._session = self._factory(bind=self._connection)
        return self._session

    async def _end_block(self) -> None:
        """As closing a session would: what the block loaded is detached as it is, and what it
        wrote without committing is rolled back. A transaction that only read is ended too, so no
        PostgreSQL connection sits "idle in transaction" while the handler talks to Telegram
        (seconds under a 429), holding locks a migration's ALTER TABLE would queue behind."""
        if self._session is None:
            return
        if self._session.identity_map or self._session.new:  # most blocks load no object
            self._session.expunge_all()  # before the rollback, which would expire them
        if self._session.in_transaction():
            await self._discard_changes()

    async def _discard_changes(self) -> None:
        """Roll back; a connection that cannot even do that is dropped, the next block takes
        another (the database may be back by then)."""
        if self._session is None:
            return
        try:
            await self._session.rollback()
        except UNREACHABLE:
            await self._drop_connection()


@contextlib.asynccontextmanager
async def update_unit(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[UpdateUnit]:
    """Handle one update with its own unit; the unit closes when the update is handled."""
    unit = UpdateUnit(engine, session_factory)
    token = current_unit.set(unit)
    try:
        yield unit
    finally:
        current_unit.reset(token)
        await unit.close()


def unit_of_this_task() -> UpdateUnit | None:
    """The unit of the update the running task handles, if it is one."""
    unit = current_unit.get()
    return unit if unit is not None and unit.serves_this_task() else None
