"""Floods and repeats: one chat's 429 holds up that chat alone, one person's burst of messages
gets a limited answer, an update that arrives again is handled once, and an album of photos is
answered once."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram import Update

from bot.config import BotSettings, Settings
from bot.jalali import utcnow
from bot.pipeline import settle
from bot.services import drafts, handled
from models.db import create_engine, create_session_factory
from models.entities import HandledUpdate
from tests.conftest import COORDINATOR, Bot, agency_chat, make_settings
from tests.fakebot import (
    AnyApplication,
    ApiCall,
    ChatUser,
    FakeBotAPI,
    deliver_outbox,
    start_bot,
    stop_bot,
    texts,
    wait_for,
)
from tests.test_report_flow import DESCRIPTION, cases_in

RETRY_AFTER = 2
# The limit on one person's messages a minute, as deployed by default.
DEPLOYED = BotSettings().updates_per_minute
WELCOME = "سلام! این‌جا «محله» است"
SLOW_DOWN = "پیام‌هایتان خیلی پشت سر هم رسید"


def _flood(chat_id: int, retry_after: int = RETRY_AFTER) -> Any:
    """Answer the first message to `chat_id` with a 429 (retry after `retry_after` seconds)."""
    left = [
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
    ]

    def hook(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.method == "sendMessage" and call.chat_id == chat_id and left:
            return 429, left.pop()
        return None

    return hook


def _welcomes(api: FakeBotAPI, chat_id: int) -> int:
    """How many welcomes really arrived in a chat."""
    return sum(WELCOME in message.text for message in api.delivered(chat_id))


# --- a 429 in one chat ------------------------------------------------------------------------


async def test_a_private_chats_flood_holds_up_that_chat_alone(database_url: str) -> None:
    """PTB's limiter halted every request of the process for any 429: a resident refused for
    typing too fast made every other resident wait out their retry_after."""
    pause = 4
    app, api = await start_bot(make_settings(database_url), limited=True)
    fast, other = ChatUser(app, api, 1001), ChatUser(app, api, 1002)
    api.fail = _flood(fast.chat_id, pause)
    started = time.monotonic()
    refused = asyncio.create_task(fast.send("/start"))
    await wait_for(lambda: len(api.to_chat(fast.chat_id)) == 1, what="the 429")
    before = time.monotonic()
    await other.send("/start")
    other_took = time.monotonic() - before
    await refused
    fast_took = time.monotonic() - started
    await stop_bot(app)
    # Under a process-wide halt the other chat waits the whole pause; a loaded machine may take
    # a second or two over a /start, never the pause's rest after the fast chat's answer.
    order = [c.chat_id for c in api.calls if c.method == "sendMessage"]
    assert order == [fast.chat_id, other.chat_id, fast.chat_id], "the other chat went first"
    assert other_took < pause - 1, f"another chat's answer waited {other_took:.2f} s"
    assert _welcomes(api, other.chat_id) == 1
    assert fast_took >= pause, "the refused chat waited out its retry_after"
    assert _welcomes(api, fast.chat_id) == 1, "its answer arrived once, after the wait"
    assert len(api.to_chat(fast.chat_id)) == 2, "refused once, then sent"


async def test_a_chat_paused_by_a_429_sends_nothing_until_the_pause_is_over(
    database_url: str,
) -> None:
    """A second message to the refused chat waits for the same pause, not Telegram's next 429."""
    app, api = await start_bot(make_settings(database_url), limited=True)
    api.fail = _flood(1001)
    started = time.monotonic()
    first = asyncio.create_task(app.bot.send_message(1001, "one"))
    await wait_for(lambda: len(api.to_chat(1001)) == 1, what="the 429")
    await app.bot.send_message(1001, "two")
    second_took = time.monotonic() - started
    await first
    await stop_bot(app)
    assert second_took >= RETRY_AFTER, "the chat's next message waited for the pause"
    assert sorted(m.text for m in api.delivered(1001)) == ["one", "two"]
    assert len(api.to_chat(1001)) == 3, "only the first call was refused"


