"""The outbox under 429s, 5xx, time-outs, dead chats, migrations and a restart mid-delivery."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.error import NetworkError, TimedOut

from bot.config import Settings
from bot.jalali import utcnow
from bot.services import outbox, pacing
from models.db import create_engine, create_session_factory
from models.entities import Agency, OutboxMessage
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat, make_settings
from tests.fakebot import (
    ApiCall,
    ChatUser,
    FakeBotAPI,
    bot_side,
    crash_bot,
    rows_bot,
    start_bot,
    stop_bot,
    wait_for,
)
from tests.test_agency import report
from tests.test_report_flow import cases_in, confirm_report

MUNICIPALITY = agency_chat(0)


class Clock:
    """A "now" the test moves by hand; it starts a minute ahead so rows queued later are due."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def failing(chat_id: int, *answers: tuple[int, dict[str, Any]] | Exception) -> Any:
    """Fail the next calls to `chat_id` with `answers`, in order; then succeed."""
    queue = list(answers)

    def hook(call: ApiCall) -> tuple[int, dict[str, Any]] | Exception | None:
        if call.chat_id == chat_id and queue:
            return queue.pop(0)
        return None

    return hook


def error(code: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return code, payload


async def queued_report(bot: Bot, user_id: int = 1001) -> ChatUser:
    """File a report without running the worker, so its messages wait in the outbox."""
    resident = ChatUser(bot.app, bot.api, user_id, deliver=False)
    await report(resident)
    return resident


async def deliver(bot: Bot, clock: Clock) -> int:
    return int(await bot.app.bot_data["runtime"].sender.deliver_due(now=clock))


async def outbox_rows(settings: Settings) -> list[OutboxMessage]:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())
    await engine.dispose()
    return rows


async def test_429_with_retry_after_waits_that_long_then_sends_once(bot: Bot) -> None:
    clock = Clock()
    await queued_report(bot)
    bot.api.fail = failing(
        MUNICIPALITY, error(429, "Too Many Requests: retry after 30", retry_after=30)
    )
    await deliver(bot, clock)
    assert bot.api.delivered(MUNICIPALITY) == []
    clock.advance(10)
    await deliver(bot, clock)
    assert bot.api.delivered(MUNICIPALITY) == [], "not before retry_after"
    clock.advance(21)
    await deliver(bot, clock)
    assert len(bot.api.delivered(MUNICIPALITY)) == 1
    clock.advance(3600)
    await deliver(bot, clock)
    assert len(bot.api.delivered(MUNICIPALITY)) == 1, "never twice"


async def test_429_without_retry_after_backs_off_exponentially(
    bot: Bot, settings: Settings
) -> None:
    clock = Clock()
    await queued_report(bot)
    bale_flood = error(429, "Too Many Requests")
    bot.api.fail = failing(MUNICIPALITY, bale_flood, bale_flood, bale_flood)
    await deliver(bot, clock)
    delays = []
    for _ in range(3):
        [card] = [r for r in await outbox_rows(settings) if r.chat_id == bot_side(MUNICIPALITY)]
        if card.status == "sent":
            break
        next_at = (
            card.next_attempt_at
            if card.next_attempt_at.tzinfo
            else card.next_attempt_at.replace(tzinfo=clock.now.tzinfo)
        )
        delays.append(round((next_at - clock.now).total_seconds()))
        clock.now = next_at
        await deliver(bot, clock)
    assert delays == [2, 4, 8]
    assert len(bot.api.delivered(MUNICIPALITY)) == 1


async def test_5xx_and_time_outs_delay_but_deliver_once(bot: Bot) -> None:
    clock = Clock()
    await queued_report(bot)
    bot.api.fail = failing(
        MUNICIPALITY,
        error(502, "Bad Gateway"),
        TimedOut("read timed out"),
        NetworkError("connection reset by peer"),
        error(500, "Internal Server Error"),
    )
    for _ in range(6):
        await deliver(bot, clock)
        clock.advance(60)
    assert len(bot.api.delivered(MUNICIPALITY)) == 1
    attempts = [c for c in bot.api.to_chat(MUNICIPALITY) if c.method == "sendMessage"]
    assert len(attempts) == 5, "four failures, one success, nothing after"


