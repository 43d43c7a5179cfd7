"""PTB persistence for conversation states, stored in the database instead of a pickle file."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Executable, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from bot.jalali import utcnow
from bot.services import handled
from bot.unit import Alongside, UpdateUnit, unit_of_this_task
from models.db import built_once, dialect_insert, dialect_of, table_of
from models.entities import ConversationState

# A web process reads a chat's state on every update, and every update that moves a conversation
# writes it: these are built once (models.db.built_once).
_STATES = table_of(ConversationState)
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


# As an update ends (PostgreSQL), its state and its record as handled in one statement.
@built_once
def _state_upsert_recording(dialect: str) -> Executable:
    return _replacing(dialect_insert(dialect, _STATES).add_cte(handled.RECORDING))


_FORGET_STATE_RECORDING = _FORGET_STATE.add_cte(handled.RECORDING)

# A conversation's next state, written ahead of the update's end in the statement that saves
# the step's data (PostgreSQL): `state_ahead`.
_MOVED = cast(
    postgresql.Insert,
    _replacing(
        postgresql.insert(_STATES).values(
            name=bindparam("ahead_name"),
            key=bindparam("ahead_key"),
            state=bindparam("ahead_state"),
            updated_at=func.now(),
        )
    ),
).cte("moved")


def state_ahead(name: str, key: ConversationKey, state: object) -> Alongside | None:
    """What a step's own statement may carry so that its update needs no statement of its own
    as it ends: the conversation's next state, and the update's record as handled. For a step
    whose handler has sent its answer (the next question) and then saves its data as the last
    thing it does, returning `state`: the record must not be written before the answer went
    out, or a process that died in between would leave Telegram's second delivery dropped as
    handled, and the person without their question. The update's end writes the state it came
    out at if that is another. None outside an update, and on SQLite (no round trips)."""
    unit = unit_of_this_task()
    if unit is None or unit.dialect != "postgresql":
        return None
    row: dict[str, Any] = {
        "ahead_name": name, "ahead_key": json.dumps(list(key)), "ahead_state": str(state),
    }  # fmt: skip
    ctes: tuple[Any, ...] = (_MOVED,)
    recording = unit.to_record
    if recording is not None:
        ctes, row["handled_update_id"] = (_MOVED, handled.RECORDING), recording

    def written() -> None:
        unit.ahead[(name, key)] = str(state)
        if recording is not None and unit.to_record == recording:
            unit.to_record = None

    return Alongside(ctes, row, written)


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
        self._loaded: asyncio.Event | None = None

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
            states: ConversationDict = {tuple(json.loads(key)): state for key, state in rows}
        if self._loaded is not None:
            self._loaded.set()
        return states

    def next_load(self) -> asyncio.Event:
        """An event set once the conversations are next read (PTB reads them as a persistent
        conversation handler is added to a running application)."""
        self._loaded = asyncio.Event()
        return self._loaded

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
        """Write the conversation states this update changed, in its session."""
        unit = unit_of_this_task()
        if unit is None or not unit.held_states:
            return
        await self.write_held(unit)

    async def write_held(self, unit: UpdateUnit) -> None:
        """Write and commit the conversation states the unit's update changed. One state or
        none (nearly every update) is one statement, atomic on its own without BEGIN and COMMIT
        round trips; several are one transaction."""
        for held, state in list(unit.held_states.items()):  # written ahead as it came out
            if held in unit.ahead and unit.ahead[held] == str(state):
                del unit.held_states[held]
        if not unit.held_states:
            return
        one_statement = len(unit.held_states) <= 1
        async with unit.autocommit() if one_statement else unit.session() as session:
            for (name, key), state in unit.held_states.items():
                recording, unit.to_record = unit.to_record, None
                await _store(session, name, key, state, recording=recording)
            unit.held_states.clear()
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
    recording: int | None = None,
) -> None:
    """Upsert one chat's state, or delete it when the conversation ended; with `recording`,
    record that update as handled too, in the same statement on PostgreSQL."""
    row: dict[str, Any] = {"name": name, "key": json.dumps(list(key))}
    together = recording is not None and dialect_of(session) == "postgresql"
    if together:
        row["handled_update_id"] = recording
    elif recording is not None:
        await handled.record(session=session, update_id=recording, now=utcnow())
    if state is None:
        await session.execute(_FORGET_STATE_RECORDING if together else _FORGET_STATE, row)
        return
    upsert = _state_upsert_recording(session) if together else _state_upsert(session)
    await session.execute(upsert, {**row, "state": str(state), "updated_at": utcnow()})