# --- one person's burst of messages -----------------------------------------------------------


def _deployed(database_url: str) -> Settings:
    """The test config with the limit on a person's messages a minute as deployed (tests
    otherwise lift it): 30, the default."""
    return make_settings(
        database_url, telegram={"rate_limit": False}, bot={"updates_per_minute": DEPLOYED}
    )


async def _limited_bot(database_url: str) -> Bot:
    """The bot with the limit on messages a minute as deployed."""
    return Bot(*await start_bot(_deployed(database_url)))


async def test_a_flood_of_start_gets_the_limit_and_one_slow_down(database_url: str) -> None:
    bot = await _limited_bot(database_url)
    # Nothing is queued in the outbox or placed: the driver need not wait for either.
    flooder = ChatUser(bot.app, bot.api, 1001, deliver=False, settle=False)
    neighbour = bot.user(1002)
    for _ in range(300):
        await flooder.send("/start")
    sent = texts(bot.api.to_chat(flooder.chat_id))
    assert DEPLOYED == 30
    assert sum(WELCOME in text for text in sent) == 30, "[bot] updates_per_minute answers"
    assert sum(SLOW_DOWN in text for text in sent) == 1, "then one 'slow down'"
    assert len(sent) == 31, "then nothing"
    assert WELCOME in texts(await neighbour.send("/start"))[-1], "another chat is unaffected"
    await stop_bot(bot.app)


async def test_the_limit_is_configurable(database_url: str) -> None:
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"updates_per_minute": 3}
    )
    app, api = await start_bot(settings)
    person = ChatUser(app, api, 1001)
    replies = [texts(await person.send("/start")) for _ in range(6)]
    await stop_bot(app)
    assert [len(r) for r in replies] == [1, 1, 1, 1, 0, 0]
    assert SLOW_DOWN in replies[3][0]


async def test_in_a_group_each_member_counts_alone_and_coordinators_are_not_limited(
    database_url: str,
) -> None:
    """An agency group has many staff working at once: one member's flood does not silence
    the others."""
    bot = await _limited_bot(database_url)
    group = agency_chat(0)
    flooder, colleague = bot.in_group(5001, group, "a"), bot.in_group(5002, group, "b")
    for _ in range(32):
        await flooder.send("/chatid")
    answered = texts(bot.api.to_chat(group))
    assert [SLOW_DOWN in text for text in answered] == [False] * 30 + [True]
    assert len(texts(await colleague.send("/chatid"))) == 1, "the colleague is answered"
    coordinator = bot.user(COORDINATOR)
    for _ in range(35):
        await coordinator.send("/start")
    await stop_bot(bot.app)
    assert _welcomes(bot.api, COORDINATOR) == 35


