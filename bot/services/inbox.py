"""The inbox: private chats' updates between their receipt and the end of their handling."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.db import dialect_insert
from models.entities import InboxUpdate


class Verdict(StrEnum):
    """What a process does with an update from the inbox when the chat's turn is its."""

    HANDLE = "handle"  # taken by this process: handle it now
    LATER = "later"  # an earlier update of the chat has not been handled yet: put this one back
    GONE = "gone"  # another process handled it or is handling it: drop it


async def store(
    *, session: AsyncSession, update_id: int, chat_id: int, payload: dict[str, Any], now: datetime
) -> bool:
    """Keep a received update and commit; False when it is already kept (Telegram sent it again
    because its first delivery was not answered)."""
    stored = await session.scalar(
        dialect_insert(session, InboxUpdate)
        .values(update_id=update_id, chat_id=chat_id, payload=payload, received_at=now)
        .on_conflict_do_nothing()
        .returning(InboxUpdate.update_id)
    )
    await session.commit()
    return stored is not None


async def take(
    *, session: AsyncSession, update_id: int, chat_id: int, now: datetime, wait_since: datetime
) -> Verdict:
    """Take the update and commit, unless it is gone or an earlier update of its chat, received
    after `wait_since`, has not been taken (call it holding the chat's turn)."""
    earlier = aliased(InboxUpdate)
    earlier_waits = exists().where(
        earlier.chat_id == chat_id,
        earlier.update_id < update_id,
        earlier.taken_at.is_(None),
        earlier.received_at > wait_since,
    )
    taken = await session.scalar(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id, InboxUpdate.taken_at.is_(None), ~earlier_waits)
        .values(taken_at=now)
        .returning(InboxUpdate.update_id)
    )
    await session.commit()
    if taken is not None:
        return Verdict.HANDLE
    untaken = await session.scalar(
        select(InboxUpdate.update_id).where(
            InboxUpdate.update_id == update_id, InboxUpdate.taken_at.is_(None)
        )
    )
    return Verdict.LATER if untaken is not None else Verdict.GONE


async def finish(*, session: AsyncSession, update_id: int) -> None:
    """The update was handled: forget it."""
    await session.execute(delete(InboxUpdate).where(InboxUpdate.update_id == update_id))
    await session.commit()


async def orphans(
    *, session: AsyncSession, received_before: datetime, limit: int = 200
) -> list[tuple[int, dict[str, Any]]]:
    """(update id, payload) of updates nobody took though they arrived before the moment given:
    the process that received them stopped first."""
    rows = await session.execute(
        select(InboxUpdate.update_id, InboxUpdate.payload)
        .where(InboxUpdate.taken_at.is_(None), InboxUpdate.received_at < received_before)
        .order_by(InboxUpdate.update_id)
        .limit(limit)
    )
    return [(update_id, payload) for update_id, payload in rows]


async def drop_abandoned(*, session: AsyncSession, taken_before: datetime) -> int:
    """Forget updates taken before the moment given and never finished (their process died while
    handling them; handling them again could send an answer twice); how many and commit."""
    dropped = await session.execute(delete(InboxUpdate).where(InboxUpdate.taken_at < taken_before))
    await session.commit()
    return int(dropped.rowcount)  # type: ignore[attr-defined]
