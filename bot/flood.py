"""Telegram's flood limits, kept by PTB's limiter, and a way for a call to skip its retries.

PTB's limiter waits out a 429's `retry_after` inside the call and tries again. The outbox and
broadcast senders make their calls holding a row's transaction (its lock is what keeps two
workers from sending the row), so a wait there kept a connection idle in transaction for as long
as Telegram asked: an upgrade's ALTER TABLE of that table queued behind it, and every query
behind the ALTER. Those senders ask for no retries instead, record the 429 and commit, then
pause outside any transaction.

PTB's limiter also halts every request of the process while it waits out any 429. A 429 for a
group is about that group (Telegram's 20 messages a minute into it): a busy agency group's 429
held up every resident's answers in that process. A group's 429 is waited out for that call
alone.

PTB drops a falsy `rate_limit_args` before the limiter sees it, and its limiter reads 0 as "the
default", so "no retries" is asked for with NO_RETRIES. The limiter logs a 429 it did not
retry as an error with its traceback; for these calls it is expected and handled, so that record
is left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

NO_RETRIES = -1
# Set while a call that asked for no retries is in the limiter (each task has its own value).
_raising_at_once: ContextVar[bool] = ContextVar("raising_at_once", default=False)


def _not_an_expected_429(record: logging.LogRecord) -> bool:
    """Leave out the limiter's "rate limit hit" error for a call that asked to get the 429."""
    return not (_raising_at_once.get() and record.levelno >= logging.ERROR)


_PTB_LIMITER_LOG = logging.getLogger("telegram.ext.AIORateLimiter")
log = logging.getLogger(__name__)

Answer = bool | dict[str, Any] | list[dict[str, Any]]
Call = Callable[..., Coroutine[Any, Any, Answer]]


def _into_group(data: dict[str, Any]) -> bool:
    """Whether a call goes to a group or channel (negative ids; PTB also counts @usernames)."""
    chat_id = data.get("chat_id")
    try:
        return int(chat_id) < 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return isinstance(chat_id, str)


class FloodLimiter(AIORateLimiter):
    """PTB's AIORateLimiter; a call that passes `rate_limit_args=NO_RETRIES` gets a 429 raised
    at once, every other call has it waited out up to `retries` times (a group's, by that call
    alone)."""

    def __init__(self, *, retries: int, overall_max_rate: float, group_max_rate: float) -> None:
        # The base limiter's own default is used only for an explicit 0, which PTB never passes.
        super().__init__(
            overall_max_rate=overall_max_rate, group_max_rate=group_max_rate, max_retries=0
        )
        self.retries = retries
        if _not_an_expected_429 not in _PTB_LIMITER_LOG.filters:
            _PTB_LIMITER_LOG.addFilter(_not_an_expected_429)

    async def process_request(
        self,
        callback: Call,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Answer:
        """Keep to the limits; wait out a 429 unless the call asked not to."""
        if rate_limit_args == NO_RETRIES:
            return await self._once(callback, args, kwargs, endpoint, data)
        retries = self.retries if rate_limit_args is None else rate_limit_args
        if not _into_group(data):
            return await super().process_request(callback, args, kwargs, endpoint, data, retries)
        attempt = 0
        while True:
            try:
                return await self._once(callback, args, kwargs, endpoint, data)
            except RetryAfter as error:
                if attempt >= retries:
                    raise
                attempt += 1
                log.info("flood limit in chat %s; retrying its call", data.get("chat_id"))
                await asyncio.sleep(seconds_to_wait(error) + 0.1)

    async def _once(
        self, callback: Call, args: Any, kwargs: dict[str, Any], endpoint: str, data: dict[str, Any]
    ) -> Answer:
        """One attempt within the limits; a 429 is raised, not logged as an error."""
        raising = _raising_at_once.set(True)
        try:
            return await super().process_request(callback, args, kwargs, endpoint, data, 0)
        finally:
            _raising_at_once.reset(raising)


def no_retries(bot: Bot) -> dict[str, Any]:
    """Keyword arguments for a Bot API call that should raise a 429 at once rather than wait it
    out. Empty when the bot has no FloodLimiter (PTB refuses them without a limiter, and its own
    limiter would read NO_RETRIES as no attempt at all)."""
    limiter = getattr(bot, "rate_limiter", None)
    return {"rate_limit_args": NO_RETRIES} if isinstance(limiter, FloodLimiter) else {}


def seconds_to_wait(error: RetryAfter) -> float:
    """How long Telegram asked the bot to wait (PTB gives seconds or a timedelta)."""
    wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
