"""The broadcast sender: walks a campaign's recipients at a steady rate, resumably.

Each recipient is one transaction: claim, send, record. Nothing in it waits longer than one
Bot API call (bot/flood.py): the pace is kept before it begins, and a 429 holds back every send
of the sender, each waiting before its transaction. The send and its record are shielded
from task cancellation, so stopping the sender never leaves a delivered message unrecorded;
only a hard kill between the API's answer and the commit can (then that person may get it
twice on restart — preferred to losing it).

Several recipients are sent to at once (`sends_at_once`, on PostgreSQL, whose SKIP LOCKED keeps
them apart): one at a time, each send waits out Telegram's round trip, and with Telegram 100 ms
away the sender managed 9 a second of the configured 25.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.config import BroadcastSettings
from bot.flood import no_retries, seconds_to_wait
from bot.jalali import utcnow
from bot.lanes import run_lanes, to_the_end
from bot.services import broadcasts
from models.entities import Campaign, CampaignRecipient, CampaignStatus, RecipientStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 1.0
# A slot this close is taken at once: waking a sleeper costs more than it keeps to the rate.
_NOT_WORTH_A_SLEEP = 0.001

ProgressCallback = Callable[[Campaign, broadcasts.Progress, bool], Awaitable[None]]


async def send_content(
    bot: Bot,
    chat_id: int,
    content: dict[str, Any],
    *,
    footer: str | None = None,
    retry_floods: bool = True,
) -> None:
    """Send a campaign's content as composed (text or photo, formatting entities kept).
    `retry_floods=False`: a 429 is raised at once instead of waited out."""
    options = {} if retry_floods else no_retries(bot)
    if "photo" in content:
        caption = content.get("caption") or ""
        if footer:
            caption = f"{caption}\n\n{footer}".strip()
        await bot.send_photo(
            chat_id,
            content["photo"],
            caption=caption or None,
            caption_entities=_entities(content.get("caption_entities")),
            **options,
        )
    else:
        text = content["text"]
        await bot.send_message(
            chat_id,
            f"{text}\n\n{footer}" if footer else text,
            entities=_entities(content.get("entities")),
            **options,
        )


def _entities(raw: list[dict[str, Any]] | None) -> list[MessageEntity] | None:
    return [MessageEntity.de_json(entity, None) for entity in raw] if raw else None


@dataclass
class _Walk:
    """One campaign's delivery in this process, shared by the lanes that send it."""

    campaign: Campaign
    last_report: float
    next_cancel_check: float = 0.0
    cancelled: bool = False


