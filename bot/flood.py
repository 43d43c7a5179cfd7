"""Telegram's flood limits, kept by the bot's own rate limiter, and a way for a call to skip its
retries.

PTB lets a bot bring its own limiter (a `BaseRateLimiter` subclass); this one keeps Telegram's
limits as PTB's `AIORateLimiter` does (30 messages a second in all, 20 a minute into one group)
but waits out a 429 differently. PTB's limiter halts every request of the process while it waits
out any 429: one resident who typed fast enough to be refused (retry_after 5) made every other
resident of that process wait five seconds, and a busy agency group held up every resident's
answers. Telegram's 429 is about the chat it was sent to, so here a 429 pauses that chat alone:
its later calls wait until the pause is over, and every other chat's calls go on at once. A call
with no chat (answering a button, the bot's commands) waits out its own 429.

The outbox and broadcast senders make their calls holding a row's transaction (its lock is what
keeps two workers from sending the row), so a wait there kept a connection idle in transaction
for as long as Telegram asked: an upgrade's ALTER TABLE of that table queued behind it, and every
query behind the ALTER. Those senders ask for no retries instead (NO_RETRIES; PTB drops a falsy
`rate_limit_args` before the limiter sees it), get the 429 at once, record it and commit, then
pause outside any transaction. Their 429 still pauses the chat for the other calls to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Bot
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.chats import GroupChats

NO_RETRIES = -1
# Above this many chats remembered (group allowances, pauses), the idle ones are forgotten.
_REMEMBERED = 512
# Telegram's retry_after is a lower bound; a call made exactly then may be refused again.
_MARGIN_SECONDS = 0.1

log = logging.getLogger(__name__)

Answer = bool | dict[str, Any] | list[dict[str, Any]]
Call = Callable[..., Coroutine[Any, Any, Answer]]
ChatKey = int | str


def chat_of(data: dict[str, Any]) -> ChatKey | None:
    """The chat a call goes to: its id, or a @username as PTB passes it; None for no chat."""
    chat_id = data.get("chat_id")
    if chat_id is None:
        return None
    try:
        return int(chat_id)
    except (TypeError, ValueError):
        return str(chat_id)


class FloodLimiter(BaseRateLimiter[int]):
    """Telegram's limits on sending; a 429 pauses the chat it came from, and the call is tried
    again up to `retries` times (or as `rate_limit_args` says), or raised at once for a call
    that passes `rate_limit_args=NO_RETRIES`."""

    def __init__(
        self,
        *,
        retries: int,
        overall_max_rate: float,
        group_max_rate: float,
        group_time_period: float = 60,
    ) -> None:
        self.retries = retries
        self._overall = AsyncLimiter(overall_max_rate, 1)
        self._group_max_rate, self._group_time_period = group_max_rate, group_time_period
        self._group_limiters: dict[ChatKey, AsyncLimiter] = {}
        # Until when (time.monotonic) each chat Telegram refused with a 429 is paused.
        self._paused_until: dict[ChatKey, float] = {}
        # Which chats get a group's allowance; the application shares its own (bot/chats.py).
        self.groups = GroupChats()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Call,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Answer:
        """Keep to the limits; wait out a 429 in its chat unless the call asked not to."""
        chat = chat_of(data)
        at_once = rate_limit_args == NO_RETRIES
        retries = 0 if at_once else self.retries if rate_limit_args is None else rate_limit_args
        attempt = 0
        while True:
            if chat is not None and not at_once:
                await self._pause_over(chat)
            try:
                async with self._group_allowance(chat), self._overall_allowance(chat):
                    return await callback(*args, **kwargs)
            except RetryAfter as error:
                wait = seconds_to_wait(error) + _MARGIN_SECONDS
                if chat is not None:
                    self._pause(chat, wait)
                if attempt >= retries:
                    if not at_once:
                        log.warning("flood limit in chat %s; gave up after %d tries", chat, attempt)
                    raise
                attempt += 1
                log.info("flood limit in chat %s; its calls wait %.1f s", chat, wait)
                if chat is None:
                    await asyncio.sleep(wait)

    def _pause(self, chat: ChatKey, seconds: float) -> None:
        """Hold the chat's calls for `seconds` from now (a longer pause already set stays)."""
        now = time.monotonic()
        if len(self._paused_until) > _REMEMBERED:
            self._paused_until = {c: t for c, t in self._paused_until.items() if t > now}
        self._paused_until[chat] = max(self._paused_until.get(chat, now), now + seconds)

    async def _pause_over(self, chat: ChatKey) -> None:
        """Wait until the chat is no longer paused (a 429 meanwhile makes the wait longer)."""
        while (until := self._paused_until.get(chat)) is not None:
            left = until - time.monotonic()
            if left <= 0:
                self._paused_until.pop(chat, None)
                return
            await asyncio.sleep(left)

    def _overall_allowance(self, chat: ChatKey | None) -> AbstractAsyncContextManager[Any]:
        """The bot's 30 a second, for calls to a chat (as PTB counts them)."""
        return self._overall if chat is not None else nullcontext()

    def _group_allowance(self, chat: ChatKey | None) -> AbstractAsyncContextManager[Any]:
        """A group's 20 a minute, for calls into a group."""
        if chat is None or chat not in self.groups or not self._group_max_rate:
            return nullcontext()
        if chat not in self._group_limiters and len(self._group_limiters) > _REMEMBERED:
            idle = [
                key
                for key, limiter in self._group_limiters.items()
                if limiter.has_capacity(limiter.max_rate)
            ]
            for key in idle:
                del self._group_limiters[key]
        if chat not in self._group_limiters:
            self._group_limiters[chat] = AsyncLimiter(self._group_max_rate, self._group_time_period)
        return self._group_limiters[chat]


def no_retries(bot: Bot) -> dict[str, Any]:
    """Keyword arguments for a Bot API call that should raise a 429 at once rather than wait it
    out. Empty when the bot has no FloodLimiter (PTB refuses them without a limiter)."""
    limiter = getattr(bot, "rate_limiter", None)
    return {"rate_limit_args": NO_RETRIES} if isinstance(limiter, FloodLimiter) else {}


def seconds_to_wait(error: RetryAfter) -> float:
    """How long Telegram asked the bot to wait (PTB gives seconds or a timedelta)."""
    wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
