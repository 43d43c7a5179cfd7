"""The outbox worker: sends committed rows, retries with back-off, never sends a row twice.

A row is sent holding its transaction (its lock keeps other workers off it), so nothing in that
transaction waits on Telegram longer than one call: a 429 is recorded on the row and committed,
and the sender pauses afterwards, as PTB's limiter would have paused every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot, InlineKeyboardMarkup, InputMediaPhoto, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.chats import GroupChats
from bot.fit import CAPTION_LIMIT, TEXT_LIMIT, units, within
from bot.flood import no_retries, seconds_to_wait
from bot.jalali import utcnow
from bot.lanes import run_lanes, stopping, to_the_end
from bot.services import outbox, pacing
from models.entities import Agency, OutboxMessage

log = logging.getLogger(__name__)

# BadRequest descriptions that mean the chat itself is gone, not that one message was malformed.
_UNREACHABLE = (
    "chat not found",
    "bot was kicked",
    "not enough rights",
    "have no rights",
    "user is deactivated",
)
# Bale answers a chat that does not exist, or that the bot was removed from, with HTTP 404 and
# these words; PTB reads any 404 as a bad token (InvalidToken).
_BALE_NO_CHAT = "no such group or user"
# A flood refusal without retry_after: Telegram's 429 without it, Bale's 420 or 429.
_FLOOD_WORDS = ("(420)", "(429)", "too many requests", "flood")
# An edit that changes nothing, or of a message that is gone, has nothing left to do.
_EDIT_DONE = ("message is not modified", "message to edit not found")
# A claim this slow was planned on stale statistics: PostgreSQL still believed the outbox held
# next to nothing to send (a burst after a quiet spell, before autovacuum looked again, or with
# autovacuum off) and read every waiting row once for each waiting row, seconds a claim with
# thousands waiting. The sender then has the statistics re-read, at most once a minute.
SLOW_CLAIM_SECONDS = 0.25
REANALYZE_EVERY_SECONDS = 60.0


@dataclass
class _Batch:
    """One `deliver_due`'s progress, shared by its lanes."""

    limit: int
    attempted: int = 0
    claiming: int = 0  # lanes between a claim and its commit
    done_rows: int = 0  # rows sent, retried, put off or dropped so far
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, outcome: int | None) -> None:
        """Count a lane's step (`OutboxSender._deliver_one`'s outcome), and tell the others."""
        self.attempted += outcome == 1
        self.done_rows += outcome is not None
        async with self.changed:
            self.changed.notify_all()

    async def more_may_come(self, done_before: int) -> bool:
        """A lane found nothing due: wait while another lane's row is on its way, and say
        whether a row was done since (the next row of its chat may be due now)."""
        async with self.changed:
            while self.claiming and self.done_rows == done_before:
                await self.changed.wait()
        return self.done_rows != done_before