async def test_a_restart_mid_delivery_loses_nothing_and_sends_nothing_twice(
    settings: Settings,
) -> None:
    app, api = await start_bot(settings)
    first = Bot(app, api)
    for user_id in (1001, 1002, 1003):
        resident = ChatUser(app, api, user_id, deliver=False)
        await resident.send("📝 گزارش جدید")
        await resident.send("جهاد")
        await resident.press("جهاد")
        await resident.send("آسفالت خیابان اصلی محله جهاد پر از چاله است شماره " + str(user_id))
        await resident.send_photo(f"P{user_id}")
        await resident.send("ادامه ⬅️")
        await resident.send("🙈 ناشناس بمانم")
        await confirm_report(resident)
    clock = Clock()
    await first.app.bot_data["runtime"].sender.deliver_due(now=clock, limit=4)
    await crash_bot(app)  # the process dies here, without shutting down

    app2, api2 = await start_bot(settings)
    await app2.bot_data["runtime"].sender.deliver_due(now=clock)
    await stop_bot(app2)
    sent = [*api.delivered(MUNICIPALITY), *api2.delivered(MUNICIPALITY)]
    albums = [m for m in sent if m.text == ""]
    cards = [m for m in sent if "آسفالت" in m.text]
    assert len(cards) == 3 and len(albums) == 3, "each photo once, each card once"
    notices = [
        m
        for chat in (1001, 1002, 1003)
        for m in [*api.delivered(chat), *api2.delivered(chat)]
        if "فرستاده شد" in m.text
    ]
    assert len(notices) == 3
    assert all(row.status == "sent" for row in await outbox_rows(settings))


async def test_a_chat_that_cannot_be_reached_is_reported_once(bot: Bot, settings: Settings) -> None:
    clock = Clock()
    bot.api.fail = lambda call: (
        error(403, "Forbidden: bot was kicked from the supergroup chat")
        if call.chat_id == MUNICIPALITY
        else None
    )
    await queued_report(bot, 1001)
    await queued_report(bot, 1002)
    await deliver(bot, clock)
    to_coordinators = bot.api.delivered(COORDINATOR_CHAT)
    notices = [m for m in to_coordinators if str(bot_side(MUNICIPALITY)) in m.text]
    assert len(notices) == 1, "one notice for the chat, however many cases"
    cases = await cases_in(settings)
    assert all(case.undeliverable for case in cases)
    assert {
        r.status for r in await outbox_rows(settings) if r.chat_id == bot_side(MUNICIPALITY)
    } == {"dead"}

    reroute_cards = [m for m in to_coordinators if m.buttons()]
    assert len(reroute_cards) == 2, "each stranded case is put before the coordinators"
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    bot.api.fail = None
    await coordinator.press("انتظامی و امنیت")
    rerouted = [c for c in await cases_in(settings) if c.agency_key == "police"]
    assert (
        len(rerouted) == 1 and rerouted[0].status == "forwarded" and not rerouted[0].undeliverable
    )
    assert len(bot.api.delivered(agency_chat(2))) == 1


async def test_chat_not_found_is_also_final(bot: Bot, settings: Settings) -> None:
    clock = Clock()
    bot.api.fail = failing(MUNICIPALITY, error(400, "Bad Request: chat not found"))
    await queued_report(bot)
    await deliver(bot, clock)
    [case] = await cases_in(settings)
    assert case.undeliverable
    assert (
        len(
            [
                m
                for m in bot.api.delivered(COORDINATOR_CHAT)
                if str(bot_side(MUNICIPALITY)) in m.text
            ]
        )
        == 1
    )


