"""The inbox: chats' updates between their receipt and the end of their handling."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Executable, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.db import built_once, dialect_insert, table_of
from models.entities import InboxUpdate

# A web process runs these three on every update it receives: built once (models.db.built_once).
_INBOX = table_of(InboxUpdate)
_KEPT_OF_CHAT = select(_INBOX.c.update_id).where(
    _INBOX.c.chat_id == bindparam("chat_id"),
    _INBOX.c.update_id <= bindparam("update_id"),
    or_(_INBOX.c.update_id == bindparam("update_id"), _INBOX.c.received_at > bindparam("since")),
)
_FORGET = delete(_INBOX).where(_INBOX.c.update_id == bindparam("update_id"))
# The same deletion as a part of another statement (PostgreSQL), so that a chat's turn ends
# with one statement: the update's new conversation state written, its row deleted, together.
FINISHING = (
    delete(_INBOX).where(_INBOX.c.update_id == bindparam("finished_update_id")).cte("finished")
)


@built_once
def _keep(dialect: str) -> Executable:
    return dialect_insert(dialect, _INBOX).on_conflict_do_nothing().returning(_INBOX.c.update_id)


class Verdict(StrEnum):
    """What a process does with an update from the inbox when the chat's turn is its."""

    HANDLE = "handle"  # handle it now
    LATER = "later"  # an earlier update of the chat has not been handled yet: put this one back
    GONE = "gone"  # another process handled it already: drop it


async def store(
    *, session: AsyncSession, update_id: int, chat_id: int, payload: dict[str, Any], now: datetime
) -> bool:
    """Keep a received update and commit; False when it is already kept (Telegram sent it again
    because its first delivery was not answered)."""
    row = {"update_id": update_id, "chat_id": chat_id, "payload": payload, "received_at": now}
    stored = await session.scalar(_keep(session), row)
    await session.commit()
    return stored is not None


async def verdict(
    *, session: AsyncSession, update_id: int, chat_id: int, wait_since: datetime
) -> Verdict:
    """Whether the update is handled now: not when it is gone, nor while an earlier update of
    its chat, received after `wait_since`, waits. Call it holding the chat's turn."""
    rows = await session.execute(
        _KEPT_OF_CHAT, {"chat_id": chat_id, "update_id": update_id, "since": wait_since}
    )
    kept = set(rows.scalars())
    if update_id not in kept:
        return Verdict.GONE
    return Verdict.LATER if len(kept) > 1 else Verdict.HANDLE


async def finish(*, session: AsyncSession, update_id: int) -> None:
    """The update was handled: forget it, in the transaction that saves its conversation states
    (a process that dies before commits neither, and leaves the update for another to handle)."""
    await session.execute(_FORGET, {"update_id": update_id})


async def count_handling(*, session: AsyncSession, update_id: int) -> int | None:
    """Record that a process starts on an update a sweep gave it, and commit (before handling,
    so a process that dies on it still counts): how many times so far; None when it is gone."""
    handlings = await session.scalar(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id)
        .values(handlings=InboxUpdate.handlings + 1)
        .returning(InboxUpdate.handlings)
    )
    await session.commit()
    return handlings


async def orphans(
    *, session: AsyncSession, received_before: datetime, limit: int = 200
) -> list[tuple[int, dict[str, Any]]]:
    """(update id, payload) of updates still not handled that arrived before the moment given:
    the process that received them stopped, or is far behind."""
    rows = await session.execute(
        select(InboxUpdate.update_id, InboxUpdate.payload)
        .where(InboxUpdate.received_at < received_before)
        .order_by(InboxUpdate.update_id)
        .limit(limit)
    )
    return [(update_id, payload) for update_id, payload in rows]