class CampaignSender:
    """Sends one campaign at a time per call to `run`; several campaigns may run side by side,
    and within one `sends_at_once` recipients at once (1 on SQLite)."""

    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        settings: BroadcastSettings,
        *,
        intro: str,
        on_progress: ProgressCallback | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rate_per_second: float | None = None,
        sends_at_once: int = 1,
        bot_key: str | None = None,
    ) -> None:
        self.bot = bot
        # With several bots, the one this sender is: a person who blocked it is marked blocked
        # only when it is the bot that reaches them.
        self.bot_key = bot_key
        self.session_factory = session_factory
        self.settings = settings
        # The configured rate (at most 30); benchmarks may lift it.
        self.rate_per_second = rate_per_second or settings.rate_per_second
        self.intro = intro  # appended to the first broadcast a person ever gets
        self.on_progress = on_progress
        self.sleep = sleep
        self.clock = clock
        self.sends_at_once = sends_at_once
        # The rate and the sends in flight are the bot's, shared by every campaign running.
        self._next_send = 0.0
        self._sending = asyncio.Semaphore(sends_at_once)

    async def run(self, campaign_id: int) -> None:
        """Deliver to every pending recipient, then report; returns early when cancelled."""
        async with self.session_factory() as session:
            started = await broadcasts.set_status(
                session, campaign_id, to=CampaignStatus.RUNNING,
                allowed_from={CampaignStatus.SCHEDULED, CampaignStatus.RUNNING},
            )  # fmt: skip
            await session.commit()
            campaign = await session.get(Campaign, campaign_id)
        if not started or campaign is None:
            return
        walk = _Walk(campaign, last_report=self.clock())
        while not walk.cancelled:
            await self._send_in_lanes(walk)
            if walk.cancelled or not await self._wait_for_retries(campaign_id):
                break
        await self._finish(campaign_id)

    async def _send_in_lanes(self, walk: _Walk) -> None:
        """Run the lanes until each finds nothing due; if one fails or the sender is stopped,
        the others stop too, each after its send in flight is recorded."""
        await run_lanes([self._lane(walk) for _ in range(self.sends_at_once)])

    async def _lane(self, walk: _Walk) -> None:
        """Deliver to one recipient after another until none is due now or it is cancelled."""
        while not walk.cancelled:
            try:
                outcome = await self._deliver_uninterrupted(walk)
            except RetryAfter:  # held back (_attempt); the recipient stays pending
                continue
            if outcome == "cancelled":
                walk.cancelled = True
            if outcome in ("cancelled", "idle"):
                return
            if self.clock() - walk.last_report >= self.settings.progress_every_seconds:
                walk.last_report = self.clock()
                await self._report(walk.campaign.id, final=False)

    async def _deliver_uninterrupted(self, walk: _Walk) -> str:
        """One recipient, in its slot; if the sender is stopped while it waits for the slot,
        nothing is sent, and once it is being sent, the send and its record finish first, so
        no delivered message goes unrecorded and no claim is left half-done."""
        async with self._sending:
            await self._throttle()
            if walk.cancelled:  # seen by another lane meanwhile
                return "cancelled"
            return await to_the_end(self._deliver_next(walk))

    async def _deliver_next(self, walk: _Walk) -> str:
        """'sent' (or another outcome) for one recipient, 'idle' when none is due, 'cancelled'."""
        async with self.session_factory() as session, session.begin():
            if self.clock() >= walk.next_cancel_check:
                # A stop pressed in another process shows within a second.
                walk.next_cancel_check = self.clock() + CANCEL_CHECK_SECONDS
                current = await session.get(Campaign, walk.campaign.id, populate_existing=True)
                if current is None or current.status == CampaignStatus.CANCELLED:
                    return "cancelled"
            claimed = await broadcasts.claim_next(
                session, campaign_id=walk.campaign.id, now=utcnow()
            )
            if claimed is None:
                return "idle"
            if not claimed.opted_in and broadcasts.consent_needed(walk.campaign.audience):
                await broadcasts.withdraw(session, claimed.recipient)
                return "withdrawn"
            return await self._attempt(
                session, claimed.recipient, walk.campaign.content, claimed.needs_intro
            )

    async def _attempt(
        self,
        session: AsyncSession,
        recipient: CampaignRecipient,
        content: dict[str, Any],
        needs_intro: bool,
    ) -> str:
        """Send to the claimed recipient and record how it went. After a 429 every send is held
        back at once, and the 429 raised, so that the transaction ends (nothing recorded, the
        recipient pending) before anyone waits."""
        try:
            await send_content(
                self.bot, recipient.user_id, content,
                footer=self.intro if needs_intro else None, retry_floods=False,
            )  # fmt: skip
        except RetryAfter as error:
            self._hold_back(seconds_to_wait(error))
            raise
        except Forbidden as error:
            await broadcasts.mark(
                session, recipient, RecipientStatus.BLOCKED, error=str(error), bot_key=self.bot_key
            )
            return "blocked"
        except BadRequest as error:
            await broadcasts.mark(session, recipient, RecipientStatus.FAILED, error=str(error))
            return "failed"
        except TelegramError as error:  # time-outs, 5xx, 429 without retry_after
            broadcasts.retry_later(
                recipient, error=f"{type(error).__name__}: {error}", now=utcnow(),
                max_attempts=self.settings.max_attempts,
            )  # fmt: skip
            return "retry"
        await broadcasts.mark(session, recipient, RecipientStatus.SENT, intro_shown=needs_intro)
        return "sent"

    async def _throttle(self) -> None:
        """Keep to the configured rate: each send takes the next free slot, then waits for it."""
        now = self.clock()
        slot = max(now, self._next_send)
        self._next_send = slot + 1 / self.rate_per_second
        if slot - now > _NOT_WORTH_A_SLEEP:
            await self.sleep(slot - now)

    def _hold_back(self, seconds: float) -> None:
        """After a 429, no send of this sender goes before `seconds` have passed: Telegram's
        limit is the bot's, not one recipient's."""
        log.warning("flood limit during a broadcast; pausing %.0f s", seconds)
        self._next_send = max(self._next_send, self.clock() + seconds)

    async def _wait_for_retries(self, campaign_id: int) -> bool:
        """Sleep until the earliest recipient waiting out a back-off is due; False when none."""
        async with self.session_factory() as session:
            due = await broadcasts.next_due(session, campaign_id=campaign_id)
        if due is None:
            return False
        due = due if due.tzinfo else due.replace(tzinfo=utcnow().tzinfo)
        await self.sleep(max((due - utcnow()).total_seconds(), 0.05))
        return True

    async def _report(self, campaign_id: int, *, final: bool) -> None:
        if self.on_progress is None:
            return
        async with self.session_factory() as session:
            campaign = await session.get(Campaign, campaign_id)
            counts = await broadcasts.progress(session, campaign_id)
        if campaign is not None:
            try:
                await self.on_progress(campaign, counts, final)
            except TelegramError:
                log.warning(
                    "could not update the progress of campaign %s", campaign_id, exc_info=True
                )

    async def _finish(self, campaign_id: int) -> None:
        async with self.session_factory() as session:
            await broadcasts.set_status(
                session, campaign_id, to=CampaignStatus.DONE, allowed_from={CampaignStatus.RUNNING}
            )
            await session.commit()
        await self._report(campaign_id, final=True)