async def test_a_flood_past_the_limit_costs_the_database_nothing(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One process receives the bot's updates and counts each person's in its memory: a
    person flooding the bot past the limit is answered "slow down" once and the rest are
    dropped without a statement, whatever the flood's size."""
    from sqlalchemy import event

    settings = _deployed(database_url)
    app, api = await start_bot(settings)
    flooder = ChatUser(app, api, 1001)
    for _ in range(30):
        await flooder.send("/start")
    statements: list[str] = []

    def executed(*arguments: Any) -> None:
        statements.append(arguments[2])

    engine = app.bot_data["runtime"].engine.sync_engine
    event.listen(engine, "before_cursor_execute", executed)
    flooding = ChatUser(app, api, 1001, deliver=False)  # the test's own outbox look left out
    for _ in range(200):
        await flooding.send("/start")
    event.remove(engine, "before_cursor_execute", executed)
    sent = texts(api.to_chat(1001))
    await stop_bot(app)
    assert sum(WELCOME in text for text in sent) == 30
    assert sum(SLOW_DOWN in text for text in sent) == 1 and len(sent) == 31
    assert statements == [], "no statement for 200 dropped messages"


# --- an update that arrives again -------------------------------------------------------------


def _press_update(person: ChatUser, label: str) -> Update:
    """The callback query `person.press(label)` would send, to send it more than once."""
    for message in reversed(person.api.delivered(person.chat_id)):
        for button in message.buttons():
            if label in button["text"]:
                query = {
                    "id": f"q{time.monotonic_ns()}",
                    "from": person.user,
                    "chat_instance": f"ci{person.user_id}",
                    "data": button["callback_data"],
                    "message": message.as_update_part(),
                }
                update_id = next(ChatUser._update_ids)
                payload = {"update_id": update_id, "callback_query": query}
                return Update.de_json(payload, person.app.bot)
    raise AssertionError(f"no button {label!r}")


async def _handle(app: AnyApplication, update: Update) -> None:
    """Handle one update in this process, as `ChatUser` does, and let its work finish."""
    await app.process_update(update)
    await settle(app.bot_data["runtime"])
    await deliver_outbox(app)


async def test_a_late_replay_is_dropped_in_one_process(
    resident: ChatUser, settings: Settings
) -> None:
    start = resident.text_update("/start")
    await _handle(resident.app, start)
    await _handle(resident.app, start)  # the same update again, after it was handled
    assert _welcomes(resident.api, resident.chat_id) == 1

    await walk_to_summary_from_menu(resident)
    confirm = _press_update(resident, "ثبت گزارش")
    await _handle(resident.app, confirm)
    calls = len(resident.api.to_chat(resident.chat_id))
    await asyncio.sleep(0.5)
    await _handle(resident.app, confirm)
    assert len(resident.api.to_chat(resident.chat_id)) == calls, "no reply to the replay"
    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION
    registered = [t for t in texts(resident.api.to_chat(resident.chat_id)) if "ثبت شد" in t]
    assert len(registered) == 1
    cards = [c for c in resident.api.to_chat(agency_chat(0)) if c.method == "sendMessage"]
    assert len(cards) == 1, "one card for the agency"


async def walk_to_summary_from_menu(resident: ChatUser) -> None:
    """New report → Yousefabad → description → skip media → anonymous."""
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")


async def _handled_rows(database_url: str) -> int:
    """How many handled update ids the database keeps."""
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(HandledUpdate))
    await engine.dispose()
    return int(count or 0)


