"""The updates already handled, kept for a day, so that one arriving again is handled once.

Telegram sends an update again when its first delivery was not answered in time, and a
replayed update carries the id of the first. An update is looked up as its handling starts
and recorded as handled as it ends, in the statement that saves its conversation state
(`RECORDING`, PostgreSQL) or on its own. The look-up is in the receiving process's memory
(`HandledHere`): one process at a time receives a bot's updates (bot/receiving.py), so an update
it did not handle, newer than every update recorded when it began receiving, is new; only an
older one, which another process may have handled (a redelivery after a takeover), is looked up
in the database. A webhook is answered only once its update was handled
(bot/serving.py), so an update the receiving process died on is sent again by Telegram and
handled, from its start, by the process receiving for the bot then: every step is written so
that taking it again repeats nothing (a draft saved twice is one draft; a report confirmed
twice is one case, the second press told it was sent).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import Executable, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models.db import built_once, dialect_insert, table_of
from models.entities import HandledUpdate

_HANDLED = table_of(HandledUpdate)
# How long a handled update's id is kept (the nightly retention job forgets older ones): Telegram
# gives up sending an update again within a day.
HANDLED_KEPT = timedelta(days=1)


@built_once
def _claim(dialect: str) -> Executable:
    return (
        dialect_insert(dialect, _HANDLED)
        .values(update_id=bindparam("update_id"), handled_at=bindparam("now"))
        .on_conflict_do_nothing()
        .returning(_HANDLED.c.update_id)
    )


_SEEN = select(_HANDLED.c.update_id).where(_HANDLED.c.update_id == bindparam("update_id"))
# Recording the update as handled, as a part of another statement (PostgreSQL), so that an
# update ends with one statement: its new conversation state written and its id recorded.
RECORDING = (
    postgresql_insert(_HANDLED)
    .values(update_id=bindparam("handled_update_id"), handled_at=func.now())
    .on_conflict_do_nothing()
    .cte("recorded")
)


async def seen(*, session: AsyncSession, update_id: int) -> bool:
    """Whether the update was handled before (it arrived again). One statement."""
    return await session.scalar(_SEEN, {"update_id": update_id}) is not None


_HIGHEST = select(func.max(_HANDLED.c.update_id)).where(
    _HANDLED.c.update_id.between(bindparam("low"), bindparam("high"))
)


class HandledHere:
    """The updates of one bot this process handled, and below which key the database must be
    asked: the highest recorded when the process began receiving the bot."""

    # Keys kept in memory; an older one leaves it for the database's record (the mark rises).
    KEPT = 100_000

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high  # the bot's range of keys (bot.runtime.UPDATE_RANGE)
        self.mark: int | None = None  # None: to read, at the next update
        self._keys: set[int] = set()
        self._order: deque[int] = deque()

    def begin_receiving(self) -> None:
        """The process (again) receives the bot: others may have handled updates meanwhile."""
        self.mark = None

    def add(self, key: int) -> None:
        """The update with this key was handled here."""
        if key in self._keys:
            return
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self.KEPT:
            oldest = self._order.popleft()
            self._keys.discard(oldest)
            if self.mark is not None:  # else the mark read next is at least as high
                self.mark = max(self.mark, oldest)

    def __contains__(self, key: object) -> bool:
        """Whether this process handled the update with this key."""
        return key in self._keys

    def may_be_elsewhere(self, key: int) -> bool:
        """Whether another process may have handled it: the database must be asked."""
        return key not in self._keys and (self.mark is None or key <= self.mark)

    async def handled_before(self, *, session: AsyncSession, key: int) -> bool:
        """Whether the update with this key was handled before (it arrived again): from memory,
        or (for a key not above the mark) from the database."""
        if key in self._keys:
            return True
        if self.mark is None:
            highest = await session.scalar(_HIGHEST, {"low": self.low, "high": self.high})
            self.mark = self.low - 1 if highest is None else int(highest)
        if key > self.mark:
            return False
        return await seen(session=session, update_id=key)


@built_once
def _record(dialect: str) -> Executable:
    return (
        dialect_insert(dialect, _HANDLED)
        .values(update_id=bindparam("update_id"), handled_at=bindparam("now"))
        .on_conflict_do_nothing()
    )


async def record(*, session: AsyncSession, update_id: int, now: datetime) -> None:
    """Record that the update was handled (in the caller's transaction)."""
    await session.execute(_record(session), {"update_id": update_id, "now": now})


async def claim(*, session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Record that an update is being handled, and commit; False when it was handled already
    (it arrived again). One statement, on every update."""
    claimed = await session.scalar(_claim(session), {"update_id": update_id, "now": now})
    await session.commit()
    return claimed is not None


async def forget_handled(*, session: AsyncSession, handled_before: datetime) -> int:
    """Forget the updates handled before the moment given, and commit; how many."""
    result = await session.execute(
        delete(HandledUpdate).where(HandledUpdate.handled_at < handled_before)
    )
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