def estimate_seconds_left(counts: broadcasts.Progress, rate: float) -> int:
    """Seconds until the pending recipients are reached at the configured rate."""
    return int(counts.pending / rate) if rate else 0


def progress_reporter(bot: Bot, runtime: Runtime) -> ProgressCallback:
    """Edits the coordinator's progress message; at the end, also sends the final report."""

    async def report(campaign: Campaign, counts: broadcasts.Progress, final: bool) -> None:
        t, settings = runtime.translate, runtime.settings
        language = settings.bot.language
        values = {
            "sent": counts.sent,
            "failed": counts.failed,
            "blocked": counts.blocked,
            "total": counts.total,
        }
        if final:
            key = (
                "broadcast-final-cancelled"
                if campaign.status == CampaignStatus.CANCELLED
                else "broadcast-final"
            )
            text = t(key, language, **values, remaining=counts.pending)
        else:
            minutes = -(-estimate_seconds_left(counts, settings.broadcast.rate_per_second) // 60)
            text = t(
                "broadcast-progress", language, **values, remaining=counts.pending, minutes=minutes
            )
        chat, message_id = campaign.progress_chat_id, campaign.progress_message_id
        if chat is None:
            return
        if message_id is not None:
            stop = None if final else _stop_markup(runtime, campaign.id)
            await bot.edit_message_text(
                text, chat_id=chat, message_id=message_id, reply_markup=stop
            )
        if final:
            await bot.send_message(chat, text)

    return report


def _stop_markup(runtime: Runtime, campaign_id: int) -> InlineKeyboardMarkup:
    label = runtime.translate("button-stop-broadcast", runtime.settings.bot.language)
    data = runtime.card_renderer.signer.sign("bx", campaign_id)
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)]])
