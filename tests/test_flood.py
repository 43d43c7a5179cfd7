"""The flood limiter as deployed: calls wait out a 429, except those that ask to get it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.flood import no_retries
from tests.conftest import make_settings
from tests.fakebot import ApiCall, start_bot, stop_bot

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