async def test_a_group_that_became_a_supergroup_is_followed(bot: Bot, settings: Settings) -> None:
    clock = Clock()
    new_id = -1009999999
    bot.api.fail = failing(
        MUNICIPALITY,
        error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=new_id,
        ),
    )
    await queued_report(bot)
    await deliver(bot, clock)
    assert len(bot.api.delivered(new_id)) == 1
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        agency = await session.get(Agency, "municipality")
    await engine.dispose()
    assert agency is not None and agency.chat_id == new_id


async def test_one_slow_chat_does_not_hold_up_others_and_keeps_its_order(bot: Bot) -> None:
    clock = Clock()
    resident = ChatUser(bot.app, bot.api, 1001, deliver=False)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send("آسفالت خیابان اصلی محله جهاد پر از چاله است")
    await resident.send_photo("ALBUM")
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    bot.api.fail = failing(MUNICIPALITY, error(502, "Bad Gateway"))
    await deliver(bot, clock)
    assert bot.api.delivered(MUNICIPALITY) == [], "the card waits behind its failed album"
    assert bot.api.delivered(1001), "the reporter's notice went out meanwhile"
    clock.advance(5)
    await deliver(bot, clock)
    album, card = bot.api.delivered(MUNICIPALITY)
    assert album.text == "" and "آسفالت" in card.text


