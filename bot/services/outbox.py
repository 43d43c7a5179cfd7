"""The durable outbox: every message to another chat is a row committed before it is sent."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    cast,
    delete,
    exists,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.config import Settings
from bot.jalali import utcnow
from models.db import dialect_of
from models.entities import Case, OutboxMessage, OutboxStatus, User, outbox_status

AGENCY_CARD = "agency-card"
AGENCY_ATTACHMENT = "agency-attachment"
TRIAGE_CARD = "triage-card"
REPORTER_NOTICE = "reporter-notice"
AGENCY_RELAY = "agency-relay"
COORDINATOR_NOTICE = "coordinator-notice"
COUNCIL_NOTE = "council-note"  # to council members: an agenda, a decision's progress

# The PostgreSQL channel every statement adding to the outbox notifies (a trigger, migration
# 0031): a worker listening wakes its senders at the commit (bot/listening.py).
OUTBOX_CHANNEL = "mahalle_outbox"

# Written into the SQL, so that the partial indexes on waiting rows serve the queries.
_PENDING = outbox_status(OutboxStatus.PENDING)


def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    purpose: str,
    payload: dict[str, Any],
    method: str = "sendMessage",
    case_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Add a message to send; it goes out only once the caller's transaction commits."""
    row = OutboxMessage(
        chat_id=chat_id,
        method=method,
        payload=payload,
        purpose=purpose,
        case_id=case_id,
        dedupe_key=dedupe_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    return row


def record_sent(
    session: AsyncSession,
    *,
    chat_id: int,
    purpose: str,
    payload: dict[str, Any],
    message_id: int,
    case_id: int | None,
    now: datetime,
) -> None:
    """Keep a message sent at once, not queued (a card a person asked for), as the outbox
    keeps what it sent: later edits of the case's copies find it there."""
    session.add(
        OutboxMessage(
            chat_id=chat_id, method="sendMessage", payload=payload, purpose=purpose,
            case_id=case_id, status=OutboxStatus.SENT, attempts=1, next_attempt_at=now,
            sent_at=now, sent_message_id=message_id,
        )
    )  # fmt: skip


async def already_enqueued(session: AsyncSession, dedupe_key: str) -> bool:
    """Whether a row with this dedupe key exists (sent or not)."""
    found = await session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    )
    return found is not None


def sendable(now: datetime) -> list[ColumnElement[bool]]:
    """A row that may go now: due, and its chat has no older row still pending (messages keep
    their order)."""
    older = aliased(OutboxMessage)
    return [
        OutboxMessage.status == _PENDING,
        OutboxMessage.next_attempt_at <= now,
        ~exists().where(
            and_(
                older.chat_id == OutboxMessage.chat_id,
                older.status == _PENDING,
                older.id < OutboxMessage.id,
            )
        ),
    ]


def sent_by(
    *, bot_key: str, own_chats: Collection[int], others_chats: Collection[int], first: bool
) -> ColumnElement[bool]:
    """The rows one bot of several sends: those to the chats its counties name (agency groups,
    coordinators, the council), and those to people whose last bot it is; the first bot also
    reaches people who wrote to none (a bot can message only those who started it)."""
    their_bot = select(User.bot_key).where(User.id == OutboxMessage.chat_id).scalar_subquery()
    person = or_(their_bot == bot_key, their_bot.is_(None)) if first else their_bot == bot_key
    if others_chats:
        person = and_(OutboxMessage.chat_id.not_in(list(others_chats)), person)
    if own_chats:
        person = or_(OutboxMessage.chat_id.in_(list(own_chats)), person)
    return or_(OutboxMessage.bot_key == bot_key, and_(OutboxMessage.bot_key.is_(None), person))


def rows_of_bot(settings: Settings, bot_key: str) -> ColumnElement[bool] | None:
    """Which rows one bot of several sends (`sent_by`); None when the deployment has one."""
    if len(settings.bot_keys) == 1:
        return None
    own, others = set[int](), set[int]()
    for county in settings.counties:
        mine = settings.bot_of_county(county.key) == bot_key
        (own if mine else others).update(county.named_chats())
    return sent_by(
        bot_key=bot_key, own_chats=own, others_chats=others - own,
        first=bot_key == settings.bot_keys[0],
    )  # fmt: skip


