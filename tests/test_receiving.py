"""One process receives each bot's updates; the others stand by, answer its webhook with 503
(nginx then tries the next), and one takes over within seconds when it goes, carrying on every
chat's conversation where the last one left it. A webhook is answered once its update was
handled, so Telegram sends again what a dying process had not handled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import pytest

from bot import receiving, serving
from bot.app import ALLOWED_UPDATES
from bot.config import Settings, TelegramSettings
from bot.receiving import Receivers
from models.db import create_engine
from tests.conftest import make_settings
from tests.fakebot import AnyApplication, ChatUser, FakeBotAPI, start_bot, stop_bot, texts
from tests.test_platform import free_port

SECRET = "a-long-random-secret-of-forty-characters"


def webhook_settings(database_url: str) -> Settings:
    telegram = TelegramSettings.model_validate(
        {
            "mode": "webhook",
            "webhook_url": "https://bot.example.ir/telegram",
            "webhook_secret": SECRET,
            "rate_limit": False,
        }
    )
    return make_settings(database_url).model_copy(update={"telegram": telegram})


def update_of(person: ChatUser, text: str) -> dict[str, Any]:
    """What Telegram posts when `person` types `text`."""
    return person.text_update(text).to_dict()


class Process:
    """A `mahalle run` process: the bot, and its webhook server on a port of its own."""

    def __init__(self, app: AnyApplication, api: FakeBotAPI, settings: Settings) -> None:
        self.app, self.api, self.port = app, api, free_port()
        self.receiving = serving.Receiving([app], settings, list(ALLOWED_UPDATES))

    @classmethod
    async def start(cls, settings: Settings) -> Process:
        app, api = await start_bot(settings)
        await app.start()
        process = cls(app, api, settings)
        await process.receiving.start(process.port)
        return process

    async def post(self, update: dict[str, Any]) -> int:
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.post(
                f"http://127.0.0.1:{self.port}/telegram",
                json=update,
                headers={serving.SECRET_HEADER: SECRET},
            )
        return answer.status_code

    async def stop(self) -> None:
        await self.receiving.stop()
        await self.app.stop()
        await stop_bot(self.app)


async def test_one_process_receives_the_other_stands_by_and_takes_over(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one process on SQLite: it receives everything")
    monkeypatch.setattr(receiving, "RETRY_SECONDS", 0.2)
    settings = webhook_settings(database_url)
    first = await Process.start(settings)
    second = await Process.start(settings)
    try:
        resident = ChatUser(first.app, first.api, 1001)
        assert await second.post(update_of(resident, "/start")) == 503, "the standby refuses"
        assert not second.api.to_chat(1001)
        assert await first.post(update_of(resident, "/start")) == 200
        # Answered once handled: the welcome is out before the webhook's answer.
        assert "سلام" in texts(first.api.to_chat(1001))[0]
        assert await first.post(update_of(resident, "📝 گزارش جدید")) == 200
        assert "محله" in texts(first.api.to_chat(1001))[-1], "asked where the problem is"

        started = time.monotonic()
        await first.stop()  # the receiving process goes
        while await second.post(update_of(resident, "جهاد")) == 503:
            assert time.monotonic() - started < 10, "no process took over"
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        # The standby carried on the resident's report where the first process left it.
        assert any(
            "جهاد" in label for label in ChatUser(second.app, second.api, 1001).button_labels()
        )
        assert took < 5
        registered = [c for c in second.api.calls if c.method == "setWebhook"]
        assert registered and registered[-1].params["url"] == "https://bot.example.ir/telegram"
    finally:
        await second.stop()
        if first.app.running:
            await first.stop()


async def test_processes_started_together_take_a_bot_each(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process takes one bot as it starts and the next only a try later: another process
    started a moment after it gets the other bot."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one process on SQLite: it receives everything")
    monkeypatch.setattr(receiving, "RETRY_SECONDS", 0.5)
    engines = [create_engine(database_url) for _ in range(2)]
    one, other = (Receivers(engine, ["a", "b"]) for engine in engines)
    trying = None
    try:
        await one.step()  # as the process starts (bot.serving)
        trying = asyncio.create_task(one.run_forever())
        await asyncio.sleep(0.1)  # the other process starts a moment later
        await other.step()
        assert one.leading == {"a"} and other.leading == {"b"}, "a bot each"
    finally:
        if trying is not None:
            trying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trying
        await one.release_all()
        await other.release_all()
        for engine in engines:
            await engine.dispose()


async def test_a_webhook_is_answered_only_once_its_update_was_handled(
    database_url: str,
) -> None:
    settings = webhook_settings(database_url)
    process = await Process.start(settings)
    calls = process.api.calls
    slow = asyncio.Event()
    original = process.api.do_request

    async def slow_send(url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/sendMessage"):
            await asyncio.sleep(0.5)
            slow.set()
        return await original(url, method, *args, **kwargs)

    process.api.do_request = slow_send  # type: ignore[method-assign]
    try:
        resident = ChatUser(process.app, process.api, 1002)
        started = time.monotonic()
        assert await process.post(update_of(resident, "/start")) == 200
        assert time.monotonic() - started >= 0.5 and slow.is_set()
        assert any(c.method == "sendMessage" and c.chat_id == 1002 for c in calls)
    finally:
        await process.stop()


async def test_each_bot_has_one_receiver_and_processes_share_them_out(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        alone = Receivers(engine, ["a", "b"])
        await alone.step()
        assert alone.leading == {"a", "b"}, "SQLite's one process receives for every bot"
        await engine.dispose()
        return
    engines = [create_engine(database_url) for _ in range(2)]
    one, other = (Receivers(engine, ["a", "b"]) for engine in engines)
    try:
        await one.step()
        await other.step()
        assert one.leading == {"a"} and other.leading == {"b"}, "a bot each"
        await one.step()
        await other.step()
        assert one.leading == {"a"} and other.leading == {"b"}, "each bot once"
        await one.release_all()
        await other.step()
        assert other.leading == {"a", "b"}, "the other takes the one let go"
    finally:
        await one.release_all()
        await other.release_all()
        for engine in engines:
            await engine.dispose()


async def dies_sending(app: AnyApplication, api: FakeBotAPI, update: Any) -> None:
    """Handle `update` until its first message is on its way to Telegram, then stop, as a
    process killed then would: nothing after that point runs, and nothing is sent."""
    sent = asyncio.Event()
    original = api.do_request

    async def hanging(url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/sendMessage") and not sent.is_set():
            await asyncio.sleep(3600)  # the process dies while the message is on its way
        return await original(url, method, *args, **kwargs)

    api.do_request = hanging  # type: ignore[method-assign]
    dying = asyncio.create_task(app.process_update(update))
    await asyncio.sleep(0.5)
    dying.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dying
    sent.set()
    api.do_request = original  # type: ignore[method-assign]


async def test_an_update_its_process_died_on_is_handled_when_sent_again(
    database_url: str,
) -> None:
    """Killed mid-update, the process answered no webhook: Telegram sends the update again, and
    it is handled then (it was not recorded as handled before its end)."""
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    resident = ChatUser(app, api, 1003)
    start = resident.text_update("/start")
    await dies_sending(app, api, start)
    assert not texts(api.to_chat(1003))
    await app.process_update(start)  # sent again, to the process receiving now
    await stop_bot(app)
    assert "سلام" in texts(api.to_chat(1003))[0]


async def test_a_report_step_its_process_died_on_is_answered_by_the_next_process(
    database_url: str,
) -> None:
    """Killed after a report step's draft could have been saved but before its question went
    out, the process had recorded nothing: the process receiving next handles Telegram's second
    delivery, and the resident gets the question and keeps what they typed."""
    settings = make_settings(database_url, telegram={"rate_limit": False})
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 1004)
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    described = resident.text_update("لامپ‌های کوچهٔ ما یک هفته است که خاموش مانده‌اند")
    asked_before = len(api.to_chat(1004))
    await dies_sending(app, api, described)
    await stop_bot(app)
    assert len(api.to_chat(1004)) == asked_before, "the question never left"

    after, api_after = await start_bot(settings)  # the process receiving next
    try:
        again = type(described).de_json(described.to_dict(), after.bot)
        await after.process_update(again)  # Telegram's second delivery
        asked = texts(api_after.to_chat(1004))
        assert len(asked) == 1 and "عکس" in asked[0], asked
        resident = ChatUser(after, api_after, 1004)
        await resident.send("ادامه ⬅️")
        await resident.send("🙈 ناشناس بمانم")
        summary = texts(api_after.to_chat(1004))
        assert any("لامپ‌های کوچهٔ ما" in text for text in summary), "the description was kept"
    finally:
        await stop_bot(after)