class OutboxSender:
    """Delivers outbox rows, each in its own transaction, up to `sends_at_once` at a time
    (PostgreSQL; SQLite: one). One at a time, each send waited out Telegram's round trip: with
    the Bot API 100 ms away the outbox managed 8 messages a second of Telegram's 30."""

    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        max_backoff_seconds: int,
        unreachable_notice: Callable[[int], tuple[int, str] | None],
        max_attempts: int = 30,
        on_refused: Callable[[AsyncSession, OutboxMessage, str], Awaitable[None]] | None = None,
        on_delivered: Callable[[AsyncSession, OutboxMessage], Awaitable[None]] | None = None,
        group_per_minute: int | None = None,
        groups: GroupChats | None = None,
        sends_at_once: int = 1,
        mine: ColumnElement[bool] | None = None,
        bot_key: str | None = None,
    ) -> None:
        self.bot = bot
        # With several bots: this sender's bot, and which rows are its (outbox.sent_by).
        self.bot_key = bot_key
        # With several bots in one deployment: which rows are this bot's (outbox.sent_by).
        self.mine = mine
        self.session_factory = session_factory
        self.max_backoff_seconds = max_backoff_seconds
        # Failed attempts after which a row is given up and whom it concerns is told.
        self.max_attempts = max_attempts
        # Given a dead chat id: (coordinator chat, text) to tell, or None when nobody can be told.
        self.unreachable_notice = unreachable_notice
        # Given a row Telegram refused for good (marked dead) and why: tell whom it concerns
        # (bot/services/refusals.py), so no refused card goes unnoticed.
        self.on_refused = on_refused
        # Given a row just delivered, in its transaction: tell whom it concerns (an agency's card
        # arrived: its reporter hears the case was sent, bot/services/refusals.py).
        self.on_delivered = on_delivered
        # Messages a minute into one group, when the bot keeps to Telegram's flood limits.
        self.group_per_minute = group_per_minute
        self.groups = groups if groups is not None else GroupChats()
        self.sends_at_once = sends_at_once
        self._wake = asyncio.Event()
        # Seconds Telegram asked the bot to wait (a 429) in the last deliver_due; 0 when it did not.
        self._flood_wait = 0.0
        self._next_analyze = 0.0  # time.monotonic() before which the statistics are left be

    def wake(self) -> None:
        """Something was enqueued: look now instead of at the next poll."""
        self._wake.set()

    async def deliver_due(self, *, now: Callable[[], datetime] = utcnow, limit: int = 1000) -> int:
        """Send every due row (up to `limit`), stopping at a 429; how many were attempted.
        If a lane fails or the sender is stopped, the others stop too, each after its send in
        flight is recorded."""
        self._flood_wait = 0.0
        batch = _Batch(limit)
        await run_lanes([self._lane(batch, now) for _ in range(self.sends_at_once)])
        return batch.attempted

    async def _lane(self, batch: _Batch, now: Callable[[], datetime]) -> None:
        """Deliver due rows one after another until none is left, the limit is reached or a
        429 came. Finding none while another lane sends, look again once a row is done: the
        row sent may have held back its chat's next one (a chat's rows go in order)."""
        # A row being claimed may be attempted: counted against the limit already.
        while batch.attempted + batch.claiming < batch.limit and not self._flood_wait:
            done_before = batch.done_rows
            batch.claiming += 1
            try:
                outcome = await to_the_end(self._deliver_one(now()))
            finally:
                batch.claiming -= 1
            await batch.record(outcome)
            if outcome is None and not await batch.more_may_come(done_before):
                return

    async def run_forever(self, poll_seconds: float) -> None:
        """The worker loop started by `mahalle run`."""
        while True:
            try:
                await self.deliver_due()
            except Exception:  # a database hiccup must not end delivery for good
                if stopping():  # a stop the driver wrapped in an error of its own
                    raise asyncio.CancelledError from None
                log.exception("outbox delivery failed; retrying shortly")
            if self._flood_wait:  # no transaction is open: the row's 429 is committed
                log.warning("flood limit hit; the outbox pauses %.0f s", self._flood_wait)
                await asyncio.sleep(self._flood_wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            self._wake.clear()

    async def _deliver_one(self, now: datetime) -> int | None:
        """Take the next due row: 1 when it was attempted, 0 when its group has no room yet,
        None when nothing is due."""
        outcome, claim_seconds = await self._claim_and_attempt(now)
        if claim_seconds > SLOW_CLAIM_SECONDS:
            await self._refresh_statistics(claim_seconds)
        return outcome

    async def _claim_and_attempt(self, now: datetime) -> tuple[int | None, float]:
        """`_deliver_one`'s outcome, in the row's transaction, and how long the claim took."""
        async with self.session_factory() as session, session.begin():
            started = time.monotonic()
            row = await outbox.claim_next(session, now=now, mine=self.mine)
            claim_seconds = time.monotonic() - started
            if row is None:
                return None, claim_seconds
            if self._flood_wait:  # another lane's 429 came meanwhile: leave the row as it was
                return 0, claim_seconds
            if self.group_per_minute and row.chat_id in self.groups:
                wait = await pacing.take_room(
                    session, chat_id=row.chat_id, now=now, per_minute=self.group_per_minute
                )
                if wait > 0:  # the group's later rows keep their order behind this one
                    outbox.put_off(row, until=now + timedelta(seconds=wait))
                    return 0, claim_seconds
            await self._attempt(session, row, now)
            return 1, claim_seconds

    async def _refresh_statistics(self, claim_seconds: float) -> None:
        """Re-read the outbox's statistics after a slow claim, at most once a minute."""
        if time.monotonic() < self._next_analyze:
            return
        self._next_analyze = time.monotonic() + REANALYZE_EVERY_SECONDS
        async with self.session_factory() as session:
            refreshed = await outbox.refresh_statistics(session)
            await session.commit()
        if refreshed:
            log.info("an outbox claim took %.1f s; its statistics were re-read", claim_seconds)

    async def _attempt(self, session: AsyncSession, row: OutboxMessage, now: datetime) -> None:
        try:
            sent = await self._call(row)
        except RetryAfter as error:
            seconds = seconds_to_wait(error)
            outbox.mark_retry(row, error=str(error), delay=timedelta(seconds=seconds), now=now)
            self._flood_wait = max(seconds, 0.1)
        except ChatMigrated as error:
            await self._follow_migration(session, row, error.new_chat_id)
        except Forbidden as error:
            await self._give_up(session, row, str(error))
        except InvalidToken as error:
            if _BALE_NO_CHAT in str(error).lower():
                await self._give_up(session, row, str(error))
            else:  # the token itself: every row fails alike, so none is given up for it
                await self._retry(session, row, error, now)
        except BadRequest as error:
            await self._bad_request(session, row, error, now)
        except TelegramError as error:  # time-outs, 5xx, 429 without retry_after, Bale's 420
            await self._retry(session, row, error, now)
        else:
            await outbox.mark_sent(session, row, message_id=_first_id(sent), now=now)
            if self.on_delivered is not None:
                await self.on_delivered(session, row)

    async def _retry(
        self, session: AsyncSession, row: OutboxMessage, error: TelegramError, now: datetime
    ) -> None:
        """Try again after a back-off of 2, 4, 8 … s; a flood refusal without retry_after pauses
        the sender as a 429 does. After `max_attempts`, give the row up as refused."""
        said = f"{type(error).__name__}: {error}"
        if row.attempts + 1 >= self.max_attempts and not isinstance(error, InvalidToken):
            log.error("outbox row %s failed %d times; given up", row.id, row.attempts + 1)
            await outbox.mark_dead(session, row, error=said)
            if self.on_refused is not None:
                await self.on_refused(session, row, said)
            return
        delay = outbox.backoff(row.attempts + 1, ceiling=self.max_backoff_seconds)
        outbox.mark_retry(row, error=said, delay=delay, now=now)
        if any(word in str(error).lower() for word in _FLOOD_WORDS):
            self._flood_wait = max(self._flood_wait, delay.total_seconds())

    async def _bad_request(
        self, session: AsyncSession, row: OutboxMessage, error: BadRequest, now: datetime
    ) -> None:
        text = str(error).lower()
        if row.method.startswith("edit") and any(phrase in text for phrase in _EDIT_DONE):
            await outbox.mark_sent(session, row, message_id=None, now=now)
        elif any(phrase in text for phrase in _UNREACHABLE):
            await self._give_up(session, row, str(error))
        else:
            log.error("outbox row %s refused by the Bot API: %s", row.id, error)
            await outbox.mark_dead(session, row, error=str(error))
            if self.on_refused is not None:
                await self.on_refused(session, row, str(error))

    async def _give_up(self, session: AsyncSession, row: OutboxMessage, error: str) -> None:
        log.warning(
            "chat %s cannot be reached (%s); outbox row %s dropped", row.chat_id, error, row.id
        )
        await outbox.mark_dead(session, row, error=error)
        if self.on_refused is not None:
            await self.on_refused(session, row, error)
        notice = self.unreachable_notice(row.chat_id)
        key = f"unreachable:{row.chat_id}"
        if (
            notice is not None
            and notice[0] != row.chat_id
            and not await outbox.already_enqueued(session, key)
        ):
            outbox.enqueue(
                session, chat_id=notice[0], purpose=outbox.COORDINATOR_NOTICE,
                payload={"text": notice[1]}, dedupe_key=key,
            )  # fmt: skip

    async def _follow_migration(
        self, session: AsyncSession, row: OutboxMessage, new_chat_id: int
    ) -> None:
        log.info("chat %s migrated to %s", row.chat_id, new_chat_id)
        await session.execute(
            update(Agency).where(Agency.chat_id == row.chat_id).values(chat_id=new_chat_id)
        )
        await outbox.move_chat(
            session, old_chat_id=row.chat_id, new_chat_id=new_chat_id, bot_key=self.bot_key
        )

    async def _call(self, row: OutboxMessage) -> Message | tuple[Message, ...] | bool:
        payload: dict[str, Any] = _within_limits(row) | no_retries(self.bot)
        if markup := payload.pop("reply_markup", None):
            payload["reply_markup"] = InlineKeyboardMarkup.de_json(markup, self.bot)
        if row.method == "sendMessage":
            return await self.bot.send_message(row.chat_id, **payload)
        if row.method == "sendMediaGroup":
            photos = payload.pop("photos")
            if len(photos) == 1:  # an album holds 2 to 10 items: one photo goes on its own
                return await self.bot.send_photo(row.chat_id, photos[0], **payload)
            media = [InputMediaPhoto(file_id) for file_id in photos]
            return await self.bot.send_media_group(row.chat_id, media=media, **payload)
        if row.method == "sendPhoto":
            return await self.bot.send_photo(row.chat_id, **payload)
        if row.method == "sendVoice":
            return await self.bot.send_voice(row.chat_id, **payload)
        if row.method == "sendLocation":
            return await self.bot.send_location(row.chat_id, **payload)
        if row.method == "editMessageText":
            return await self.bot.edit_message_text(chat_id=row.chat_id, **payload)
        raise ValueError(f"unknown outbox method {row.method!r}")


def _within_limits(row: OutboxMessage) -> dict[str, Any]:
    """The row's payload with its text or caption within Telegram's limits: the last guard,
    for a text no renderer fitted (`bot.fit`); a row is never refused for its length."""
    payload = dict(row.payload)
    for field_name, limit in (("text", TEXT_LIMIT), ("caption", CAPTION_LIMIT)):
        value = payload.get(field_name)
        if isinstance(value, str) and units(value) > limit:
            log.warning("outbox row %s: its %s was cut to Telegram's limit", row.id, field_name)
            payload[field_name] = within(value, limit)
    return payload


def _first_id(sent: Message | tuple[Message, ...] | bool) -> int | None:
    if isinstance(sent, Message):
        return sent.message_id
    if isinstance(sent, tuple) and sent:
        return sent[0].message_id
    return None
