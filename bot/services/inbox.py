"""The inbox: chats' updates between their receipt and the end of their handling; and the
updates already handled, kept for a day, so that one arriving again is handled once.

Telegram sends an update again when its first delivery was not answered in time, and a
replayed update carries the id of the first. An update kept in the inbox is recorded as handled
in the statement that deletes its row as its chat's turn ends (a process that dies before
records neither, and another handles it); a web process then refuses that id at receipt,
before it is kept or queued. An update that does not pass through the inbox (one process,
polling) is recorded as its handling starts (`claim`): a process killed mid-update does not
handle the rest of it again after a restart, rather than handling half of it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Executable, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.jalali import utcnow
from models.db import built_once, dialect_insert, table_of
from models.entities import HandledUpdate, InboxUpdate

# A web process runs these three on every update it receives: built once (models.db.built_once).
_INBOX = table_of(InboxUpdate)
_KEPT_OF_CHAT = select(_INBOX.c.update_id).where(
    _INBOX.c.chat_id == bindparam("chat_id"),
    _INBOX.c.update_id <= bindparam("update_id"),
    or_(_INBOX.c.update_id == bindparam("update_id"), _INBOX.c.received_at > bindparam("since")),
)
_HANDLED = table_of(HandledUpdate)
# How long a handled update's id is kept (the nightly retention job forgets older ones): Telegram
# gives up sending an update again within a day.
HANDLED_KEPT = timedelta(days=1)
_FORGET = delete(_INBOX).where(_INBOX.c.update_id == bindparam("update_id"))


def _recorded_as_handled(parameter: str) -> Insert:
    """PostgreSQL: delete the update's inbox row and record its id as handled, in one
    statement (the insert reads the deletion, so an update already gone is not recorded)."""
    deleted = (
        delete(_INBOX)
        .where(_INBOX.c.update_id == bindparam(parameter))
        .returning(_INBOX.c.update_id)
        .cte("finished_row")
    )
    return (
        postgresql_insert(_HANDLED)
        .from_select(["update_id", "handled_at"], select(deleted.c.update_id, func.now()))
        .on_conflict_do_nothing()
    )


# The same, as a part of another statement (PostgreSQL), so that a chat's turn ends with one
# statement: the update's new conversation state written, its row deleted and its id recorded
# as handled, together.
FINISHING = _recorded_as_handled("finished_update_id").cte("finished")
_FINISH_ALONE = _recorded_as_handled("update_id")


@built_once
def _keep(dialect: str) -> Executable:
    """Keep a received update unless it is kept already or was handled (one statement)."""
    names = ("update_id", "chat_id", "payload", "received_at")
    row = select(*(bindparam(name, type_=_INBOX.c[name].type) for name in names)).where(
        ~exists().where(_HANDLED.c.update_id == bindparam("update_id"))
    )
    return (
        dialect_insert(dialect, _INBOX)
        .from_select(list(names), row)
        .on_conflict_do_nothing()
        .returning(_INBOX.c.update_id)
    )


@built_once
def _claim(dialect: str) -> Executable:
    return (
        dialect_insert(dialect, _HANDLED)
        .values(update_id=bindparam("update_id"), handled_at=bindparam("now"))
        .on_conflict_do_nothing()
        .returning(_HANDLED.c.update_id)
    )


class Verdict(StrEnum):
    """What a process does with an update from the inbox when the chat's turn is its."""

    HANDLE = "handle"  # handle it now
    LATER = "later"  # an earlier update of the chat has not been handled yet: put this one back
    GONE = "gone"  # another process handled it already: drop it


async def store(
    *, session: AsyncSession, update_id: int, chat_id: int, payload: dict[str, Any], now: datetime
) -> bool:
    """Keep a received update and commit; False when it is already kept or was handled
    (Telegram sent it again because its first delivery was not answered, or it was replayed)."""
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
    """The update was handled: forget it and record it as handled, in the transaction that
    saves its conversation states (a process that dies before commits neither, and leaves the
    update for another to handle)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_FINISH_ALONE, {"update_id": update_id})
        return
    if (await session.execute(_FORGET, {"update_id": update_id})).rowcount:  # type: ignore[attr-defined]
        await session.execute(
            dialect_insert("sqlite", _HANDLED)
            .values(update_id=update_id, handled_at=utcnow())
            .on_conflict_do_nothing()
        )


async def claim(*, session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Record that an update not kept in the inbox is being handled, and commit; False when it
    was handled already (it arrived again). One statement, on every such update."""
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
