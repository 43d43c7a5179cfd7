"""Telegram's allowance for messages into a group, counted in the database.

Telegram takes about 20 messages a minute from a bot into one group. PTB's flood limiter waits
for a full group's room inside the call, and the outbox sender, one row at a time, with it: a
storm of cards to one agency held back every other chat's messages just as long. So the sender
asks here first, and a row for a group with no room is put off while other chats' rows go.

The room is counted as the limiter counts it (a bucket of `per_minute` that empties evenly over
a minute), so a row let through does not wait in the limiter. It lives in the database, not in
a worker's memory: two workers (a standby delivers too) used to let through twice the allowance,
and a restarted worker forgot what it had just sent; Telegram then answers 429 and the limiter
holds up every send of that worker.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.db import built_once, dialect_insert, table_of
from models.entities import GroupPacing

_PACING = table_of(GroupPacing)
_LEVEL = select(_PACING.c.level, _PACING.c.measured_at).where(
    _PACING.c.chat_id == bindparam("chat_id")
)


@built_once
def _set_level(dialect: str) -> Executable:
    upsert = dialect_insert(dialect, _PACING)
    return upsert.on_conflict_do_update(
        index_elements=["chat_id"],
        set_={"level": upsert.excluded.level, "measured_at": upsert.excluded.measured_at},
    )


def level_at(level: float, measured_at: datetime, *, now: datetime, per_minute: int) -> float:
    """A bucket's fill at `now`, `level` when measured: it empties by `per_minute` a minute."""
    measured_at = measured_at if measured_at.tzinfo else measured_at.replace(tzinfo=now.tzinfo)
    drained = max((now - measured_at).total_seconds(), 0.0) * per_minute / 60
    return max(level - drained, 0.0)


async def take_room(
    session: AsyncSession, *, chat_id: int, now: datetime, per_minute: int
) -> float:
    """Count a message into a group and return 0 when the group has room for it at `now`;
    otherwise count nothing and return the seconds until it has. The caller asks only for
    groups (bot/chats.py: Bale's groups have positive ids).

    The caller holds the chat's turn in the outbox (its oldest pending row, locked), so no other
    worker reads or writes this group's level meanwhile, and the new level commits together
    with what became of the row."""
    measured = (await session.execute(_LEVEL, {"chat_id": chat_id})).first()
    level = level_at(*measured, now=now, per_minute=per_minute) if measured else 0.0
    if level + 1 > per_minute:
        return (level + 1 - per_minute) * 60 / per_minute
    row = {"chat_id": chat_id, "level": level + 1, "measured_at": now}
    await session.execute(_set_level(session), row)
    return 0.0