async def claim_next(
    session: AsyncSession, *, now: datetime, mine: ColumnElement[bool] | None = None
) -> OutboxMessage | None:
    """The oldest row that may go now (`sendable`); with several bots, one of this bot's
    (`sent_by`).

    On PostgreSQL the row is locked with SKIP LOCKED, so two workers never take the same one.
    """
    query = (
        select(OutboxMessage)
        .where(*sendable(now), *([mine] if mine is not None else []))
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(query)


async def refresh_statistics(session: AsyncSession) -> bool:
    """Have PostgreSQL re-read the outbox's statistics, on which it plans `claim_next`; False
    on SQLite, whose plans for it do not go wrong that way."""
    if dialect_of(session) != "postgresql":
        return False
    await session.execute(text("ANALYZE outbox"))
    return True


async def mark_sent(
    session: AsyncSession, row: OutboxMessage, *, message_id: int | None, now: datetime
) -> None:
    """Record the delivery; an agency card's place is remembered on its case for later edits."""
    row.status = OutboxStatus.SENT
    row.sent_at = now
    row.sent_message_id = message_id
    row.attempts += 1
    if row.purpose == AGENCY_CARD and row.case_id is not None and message_id is not None:
        await session.execute(
            update(Case)
            .where(Case.id == row.case_id)
            .values(card_chat_id=row.chat_id, card_message_id=message_id, undeliverable=False)
        )


def put_off(row: OutboxMessage, *, until: datetime) -> None:
    """Not yet, without an attempt counted: its chat has no room for it now. The chat's later
    rows wait behind it; other chats' rows go meanwhile."""
    row.next_attempt_at = until


def mark_retry(row: OutboxMessage, *, error: str, delay: timedelta, now: datetime) -> None:
    """Try again after `delay`."""
    row.attempts += 1
    row.last_error = error[:500]
    row.next_attempt_at = now + delay


async def mark_dead(session: AsyncSession, row: OutboxMessage, *, error: str) -> None:
    """The chat can never be reached: stop trying, and flag the case if it was its agency card."""
    row.status = OutboxStatus.DEAD
    row.attempts += 1
    row.last_error = error[:500]
    if row.purpose in (AGENCY_CARD, AGENCY_ATTACHMENT) and row.case_id is not None:
        await session.execute(update(Case).where(Case.id == row.case_id).values(undeliverable=True))


async def move_chat(
    session: AsyncSession, *, old_chat_id: int, new_chat_id: int, bot_key: str | None = None
) -> None:
    """A group became a supergroup: its pending rows follow it, still sent by the bot that
    sent to it (given, with several bots: the new id is in no county's settings)."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.chat_id == old_chat_id, OutboxMessage.status == _PENDING)
        .values(chat_id=new_chat_id, bot_key=bot_key)
    )


async def forget_person(
    session: AsyncSession,
    *,
    chat_id: int,
    case_ids: Collection[int],
    words: Collection[str],
    marker: str,
    groups: Collection[str] = (),
) -> None:
    """Someone asked to be forgotten: the outbox keeps nothing of what they told us.

    Every message to their chat goes (those waiting too: the bot stops writing to them). A
    message about their cases still waiting shows `marker` where it quoted `words` (their
    descriptions and answers: a relay, a reminder, a triage card), or goes if it carries their
    photos or place; their agency cards are the caller's (`casework.redact_cards`). The copies
    of messages sent about their cases are emptied; so is a coordinators' message quoting
    `groups` (the names and fields of groups they founded that lose them: the request to
    register one), or dropped if still waiting. The sent copies are emptied last: one the
    sender takes meanwhile is sent by then."""
    await session.execute(delete(OutboxMessage).where(OutboxMessage.chat_id == chat_id))
    if case_ids:
        await _scrub_waiting(session, case_ids=case_ids, words=words, marker=marker)
    if groups:
        await _drop_quoting(session, words=groups)
    if words:
        await _scrub_council_notes(session, words=words, marker=marker)
    if case_ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.case_id.in_(case_ids), OutboxMessage.status != _PENDING)
            .values(payload={})
            .execution_options(synchronize_session=False)
        )


# Messages that carry a photo or a place: nothing of them stays once their sender is forgotten.
_MEDIA_METHODS = ("sendMediaGroup", "sendLocation", "sendPhoto", "sendVoice")


def _scrubbed(payload: dict[str, Any], words: Collection[str], marker: str) -> dict[str, Any]:
    """The payload with `marker` wherever its text or caption quoted one of `words`."""
    longest_first = sorted(words, key=len, reverse=True)
    scrubbed = dict(payload)
    for field in ("text", "caption"):
        if isinstance(scrubbed.get(field), str):
            for word in longest_first:
                scrubbed[field] = scrubbed[field].replace(word, marker)
    return scrubbed


async def _scrub_waiting(
    session: AsyncSession, *, case_ids: Collection[int], words: Collection[str], marker: str
) -> None:
    """Their cases' messages still waiting, agency cards aside: photos and places go, texts
    show `marker` instead of their words."""
    waiting = await session.execute(
        select(OutboxMessage.id, OutboxMessage.method, OutboxMessage.payload).where(
            OutboxMessage.case_id.in_(case_ids),
            OutboxMessage.status == _PENDING,
            OutboxMessage.purpose != AGENCY_CARD,
        )
    )
    for row_id, method, payload in waiting.all():
        still_waiting = (OutboxMessage.id == row_id, OutboxMessage.status == _PENDING)
        if method in _MEDIA_METHODS:
            await session.execute(delete(OutboxMessage).where(*still_waiting))
            continue
        scrubbed = _scrubbed(payload, words, marker)
        if scrubbed != payload:
            await session.execute(
                update(OutboxMessage)
                .where(*still_waiting)
                .values(payload=scrubbed)
                .execution_options(synchronize_session=False)
            )


async def _scrub_council_notes(
    session: AsyncSession, *, words: Collection[str], marker: str
) -> None:
    """The council's messages that quote one of `words` (an agenda quotes each case's
    description, and is about no one case): `marker` instead of the words if still waiting,
    emptied if sent. Matched here, as `_drop_quoting` does; a county's agendas are few."""
    notes = await session.execute(
        select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.payload).where(
            OutboxMessage.purpose == COUNCIL_NOTE, cast(OutboxMessage.payload, Text) != "{}"
        )
    )
    for row_id, status, payload in notes.all():
        scrubbed = _scrubbed(payload, words, marker)
        if scrubbed == payload:
            continue
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(payload=scrubbed if status == OutboxStatus.PENDING else {})
            .execution_options(synchronize_session=False)
        )


