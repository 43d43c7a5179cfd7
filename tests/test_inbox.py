"""Web processes keep a chat's updates in order and lose none a stopped process had received."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update

from bot.inbox import InboxQueue
from bot.jalali import utcnow
from bot.persistence import SQLConversationPersistence
from bot.services import inbox
from bot.services.inbox import Verdict
from bot.turns import TURN_SPACE
from bot.unit import update_unit
from models.db import create_engine, create_session_factory
from models.entities import ConversationState, InboxUpdate
from tests.conftest import make_settings
from tests.fakebot import (
    AnyApplication,
    ChatUser,
    FakeBotAPI,
    bot_side,
    start_bot,
    stop_bot,
    wait_for,
)

NEW_REPORT = "📝 گزارش جدید"


def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several web processes need PostgreSQL")


async def _web_process(settings: Any) -> tuple[AnyApplication, FakeBotAPI, InboxQueue]:
    """A web process with its own update queue and fetcher running, as behind the webhook."""
    app, api = await start_bot(settings, role="web")
    assert isinstance(app.update_queue, InboxQueue)
    await app.start()
    return app, api, app.update_queue


async def _stop(*apps: AnyApplication) -> None:
    for app in apps:
        if app.running:
            await app.stop()
        await stop_bot(app)


async def _rows_left(database_url: str) -> int:
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        left = await session.scalar(select(func.count()).select_from(InboxUpdate))
    await engine.dispose()
    return int(left or 0)


def _asked_for_neighbourhood(person: ChatUser) -> int:
    """How many times the resident was asked where the problem is."""
    return sum("نام محله را تایپ کنید" in call.text for call in person.api.to_chat(person.chat_id))


async def test_quick_messages_keep_their_order_across_web_processes(database_url: str) -> None:
    _postgresql_only(database_url)
    # Each process handles one update at a time: a chat's update can wait behind another's.
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"concurrent_updates": 1}
    )
    (app_a, api_a, queue_a), (app_b, api_b, queue_b) = [
        await _web_process(settings) for _ in range(2)
    ]
    persistence = app_a.persistence
    assert persistence is not None
    save = persistence.update_conversation
    busy = asyncio.Event()

    async def slow_save(**state: Any) -> None:  # process A is busy with someone else
        busy.set()
        await asyncio.sleep(0.5)
        await save(**state)

    persistence.update_conversation = slow_save  # type: ignore[method-assign,assignment]
    await queue_a.put(ChatUser(app_a, api_a, 2002).text_update(NEW_REPORT))
    await asyncio.wait_for(busy.wait(), 5)
    on_a, on_b = ChatUser(app_a, api_a, 1001), ChatUser(app_b, api_b, 1001)
    await queue_a.put(on_a.text_update(NEW_REPORT))  # waits in A's queue, behind the other
    await queue_b.put(on_b.text_update("جهاد"))  # the answer reaches B, which is free
    # Handled first, "جهاد" would not be understood on the main menu; in order, it finds the
    # neighbourhood the report asks for.
    await wait_for(
        lambda: any("جهاد" in label for label in on_b.button_labels()), what="the neighbourhood"
    )
    assert _asked_for_neighbourhood(on_a) == 1
    await wait_for(lambda: not queue_a.kept and not queue_b.kept, what="both queues done")
    await _stop(app_a, app_b)
    assert await _rows_left(database_url) == 0, "handled updates leave the inbox"


async def test_a_stopped_processs_updates_are_handled_once_by_another(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _postgresql_only(database_url)
    settings = make_settings(database_url, telegram={"rate_limit": False})
    stopped, api_a = await start_bot(settings, role="web")  # received, never got to handle it
    caplog.set_level(logging.INFO, logger="bot.inbox")
    update = ChatUser(stopped, api_a, 1001).text_update(NEW_REPORT)
    await stopped.update_queue.put(update)
    # Telegram sends it again (its delivery was not answered in time): it is queued once.
    await stopped.update_queue.put(update)
    assert stopped.update_queue.qsize() == 1
    assert "arrived again" in caplog.text
    app_b, api_b, queue_b = await _web_process(settings)
    on_b = ChatUser(app_b, api_b, 1001)
    assert await queue_b.sweep(app_b.bot, now=utcnow()) == 0, "not before it is orphaned"
    later = utcnow() + timedelta(minutes=1)
    assert await queue_b.sweep(app_b.bot, now=later) == 1
    await wait_for(
        lambda: _asked_for_neighbourhood(on_b) == 1 and not queue_b.kept, what="the answer on B"
    )

    # The first process was only slow: when it gets there, it finds the update handled.
    await stopped.start()
    await wait_for(lambda: stopped.update_queue.empty(), what="the first process")
    await asyncio.sleep(0.1)
    assert api_a.to_chat(1001) == [], "handled once"
    assert _asked_for_neighbourhood(on_b) == 1
    await _stop(stopped, app_b)


async def test_an_agency_groups_update_a_stopped_process_had_is_answered_too(
    database_url: str,
) -> None:
    _postgresql_only(database_url)
    settings = make_settings(database_url, telegram={"rate_limit": False})
    stopped, api_a = await start_bot(settings, role="web")
    member = ChatUser(stopped, api_a, 2001, chat_id=-100424242, name="مدیر گروه")
    await stopped.update_queue.put(member.text_update("/chatid"))
    app_b, api_b, queue_b = await _web_process(settings)
    assert await queue_b.sweep(app_b.bot, now=utcnow() + timedelta(minutes=1)) == 1
    await wait_for(
        lambda: any(str(bot_side(-100424242)) in c.text for c in api_b.to_chat(-100424242)),
        what="the group's answer",
    )
    await _stop(stopped, app_b)
    assert await _rows_left(database_url) == 0


async def test_the_inbox_lets_a_chats_earlier_update_go_first(database_url: str) -> None:
    engine = create_engine(database_url)
    now = utcnow()
    async with create_session_factory(engine)() as session:
        for update_id, chat_id in ((10, 1001), (11, 2002), (12, 1001)):
            assert await inbox.store(
                session=session, update_id=update_id, chat_id=chat_id, payload={}, now=now
            )
        assert not await inbox.store(
            session=session, update_id=12, chat_id=1001, payload={}, now=now
        )
    async with create_session_factory(engine)() as turn:

        async def verdict(update_id: int, chat_id: int, wait_since: Any = None) -> Verdict:
            return await inbox.verdict(
                session=turn, update_id=update_id, chat_id=chat_id,
                wait_since=wait_since or now - timedelta(seconds=20),
            )  # fmt: skip

        assert await verdict(12, 1001) is Verdict.LATER, "update 10 of the same chat goes first"
        assert await verdict(11, 2002) is Verdict.HANDLE, "another chat does not wait"
        assert await verdict(12, 1001, wait_since=now) is Verdict.HANDLE, (
            "10 is too old to wait for"
        )
        assert await verdict(10, 1001) is Verdict.HANDLE
        await inbox.finish(session=turn, update_id=10)
        assert await verdict(10, 1001) is Verdict.GONE, "handled already"
        assert await verdict(12, 1001) is Verdict.HANDLE
        await turn.rollback()  # the process died before its turn ended: nothing finished
    async with create_session_factory(engine)() as session:
        assert await inbox.orphans(session=session, received_before=now) == []
        left = await inbox.orphans(session=session, received_before=now + timedelta(seconds=1))
        assert [update_id for update_id, _ in left] == [10, 11, 12]
    await engine.dispose()


async def test_an_update_is_queued_even_when_the_inbox_cannot_be_reached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    queue = InboxQueue(create_session_factory(nowhere))
    chat = {"id": 1001, "type": "private", "first_name": "x"}
    message = {"message_id": 1, "date": 0, "chat": chat, "from": {**chat, "is_bot": False}}
    update = Update.de_json({"update_id": 1, "message": {**message, "text": "سلام"}}, None)
    await queue.put(update)
    assert queue.qsize() == 1 and not queue.kept, "queued, and handled as before the inbox"
    assert "could not keep update in the inbox" in caplog.text
    await nowhere.dispose()


async def test_an_update_that_never_finishes_is_given_up_with_an_apology(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot import inbox as inbox_module
    from bot.services import users

    _postgresql_only(database_url)
    settings = make_settings(database_url, telegram={"rate_limit": False})
    stopped, api_a = await start_bot(settings, role="web")  # received it, then died on it
    await stopped.update_queue.put(ChatUser(stopped, api_a, 1001).text_update("/start"))
    app_b, api_b = await start_bot(settings, role="web")
    queue_b = app_b.update_queue
    assert isinstance(queue_b, InboxQueue)
    entered = asyncio.Event()

    async def never_returns(**_: Any) -> None:  # what kills a process, as far as the inbox sees
        entered.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(users, "get_or_create_user", never_returns)
    later = utcnow() + timedelta(minutes=1)
    for _ in range(inbox_module.MAX_HANDLINGS):  # a process takes it from a sweep and dies on it
        assert await queue_b.sweep(app_b.bot, now=later) == 1
        entered.clear()
        handling = asyncio.create_task(app_b.process_update(queue_b.get_nowait()))
        await asyncio.wait_for(entered.wait(), 5)
        handling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handling
        queue_b.forget(next(iter(queue_b.kept)))  # the process that restarts remembers nothing
    assert await _rows_left(database_url) == 1, "each death rolled back; it is still there"

    assert await queue_b.sweep(app_b.bot, now=later) == 1
    entered.clear()
    await asyncio.wait_for(app_b.process_update(queue_b.get_nowait()), 5)
    assert not entered.is_set(), "the fourth start does not reach a handler"
    assert [call.text for call in api_b.to_chat(1001)] == [
        app_b.bot_data["runtime"].translate("update-given-up")
    ]
    assert await _rows_left(database_url) == 0
    assert "gave up update" in caplog.text
    await _stop(stopped, app_b)


async def test_a_swept_update_that_finishes_is_handled_as_any(database_url: str) -> None:
    _postgresql_only(database_url)
    settings = make_settings(database_url, telegram={"rate_limit": False})
    stopped, api_a = await start_bot(settings, role="web")
    await stopped.update_queue.put(ChatUser(stopped, api_a, 1001).text_update(NEW_REPORT))
    app_b, api_b = await start_bot(settings, role="web")
    queue_b = app_b.update_queue
    assert isinstance(queue_b, InboxQueue)
    assert await queue_b.sweep(app_b.bot, now=utcnow() + timedelta(minutes=1)) == 1
    await app_b.process_update(queue_b.get_nowait())
    assert _asked_for_neighbourhood(ChatUser(app_b, api_b, 1001)) == 1
    assert await _rows_left(database_url) == 0 and not queue_b.swept
    await _stop(stopped, app_b)


_TURNS_HELD = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :space")


async def _turns_held_after(engine: AsyncEngine, *, seconds: float) -> int:
    """How many chats' turns are held once none is, or when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        async with engine.connect() as connection:
            held = await connection.scalar(_TURNS_HELD, {"space": TURN_SPACE})
        if not held or time.monotonic() > deadline:
            return int(held or 0)
        await asyncio.sleep(0.02)


