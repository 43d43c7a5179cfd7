"""The updates already handled, kept for a day, so that one arriving again is handled once.

Telegram sends an update again when its first delivery was not answered in time, and a
replayed update carries the id of the first. An update is recorded as its handling starts
(`claim`): a process killed mid-update does not handle the rest of it again after a restart,
rather than handling half of it twice. A webhook is answered only once its update was handled
(bot/serving.py), so an update a process had received but not started on when it died is sent
again by Telegram, and handled by the process receiving for the bot then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Executable, bindparam, delete
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
