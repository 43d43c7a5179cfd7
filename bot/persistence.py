"""PTB persistence for conversation states, stored in the database instead of a pickle file."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Executable, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.ext import Application, BasePersistence, ConversationHandler, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from bot.jalali import utcnow
from bot.services import inbox
from bot.unit import UpdateUnit, unit_of_this_task
from models.db import built_once, dialect_insert, table_of
from models.entities import ConversationState

# A web process reads a chat's state on every update, and every update that moves a conversation
# writes it: these are built once (models.db.built_once).
_STATES = table_of(ConversationState)
_STATE = select(_STATES.c.state).where(
    _STATES.c.name == bindparam("name"), _STATES.c.key == bindparam("key")
)
_FORGET_STATE = delete(_STATES).where(
    _STATES.c.name == bindparam("name"), _STATES.c.key == bindparam("key")
)


def _replacing(upsert: postgresql.Insert | sqlite.Insert) -> Executable:
    """An insert of a chat's state that replaces the state stored before it."""
    return upsert.on_conflict_do_update(
        index_elements=["name", "key"],
        set_={"state": upsert.excluded.state, "updated_at": upsert.excluded.updated_at},
    )


@built_once
def _state_upsert(dialect: str) -> Executable:
    return _replacing(dialect_insert(dialect, _STATES))


# As a chat's turn ends (PostgreSQL only), the state and the update's inbox row in one statement.
@built_once
def _state_upsert_finishing(dialect: str) -> Executable:
    return _replacing(dialect_insert(dialect, _STATES).add_cte(inbox.FINISHING))


_FORGET_STATE_FINISHING = _FORGET_STATE.add_cte(inbox.FINISHING)


class SQLConversationPersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Keeps ConversationHandler states in `conversation_states`.

    User, chat and bot data are not persisted: drafts and everything else of value live in
    their own tables, written in the same transaction as the step that produced them.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(
            store_data=PersistenceInput(
                bot_data=False, chat_data=False, user_data=False, callback_data=False
            ),
            update_interval=5,
        )
        self._session_factory = session_factory
        # The units of the updates being handled, by conversation key (chat id, user id). PTB
        # writes every changed state at once, from whichever update's task asks first; with
        # several chats' updates handled at once, each state is held by its own update's unit.
        self._units: dict[ConversationKey, UpdateUnit] = {}

    @contextlib.contextmanager
    def holding(self, key: ConversationKey | None, unit: UpdateUnit) -> Iterator[None]:
        """While the unit's update is handled, its conversation's state changes are its own."""
        if key is None:
            yield
            return
        self._units[key] = unit
        try:
            yield
        finally:
            if self._units.get(key) is unit:
                del self._units[key]

    async def get_conversations(self, name: str) -> ConversationDict:
        """Every stored state of the named conversation."""
        async with self._session_factory() as session:
            rows = await session.execute(
                select(ConversationState.key, ConversationState.state).where(
                    ConversationState.name == name
                )
            )
            return {tuple(json.loads(key)): state for key, state in rows}

    async def get_state(self, name: str, key: ConversationKey) -> str | None:
        """One chat's stored state (another process may have moved it on)."""
        unit = unit_of_this_task()
        async with unit.autocommit() if unit else self._session_factory() as session:
            return await session.scalar(_STATE, {"name": name, "key": json.dumps(list(key))})

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Store one chat's new state, or forget it when the conversation ended. A state an
        update changed is held, and written in that update's session: by `save_held`, or as the
        chat's turn ends (PTB calls this from whichever update asks first, in a task of its own)."""
        unit = self._units.get(key)
        if unit is not None and unit.is_open:
            unit.held_states[(name, key)] = new_state
            return
        async with self._session_factory() as session, session.begin():
            await _store(session, name, key, new_state)

    async def save_held(self) -> None:
        """Write the conversation states this update changed, in its session, unless the chat's
        turn writes them as it ends."""
        unit = unit_of_this_task()
        if unit is None or unit.in_turn or not unit.held_states:
            return
        await self.write_held(unit)

    async def write_held(self, unit: UpdateUnit, *, finishing: int | None = None) -> None:
        """Write and commit the conversation states the unit's update changed; with `finishing`
        (PostgreSQL), delete that update's inbox row with them. One state or none (nearly every
        update) is one statement, atomic on its own without BEGIN and COMMIT round trips;
        several are one transaction."""
        one_statement = len(unit.held_states) <= 1
        async with unit.autocommit() if one_statement else unit.session() as session:
            for (name, key), state in unit.held_states.items():
                await _store(session, name, key, state, finishing=finishing)
                finishing = None
            unit.held_states.clear()
            if finishing is not None:
                await inbox.finish(session=session, update_id=finishing)
            await session.commit()

    # Nothing else is persisted; PTB still requires these methods.
    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}

    async def get_callback_data(self) -> CDCData | None:
        return None

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        return None

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        return None

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        return None

    async def update_callback_data(self, data: CDCData) -> None:
        return None

    async def drop_chat_data(self, chat_id: int) -> None:
        return None

    async def drop_user_data(self, user_id: int) -> None:
        return None

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        return None

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        return None

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        return None

    async def flush(self) -> None:
        return None


async def _store(
    session: AsyncSession,
    name: str,
    key: ConversationKey,
    state: object | None,
    *,
    finishing: int | None = None,
) -> None:
    """Upsert one chat's state, or delete it when the conversation ended; with `finishing`,
    delete that update's inbox row in the same statement."""
    row: dict[str, Any] = {"name": name, "key": json.dumps(list(key))}
    if finishing is not None:
        row["finished_update_id"] = finishing
    if state is None:
        await session.execute(_FORGET_STATE if finishing is None else _FORGET_STATE_FINISHING, row)
        return
    upsert = _state_upsert(session) if finishing is None else _state_upsert_finishing(session)
    await session.execute(upsert, {**row, "state": str(state), "updated_at": utcnow()})


def drop_states(
    application: Application[Any, Any, Any, Any, Any, Any],
    belongs: Callable[[str, ConversationKey], bool],
) -> int:
    """Drop from this process's memory the conversation states (by conversation name and key)
    whose rows were just deleted (a person forgotten, a draft expired); how many. PTB keeps
    every chat's state in memory, and a process that does not read the state from the database
    on each update (the one process on SQLite) would otherwise take up the old step. PTB's next
    write of the states deletes the rows again, which changes nothing."""
    dropped = 0
    for handlers in application.handlers.values():
        for handler in handlers:
            if not isinstance(handler, ConversationHandler) or not handler.persistent:
                continue
            name = handler.name or ""
            states = handler._conversations  # no public way to drop one key
            for key in [key for key in states if belongs(name, key)]:
                states.pop(key, None)
                dropped += 1
    return dropped