async def test_a_late_replay_is_dropped_by_whichever_process_receives_it(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process may receive the bot's updates by the time an update comes again (the
    first stopped): it drops it too."""
    settings = make_settings(database_url, telegram={"rate_limit": False})
    processes = [await start_bot(settings) for _ in range(2 if "postgresql" in database_url else 1)]
    app_a, api_a = processes[0]
    start = ChatUser(app_a, api_a, 1001).text_update("/start")
    await app_a.process_update(start)
    new_report = ChatUser(app_a, api_a, 1001).text_update("📝 گزارش جدید")
    await app_a.process_update(new_report)
    assert _welcomes(api_a, 1001) == 1 and _asked_where(api_a) == 1
    caplog.set_level(logging.INFO, logger="handlers.common")
    for app, _ in processes:  # Telegram, or anyone, sends them again, to either
        for update in (start, new_report):
            await app.process_update(Update.de_json(update.to_dict(), app.bot))
    for app, _ in processes:
        await stop_bot(app)
    apis = [api for _, api in processes]
    assert sum(_welcomes(api, 1001) for api in apis) == 1
    assert sum(_asked_where(api) for api in apis) == 1
    assert caplog.text.count("arrived again") == 2 * len(processes)
    assert await _handled_rows(database_url) == 2


def _asked_where(api: FakeBotAPI) -> int:
    """How many times resident 1001 was asked where the problem is."""
    return sum("نام محله را تایپ کنید" in call.text for call in api.to_chat(1001))


async def test_handled_update_ids_are_forgotten_after_a_day(database_url: str) -> None:
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    long_ago = datetime(2026, 12, 1, 12, tzinfo=UTC)
    async with factory() as session:
        assert await handled.claim(session=session, update_id=7, now=long_ago)
        assert not await handled.claim(session=session, update_id=7, now=long_ago)
        assert await handled.claim(session=session, update_id=8, now=long_ago + timedelta(days=1))
        forgotten = await handled.forget_handled(
            session=session, handled_before=long_ago + handled.HANDLED_KEPT
        )
        again = await handled.claim(session=session, update_id=7, now=long_ago)
    await engine.dispose()
    assert (forgotten, again) == (1, True)


# --- an album ---------------------------------------------------------------------------------


async def _send_album(person: ChatUser, album: str, photos: int) -> list[ApiCall]:
    """Send `photos` photos together, as a messenger sends an album: a message each."""
    calls: list[ApiCall] = []
    for n in range(photos):
        sizes = [{"file_id": f"{album}-{n}", "file_unique_id": f"{album}u{n}", "width": 1280,
                  "height": 960}]  # fmt: skip
        calls += await person.send_content(photo=sizes, media_group_id=album)
    return calls


async def test_an_album_is_answered_once_and_its_photos_kept_up_to_the_limit(
    resident: ChatUser, session_factory: Any
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    replies = texts(await _send_album(resident, "album1", 12))
    assert len(replies) == 2, replies
    assert "عکس‌ها رسید" in replies[0]
    assert "فقط ۵ عکس نگه داشته شد" in replies[1]
    async with session_factory() as session:
        draft = await drafts.load_draft(session=session, user_id=resident.user_id)
    assert draft is not None
    assert draft.photo_file_ids == [f"album1-{n}" for n in range(drafts.MAX_PHOTOS)]
    summary = texts(await resident.send("ادامه ⬅️"))
    assert summary, "the report goes on"


async def test_an_album_within_the_limit_gets_one_answer(
    resident: ChatUser, session_factory: Any
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    await resident.send_photo("single")
    replies = texts(await _send_album(resident, "album2", 3))
    assert len(replies) == 1 and "عکس‌ها رسید" in replies[0]
    async with session_factory() as session:
        draft = await drafts.load_draft(session=session, user_id=resident.user_id)
    assert draft is not None and len(draft.photo_file_ids) == 4


async def test_only_an_update_older_than_the_process_receiving_is_looked_up(
    database_url: str,
) -> None:
    """The process receiving a bot knows what it handled; the database is asked only about an
    update no newer than the newest recorded when it began receiving (a redelivery after a
    takeover), so a new update costs no look-up."""
    from sqlalchemy import event

    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    async with factory() as session:
        for key in (5, 9):  # handled by the process that received before
            assert await handled.claim(session=session, update_id=key, now=utcnow())
    here = handled.HandledHere(0, 99)
    looked_up: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: looked_up.append(a[2]))
    async with factory() as session:
        assert here.may_be_elsewhere(10), "the mark is not read yet"
        assert not await here.handled_before(session=session, key=10)
        assert here.mark == 9 and len(looked_up) == 1, "one statement: the newest recorded"
        assert not here.may_be_elsewhere(10) and not here.may_be_elsewhere(11)
        assert await here.handled_before(session=session, key=9), "the other process's"
        assert not await here.handled_before(session=session, key=7), "a gap: never handled"
        assert len(looked_up) == 3
        here.add(10)
        assert 10 in here and not here.may_be_elsewhere(10)
    here.KEPT = 2
    for key in (11, 12, 13):
        here.add(key)
    assert 10 not in here and 11 not in here and here.mark == 11, "forgotten, left to the database"
    assert here.may_be_elsewhere(11) and not here.may_be_elsewhere(12)
    here.begin_receiving()  # it let the bot go and took it again: others may have handled
    assert here.may_be_elsewhere(14) and 13 in here and here.mark is None
    await engine.dispose()