async def _drop_quoting(session: AsyncSession, *, words: Collection[str]) -> None:
    """Coordinators' messages about no case that quote one of `words`: dropped if waiting,
    emptied if sent. Matched here rather than in SQL, where the stored JSON has Persian letters
    escaped; there are few such messages (their texts go after a week, `drop_sent_texts`)."""
    notices = await session.execute(
        select(OutboxMessage.id, OutboxMessage.payload).where(
            OutboxMessage.case_id.is_(None),
            OutboxMessage.purpose == COORDINATOR_NOTICE,
            cast(OutboxMessage.payload, Text) != "{}",
        )
    )
    for row_id, payload in notices.all():
        shown = json.dumps(payload, ensure_ascii=False)
        if not any(word in shown for word in words):
            continue
        await session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.id == row_id, OutboxMessage.status == _PENDING
            )
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(payload={})
            .execution_options(synchronize_session=False)
        )


async def cards_waiting(session: AsyncSession, *, case_ids: Collection[int]) -> set[int]:
    """Which of these cases (their reporter being forgotten) have an agency card still to go."""
    found = await session.scalars(
        select(OutboxMessage.case_id).where(
            OutboxMessage.case_id.in_(case_ids),
            OutboxMessage.purpose == AGENCY_CARD,
            OutboxMessage.status == _PENDING,
        )
    )
    return {case_id for case_id in found if case_id is not None}


async def rewrite_waiting(
    session: AsyncSession, *, case_id: int, purpose: str, payload: dict[str, Any]
) -> bool:
    """The case's messages of `purpose` still waiting to go take `payload`, each keeping the
    message it edits; whether any was still waiting. One the sender takes meanwhile keeps its
    old text (the status is checked again as it is rewritten)."""
    waiting = await session.execute(
        select(OutboxMessage.id, OutboxMessage.payload).where(
            OutboxMessage.case_id == case_id,
            OutboxMessage.purpose == purpose,
            OutboxMessage.status == _PENDING,
        )
    )
    rewritten = False
    for row_id, old in waiting.all():
        edits = {"message_id": old["message_id"]} if "message_id" in old else {}
        result = await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == _PENDING)
            .values(payload={**edits, **payload})
            .execution_options(synchronize_session=False)
        )
        rewritten = rewritten or bool(result.rowcount)  # type: ignore[attr-defined]
    return rewritten


async def drop_sent_texts(session: AsyncSession, *, queued_before: datetime) -> int:
    """Empty the texts of messages sent (or given up) that were queued before `queued_before`;
    how many. An agency's card carries the reporter's words and, if they shared it, their phone
    number, which the case itself gives up after the retention period; nothing reads a text
    once it is sent. The rows stay: their dedupe keys keep a reminder from going twice."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.status != _PENDING,
            OutboxMessage.created_at < queued_before,
            cast(OutboxMessage.payload, Text) != "{}",
        )
        .values(payload={})
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def backoff(attempts: int, *, ceiling: int) -> timedelta:
    """2, 4, 8 … seconds after each failed attempt, capped."""
    return timedelta(seconds=min(2 ** max(attempts, 1), ceiling))