async def test_a_full_group_waits_for_room_and_nobody_else_does(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    start = utcnow()

    async def room(chat_id: int, seconds: float) -> float:
        async with session_factory() as session, session.begin():
            moment = start + timedelta(seconds=seconds)
            return await pacing.take_room(session, chat_id=chat_id, now=moment, per_minute=20)

    for _ in range(20):
        assert await room(MUNICIPALITY, 0) == 0
    assert await room(MUNICIPALITY, 0) == pytest.approx(3), "room for one every 3 seconds"
    assert await room(agency_chat(1), 0) == 0, "another group has its own room"
    assert await room(MUNICIPALITY, 3) == 0
    assert await room(MUNICIPALITY, 3) == pytest.approx(3), "a refusal took no room"
    for _ in range(20):
        assert await room(MUNICIPALITY, 63) == 0, "empty again after a quiet minute"


async def test_a_storm_to_one_agency_holds_up_no_other_chat(database_url: str) -> None:
    """Under Telegram's 20 messages a minute into a group, the sender used to wait in the flood
    limiter for the storm's group, and every other chat with it."""
    settings = make_settings(database_url)  # keeping to the flood limits, as deployed
    app, api = await start_bot(settings, limited=True)
    other_agency = agency_chat(1)
    async with app.bot_data["runtime"].session_factory() as session:
        queued = [(MUNICIPALITY, f"card {n}") for n in range(25)]
        queued += [(1001, "forwarded"), (other_agency, "another agency's card")]
        for chat_id, text in queued:
            outbox.enqueue(
                session, chat_id=bot_side(chat_id), purpose="test", payload={"text": text}
            ).bot_key = rows_bot()  # the bot's ids: positive for Bale's groups, paced all the same
        await session.commit()
    clock = Clock()
    attempted = await asyncio.wait_for(app.bot_data["runtime"].sender.deliver_due(now=clock), 10)
    assert attempted == 22
    assert [m.text for m in api.delivered(MUNICIPALITY)] == [f"card {n}" for n in range(20)]
    assert [m.text for m in api.delivered(1001)] == ["forwarded"]
    assert [m.text for m in api.delivered(other_agency)] == ["another agency's card"]
    waiting = [row for row in await outbox_rows(settings) if row.status == "pending"]
    assert len(waiting) == 5 and all(row.attempts == 0 for row in waiting), "put off, not failed"
    due = waiting[0].next_attempt_at.replace(tzinfo=clock.now.tzinfo)  # the rest wait behind it
    assert due - clock.now == pytest.approx(timedelta(seconds=3), abs=timedelta(seconds=1)), (
        "until the group has room again"
    )
    await stop_bot(app)


async def test_two_workers_send_a_group_no_more_than_one_would(database_url: str) -> None:
    """A standby worker delivers too, and a restarted one starts afresh: each used to count
    the group's room in its own memory, so together they sent it twice Telegram's allowance."""
    settings = make_settings(database_url)
    first, api = await start_bot(settings, limited=True)
    second, _ = await start_bot(settings, api, limited=True)
    async with first.bot_data["runtime"].session_factory() as session:
        for n in range(25):
            outbox.enqueue(
                session, chat_id=bot_side(MUNICIPALITY), purpose="test", payload={"text": str(n)}
            )
        await session.commit()
    clock = Clock()
    for worker in (first, second, first, second):
        sender = worker.bot_data["runtime"].sender
        await asyncio.wait_for(sender.deliver_due(now=clock, limit=10), 10)
    assert [m.text for m in api.delivered(MUNICIPALITY)] == [str(n) for n in range(20)]
    clock.advance(3)
    await asyncio.wait_for(second.bot_data["runtime"].sender.deliver_due(now=clock), 10)
    assert len(api.delivered(MUNICIPALITY)) == 21, "one more when there is room for one"
    await stop_bot(first)
    await stop_bot(second)


async def test_a_429_is_on_record_at_once_and_the_worker_pauses_after(database_url: str) -> None:
    """Telegram's 429 used to be waited out inside the call, with the row's transaction (and on
    PostgreSQL its lock) open as long as Telegram asked: an upgrade's ALTER TABLE outbox queued
    behind it. Now the 429 is committed at once, then the worker pauses, sending nothing.
    (One send at a time: a second would send the notice alongside the card, before the 429.)"""
    settings = make_settings(database_url, outbox={"worker": False, "sends_at_once": 1})
    app, api = await start_bot(settings, limited=True)
    async with app.bot_data["runtime"].session_factory() as session:
        outbox.enqueue(
            session, chat_id=bot_side(MUNICIPALITY), purpose="test", payload={"text": "card"}
        )
        notice = outbox.enqueue(session, chat_id=1001, purpose="test", payload={"text": "notice"})
        notice.bot_key = rows_bot()
        await session.commit()
    flood = failing(MUNICIPALITY, error(429, "Too Many Requests: retry after 2", retry_after=2))
    card_calls: list[float] = []

    def record(call: ApiCall) -> Any:
        if call.chat_id == MUNICIPALITY:
            card_calls.append(time.monotonic())
        return flood(call)

    api.fail = record
    worker = asyncio.create_task(app.bot_data["runtime"].sender.run_forever(0.2))
    await wait_for(lambda: len(card_calls) == 1, what="the first attempt")
    await asyncio.sleep(0.5)
    during = {row.chat_id: row for row in await outbox_rows(settings)}
    notice_during_pause = api.delivered(1001)
    await wait_for(lambda: len(api.delivered(MUNICIPALITY)) == 1, what="the card", seconds=10)
    await wait_for(lambda: len(api.delivered(1001)) == 1, what="the notice")
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    await stop_bot(app)
    card = during[bot_side(MUNICIPALITY)]
    assert card.attempts == 1 and "retry in 2 seconds" in (card.last_error or "").lower(), (
        "the 429 committed while the worker waits"
    )
    assert notice_during_pause == [], "nothing sent while Telegram asked the bot to wait"
    assert len(card_calls) == 2 and card_calls[1] - card_calls[0] >= 1.9, "once, after the wait"


async def test_a_burst_on_a_fresh_outbox_goes_out_in_seconds(database_url: str) -> None:
    """A storm right after a deployment (or after a quiet spell) used to find PostgreSQL's
    statistics saying the outbox held nothing to send: each claim then read every waiting row
    once for each waiting row, and 1,200 messages took minutes instead of seconds."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the plans at stake are PostgreSQL's")
    settings = make_settings(database_url)
    app, api = await start_bot(settings)
    residents = range(700_000, 701_200)
    await enqueue_texts(settings, [(chat_id, "خبر") for chat_id in residents])
    sender = app.bot_data["runtime"].sender
    attempted = await asyncio.wait_for(sender.deliver_due(now=Clock(), limit=2000), 60)
    assert attempted == len(residents)
    arrived = Counter(chat for chat, _ in api.messages)
    assert all(arrived[chat_id] == 1 for chat_id in residents), "each once"
    await stop_bot(app)


class RoundTripAPI(FakeBotAPI):
    """The fake Bot API whose answers take `latency` seconds to come back, as Telegram's from
    far away (a message has arrived by then), noting the most calls on their way at once."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.on_the_way = 0
        self.most_at_once = 0

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        self.on_the_way += 1
        self.most_at_once = max(self.most_at_once, self.on_the_way)
        try:
            answer = await super().do_request(*args, **kwargs)
            await asyncio.sleep(self.latency)
            return answer
        finally:
            self.on_the_way -= 1


async def enqueue_texts(settings: Settings, messages: list[tuple[int, str]]) -> None:
    """Queue (chat, text) messages in this order."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        for chat_id, text in messages:
            row = outbox.enqueue(session, chat_id=chat_id, purpose="test", payload={"text": text})
            row.bot_key = rows_bot()
        await session.commit()
    await engine.dispose()


def one_sender_on_sqlite(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite sends one message at a time (no row locks to keep two senders apart)")


async def test_several_chats_messages_go_at_once_and_each_chats_in_order(
    database_url: str,
) -> None:
    """One message at a time, each waited out Telegram's round trip: with the Bot API 100 ms
    away the outbox sent 8 a second of the 30 Telegram takes."""
    one_sender_on_sqlite(database_url)
    settings = make_settings(database_url, outbox={"worker": False})
    app, api = await start_bot(settings, RoundTripAPI(latency=0.3))
    chats = range(800_000, 800_012)
    await enqueue_texts(settings, [(chat, f"{n}") for n in range(3) for chat in chats])
    sender = app.bot_data["runtime"].sender
    assert await asyncio.wait_for(sender.deliver_due(now=Clock()), 30) == 36
    await stop_bot(app)
    assert isinstance(api, RoundTripAPI)
    assert api.most_at_once == settings.outbox.sends_at_once
    for chat in chats:
        assert [m.text for m in api.delivered(chat)] == ["0", "1", "2"], "each chat's in order"


async def test_a_429_stops_every_send_but_those_on_their_way(database_url: str) -> None:
    """Telegram's limit is the bot's: after a 429 to one chat, no other send may start."""
    one_sender_on_sqlite(database_url)
    settings = make_settings(database_url, outbox={"worker": False})
    app, api = await start_bot(settings, RoundTripAPI(latency=0.05))
    notices = range(810_000, 810_040)
    await enqueue_texts(settings, [(MUNICIPALITY, "card"), *((c, "notice") for c in notices)])
    api.fail = failing(MUNICIPALITY, error(429, "Too Many Requests: retry after 5", retry_after=5))
    sender = app.bot_data["runtime"].sender
    await asyncio.wait_for(sender.deliver_due(now=Clock()), 30)
    await stop_bot(app)
    sent = sum(1 for chat in notices if api.delivered(chat))
    # Each other lane had at most one send on its way when the 429 came (and perhaps one done
    # before it): the rest wait for the next round, after the pause.
    assert sent <= 2 * settings.outbox.sends_at_once
    pending = [row for row in await outbox_rows(settings) if row.status == "pending"]
    assert len(pending) == 1 + len(notices) - sent


async def test_a_sender_stopped_mid_send_records_the_send_and_never_repeats_it(
    database_url: str,
) -> None:
    """A worker stopped (a restart, an upgrade) while Telegram was answering used to roll the
    row back: the message had arrived, and was sent again at the next start."""
    settings = make_settings(database_url, outbox={"worker": False})
    app, api = await start_bot(settings, RoundTripAPI(latency=0.3))
    assert isinstance(api, RoundTripAPI)
    chats = range(820_000, 820_003)
    await enqueue_texts(settings, [(chat, "خبر") for chat in chats])
    sender = app.bot_data["runtime"].sender
    stopping = asyncio.create_task(sender.deliver_due(now=Clock()))
    await wait_for(lambda: api.on_the_way > 0, what="a send on its way")
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    await asyncio.wait_for(sender.deliver_due(now=Clock()), 10)  # as after the restart
    await stop_bot(app)
    arrived = Counter(chat for chat, _ in api.messages)
    assert [arrived[chat] for chat in chats] == [1, 1, 1]


async def test_bales_no_such_group_is_a_chat_gone_not_a_bad_token(
    bot: Bot, settings: Settings
) -> None:
    """Bale answers a removed group with 404 "no such group or user", which PTB reads as a bad
    token: it is final for that chat, and the coordinators get the case to place again."""
    clock = Clock()
    bot.api.fail = failing(MUNICIPALITY, error(404, "Not Found: no such group or user"))
    await queued_report(bot)
    await deliver(bot, clock)
    [case] = await cases_in(settings)
    assert case.undeliverable
    assert {
        r.status for r in await outbox_rows(settings) if r.chat_id == bot_side(MUNICIPALITY)
    } == {"dead"}
    assert len([m for m in bot.api.delivered(COORDINATOR_CHAT) if m.buttons()]) == 1
    clock.advance(3600)
    assert await deliver(bot, clock) == 0, "nothing is tried again"


async def test_a_404_without_bales_words_is_tried_again_not_given_up(
    bot: Bot, settings: Settings
) -> None:
    """A 404 that is not about the chat (a token refused for a moment) gives up nothing."""
    clock = Clock()
    bot.api.fail = failing(MUNICIPALITY, error(404, "Not Found"))
    await queued_report(bot)
    await deliver(bot, clock)
    [card] = [r for r in await outbox_rows(settings) if r.chat_id == bot_side(MUNICIPALITY)]
    assert card.status == "pending" and card.attempts == 1
    clock.advance(60)
    await deliver(bot, clock)
    assert len(bot.api.delivered(MUNICIPALITY)) == 1
    assert not (await cases_in(settings))[0].undeliverable


async def test_a_message_failing_every_time_is_given_up_after_its_attempts(
    database_url: str,
) -> None:
    """Server errors for ever: after `[outbox] max_attempts` the card is given up and the
    coordinators get the case, instead of a retry every hour for ever."""
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, outbox={"max_attempts": 4}
    )
    app, api = await start_bot(settings)
    bot = Bot(app, api)
    clock = Clock()
    api.fail = lambda call: (
        error(500, "Internal Server Error") if call.chat_id == MUNICIPALITY else None
    )
    await queued_report(bot)
    for _ in range(8):
        await deliver(bot, clock)
        clock.advance(120)
    attempts = [c for c in api.to_chat(MUNICIPALITY) if c.method == "sendMessage"]
    assert len(attempts) == 4
    [case] = await cases_in(settings)
    assert case.undeliverable
    assert len([m for m in api.delivered(COORDINATOR_CHAT) if m.buttons()]) == 1
    await stop_bot(app)


async def test_a_stopped_worker_stops_though_the_driver_turns_the_stop_into_its_own_error(
    bot: Bot,
) -> None:
    """Cancelled mid-statement, asyncpg (through SQLAlchemy) may raise its own error instead of
    the cancellation; the worker, which goes on after errors, must stop all the same."""
    sender = bot.app.bot_data["runtime"].sender

    async def wrapped_stop() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("the driver's error for an interrupted statement") from None
        return 0

    sender.deliver_due = wrapped_stop
    worker = asyncio.create_task(sender.run_forever(0.05))
    await asyncio.sleep(0.1)
    worker.cancel()
    done, _ = await asyncio.wait([worker], timeout=2)
    assert done and worker.cancelled(), "the worker stopped"