async def test_a_web_process_waiting_on_telegram_leaves_nothing_for_a_migration_to_wait_on(
    database_url: str,
) -> None:
    """While a handler waits on Telegram (seconds under a 429) its chat's turn is held, but no
    transaction: an upgrade's ALTER TABLE of the tables the turn reads must not queue behind it
    (and every query after the ALTER behind that)."""
    _postgresql_only(database_url)
    app, api, queue = await _web_process(
        make_settings(database_url, telegram={"rate_limit": False})
    )
    replying, go_on = asyncio.Event(), asyncio.Event()
    answer = api.do_request

    async def slow_reply(url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if url.endswith("/sendMessage"):
            replying.set()
            await go_on.wait()
        return await answer(url, method, *args, **kwargs)

    api.do_request = slow_reply  # type: ignore[method-assign]
    resident = ChatUser(app, api, 1001)
    await queue.put(resident.text_update(NEW_REPORT))
    await asyncio.wait_for(replying.wait(), 5)
    engine = create_engine(database_url)
    async with engine.connect() as migration:  # the update is still being handled
        await migration.execute(text("SET LOCAL lock_timeout = '1s'"))
        for table in ("inbox", "conversation_states"):
            await migration.execute(text(f"ALTER TABLE {table} ADD COLUMN probe integer"))
        await migration.rollback()
    go_on.set()
    await wait_for(lambda: not queue.kept, what="the update handled")
    # The update is forgotten just before its end commits and its turn is given back.
    turns_held = await _turns_held_after(engine, seconds=5)
    await engine.dispose()
    await _stop(app)
    assert _asked_for_neighbourhood(resident) == 1
    assert turns_held == 0, "the turn was given back as the update ended"
    assert await _rows_left(database_url) == 0


@pytest.mark.parametrize(
    "held",
    [
        {},
        {("report", (1, 1)): "DESCRIPTION"},
        {("report", (1, 1)): None},
        {("report", (1, 1)): "DESCRIPTION", ("desk", (1, 1)): "QUEUE"},
    ],
    ids=["no state", "one state", "conversation ended", "two states"],
)
async def test_a_turn_ends_with_its_states_saved_and_its_update_gone(
    database_url: str, held: dict[tuple[str, tuple[int, int]], str | None]
) -> None:
    """The update's new conversation states and the deletion of its inbox row are written
    together (one statement when there is one state or none)."""
    _postgresql_only(database_url)
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    async with factory() as session:
        await inbox.store(session=session, update_id=5, chat_id=1, payload={}, now=utcnow())
        session.add(ConversationState(name="report", key="[1, 1]", state="TEXT"))
        await session.commit()
    persistence = SQLConversationPersistence(factory)
    async with update_unit(engine, factory) as unit:
        unit.held_states.update(held)
        await persistence.write_held(unit, finishing=5)
    async with factory() as session:
        states = dict(
            (await session.execute(select(ConversationState.name, ConversationState.state))).all()
        )
    await engine.dispose()
    expected = {"report": "TEXT"} | {name: state for (name, _), state in held.items()}
    assert states == {name: state for name, state in expected.items() if state is not None}
    assert await _rows_left(database_url) == 0, "the update is not handled again"
