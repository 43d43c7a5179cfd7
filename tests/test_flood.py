"""The flood limiter as deployed: calls wait out a 429, except those that ask to get it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.flood import no_retries
from tests.conftest import agency_chat, make_settings
from tests.fakebot import ApiCall, start_bot, stop_bot, wait_for

FLOOD = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 1",
    "parameters": {"retry_after": 1},
}


def flood_once() -> Any:
    """Answer the first sendMessage with a 429, then let everything through."""
    left = [FLOOD]

    def hook(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.method == "sendMessage" and left:
            return 429, left.pop()
        return None

    return hook


async def test_a_call_waits_out_a_429_unless_it_asks_for_no_retries(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, api = await start_bot(make_settings(database_url), limited=True)
    api.fail = flood_once()
    await app.bot.send_message(1001, "waited out")
    assert len(api.to_chat(1001)) == 2, "sent again after the wait"
    assert [m.text for m in api.delivered(1001)] == ["waited out"]

    api.fail = flood_once()
    with caplog.at_level(logging.INFO), pytest.raises(RetryAfter):
        await app.bot.send_message(1002, "raised", **no_retries(app.bot))
    assert len(api.to_chat(1002)) == 1 and api.delivered(1002) == [], "not tried again"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (
        "a 429 the caller asked for is not logged as an error"
    )
    await stop_bot(app)


async def test_without_the_limiter_no_retries_asks_for_nothing(database_url: str) -> None:
    """Tests and tools run without the limiter, where PTB refuses rate_limit_args."""
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    assert no_retries(app.bot) == {}
    await app.bot.send_message(1001, "sent", **no_retries(app.bot))
    assert [m.text for m in api.delivered(1001)] == ["sent"]
    await stop_bot(app)


async def test_a_groups_flood_holds_up_that_group_alone(database_url: str) -> None:
    """PTB's limiter halts every request while it waits out any 429: a busy agency group's
    flood held up every resident's answers in that process."""
    app, api = await start_bot(make_settings(database_url), limited=True)
    group = agency_chat(0)
    left = [FLOOD]

    def flood_the_group(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.chat_id == group and left:
            return 429, left.pop()
        return None

    api.fail = flood_the_group
    card = asyncio.create_task(app.bot.send_message(group, "card"))
    await wait_for(lambda: len(api.to_chat(group)) == 1, what="the group's 429")
    started = time.monotonic()
    await app.bot.send_message(1001, "answer")
    answer_took = time.monotonic() - started
    await card
    await stop_bot(app)
    assert answer_took < 0.5, "a resident's answer does not wait for the group's flood"
    assert [m.text for m in api.delivered(group)] == ["card"], "the group's message, once"
    assert len(api.to_chat(group)) == 2, "after waiting out the 429"
