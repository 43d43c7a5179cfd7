"""Reports being written. A draft is saved after every step, so nothing typed is lost; one left
untouched for `[privacy] draft_expiry_days` is deleted with the conversation it belonged to."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.jalali import utcnow
from bot.unit import Alongside
from models.db import built_once, dialect_insert, dialect_of, table_of
from models.entities import ConversationState, Draft, GroupStatus, LocalGroup

MAX_PHOTOS = 5
# Voice messages a report may carry, and the longest one taken: a description is still written.
MAX_VOICES, MAX_VOICE_SECONDS = 2, 120


@dataclass
class ReportDraft:
    """What the resident has told us so far."""

    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    neighbourhood_id: int | None = None
    text: str | None = None
    photo_file_ids: list[str] = field(default_factory=list)
    # Short voice messages sent with the photos: many residents would rather speak than type.
    voice_file_ids: list[str] = field(default_factory=list)
    latitude: float | None = None
    longitude: float | None = None
    share_phone: bool = False
    phone: str | None = None
    # Filed on behalf of this approved local group, when the reporter chose one.
    group_id: int | None = None
    # Set while the resident edits one part from the summary: the next step is the summary again.
    editing: bool = False
    # The album (Telegram's media group) whose photos are coming in, answered at its first
    # photo; and whether the resident was told that some of its photos were left out.
    album: str | None = None
    album_overflow_told: bool = False
    # Whether the resident was shown an open case nearby that reads the same (they may join it
    # instead of filing this one): shown once, at the first confirm.
    similar_shown: bool = False

    def to_json(self) -> dict[str, Any]:
        """The draft as stored: its fields, each list copied (`dataclasses.asdict` does the
        same for these field types, several times slower, and a draft is saved on every
        step)."""
        return {
            name: list(value) if isinstance(value, list) else value
            for name, value in vars(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReportDraft:
        """Rebuild a draft, ignoring fields a newer or older version stored."""
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        return cls(**known)

    def add_photo(self, file_id: str) -> bool:
        """Keep a photo unless the limit is reached or it is already there."""
        if len(self.photo_file_ids) >= MAX_PHOTOS:
            return False
        if file_id not in self.photo_file_ids:
            self.photo_file_ids.append(file_id)
        return True

    def add_voice(self, file_id: str) -> bool:
        """Keep a voice message unless the limit is reached or it is already there."""
        if len(self.voice_file_ids) >= MAX_VOICES:
            return False
        if file_id not in self.voice_file_ids:
            self.voice_file_ids.append(file_id)
        return True

    @property
    def has_location(self) -> bool:
        """Whether a location was shared."""
        return self.latitude is not None and self.longitude is not None


# The two statements every report step runs, built once (see models.db.built_once).
_DRAFT_DATA = select(Draft.data).where(Draft.user_id == bindparam("user_id"))


@built_once
def _draft_upsert(dialect: str) -> Executable:
    upsert = dialect_insert(dialect, table_of(Draft))
    return upsert.on_conflict_do_update(
        index_elements=[Draft.user_id],
        set_={"data": upsert.excluded.data, "updated_at": upsert.excluded.updated_at},
    )


# The upsert with what a step writes alongside it, by dialect and those statements (each
# alongside is one of a few built once, bot/persistence.py).
_UPSERTS_ALONGSIDE: dict[tuple[str, tuple[Any, ...]], Executable] = {}


async def load_draft(*, session: AsyncSession, user_id: int) -> ReportDraft | None:
    """The user's draft, or None."""
    # The column alone: loading the row as an object costs a third more, on every step.
    data = await session.scalar(_DRAFT_DATA, {"user_id": user_id})
    return ReportDraft.from_json(data) if data is not None else None


async def save_draft(
    *, session: AsyncSession, user_id: int, draft: ReportDraft, also: Alongside | None = None
) -> None:
    """Store the draft and commit: the step is done only once this returns. One statement: a
    step saves its draft on every update; `also` is more for that statement to write (the
    conversation's next state, bot/persistence.py)."""
    values = {"user_id": user_id, "data": draft.to_json(), "updated_at": utcnow()}
    if also is None:
        await session.execute(_draft_upsert(session), values)
    else:
        key = (dialect_of(session), also.ctes)
        if (statement := _UPSERTS_ALONGSIDE.get(key)) is None:
            statement = _draft_upsert(session).add_cte(*also.ctes)  # type: ignore[attr-defined]
            _UPSERTS_ALONGSIDE[key] = statement
        await session.execute(statement, {**values, **also.parameters})
    await session.commit()
    if also is not None:
        also.written()


async def discard_draft(*, session: AsyncSession, user_id: int) -> None:
    """Forget the draft (the resident cancelled)."""
    row = await session.get(Draft, user_id)
    if row is not None:
        await session.delete(row)
        await session.commit()


@dataclass(frozen=True)
class Expired:
    """What `expire` deleted: how many drafts, and which conversations' states (name, key)."""

    drafts: int
    states: list[tuple[str, tuple[int, ...]]]


async def expire(*, session: AsyncSession, older_than: datetime) -> Expired:
    """Delete what people began and left before `older_than`: report drafts, local group
    registrations never sent, and conversation states, those of the expired drafts' chats
    whatever their age (the bot must not take up a report weeks later)."""
    gone = await session.execute(
        delete(Draft)
        .where(Draft.updated_at < older_than)
        .returning(Draft.user_id)
        .execution_options(synchronize_session=False)
    )
    users = list(gone.scalars())
    await session.execute(
        delete(LocalGroup).where(
            LocalGroup.status == GroupStatus.DRAFT, LocalGroup.created_at < older_than
        )
    )
    their_chats = [json.dumps([user_id, user_id]) for user_id in users]
    states = await session.execute(
        delete(ConversationState)
        .where((ConversationState.updated_at < older_than) | ConversationState.key.in_(their_chats))
        .returning(ConversationState.name, ConversationState.key)
        .execution_options(synchronize_session=False)
    )
    return Expired(
        drafts=len(users),
        states=[(name, tuple(json.loads(key))) for name, key in states.all()],
    )
