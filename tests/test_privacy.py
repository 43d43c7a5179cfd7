"""Forgetting a resident, and the retention of reporters' phone numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.config import Settings
from bot.pipeline import drop_old_contacts, drop_sent_texts
from bot.services import outbox
from models.db import create_engine, create_session_factory
from models.entities import CaseEvent, OutboxMessage, PressWindow, User
from tests.conftest import Bot
from tests.fakebot import query_too_old, texts
from tests.test_agency import add_staff
from tests.test_outbox import outbox_rows
from tests.test_report_flow import DESCRIPTION, cases_in


async def report_with_phone(bot: Bot, user_id: int) -> None:
    resident = bot.user(user_id)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send_contact("+989121234567")
    await resident.press("ثبت گزارش")


async def test_forget_me_removes_identity_and_keeps_anonymous_cases(
    bot: Bot, settings: Settings
) -> None:
    await report_with_phone(bot, 1001)
    resident = bot.user(1001)
    await resident.send("/forget_me")
    assert "۱ گزارش" in texts(await resident.press("بله، پاک شود"))[-1]
    [case] = await cases_in(settings)
    assert (case.reporter_id, case.reporter_phone, case.share_phone) == (None, None, False)
    assert case.text_original == DESCRIPTION, "the case stays for the statistics"
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        assert await session.get(User, 1001) is None
        assert await session.get(PressWindow, 1001) is None, "nor their button presses"
        mentions = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.actor_id == 1001)
        )
    await engine.dispose()
    assert mentions == 0
    assert "پیدا نشد" in texts(await resident.send("1405-1"))[0], "the case is no longer theirs"


def mentioning(rows: list[OutboxMessage], *words: str) -> list[OutboxMessage]:
    """The rows whose payload carries any of `words`."""
    return [row for row in rows if any(word in str(row.payload) for word in words)]


async def test_forget_me_leaves_no_message_to_them_nor_their_words_in_the_outbox(
    bot: Bot, settings: Settings
) -> None:
    """The outbox kept a copy of every message: the agency's card with the reporter's words and
    phone number, and the notices to their chat, long after /forget_me."""
    await report_with_phone(bot, 1001)
    before = await outbox_rows(settings)
    assert mentioning(before, "+989121234567") and mentioning(before, DESCRIPTION[:20])
    resident = bot.user(1001)
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    rows = await outbox_rows(settings)
    assert [row for row in rows if row.chat_id == 1001] == [], "nothing to or from their chat"
    assert mentioning(rows, "+989121234567", DESCRIPTION[:20]) == []
    assert len(rows) == len([row for row in before if row.chat_id != 1001]), "the rest stay"


async def test_texts_of_sent_messages_are_dropped_after_a_week(
    bot: Bot, settings: Settings
) -> None:
    """An agency's card carries the reporter's words and phone number; the case gives up the
    number after the retention period, the outbox kept its copy for ever."""
    await report_with_phone(bot, 1001)
    async with bot.app.bot_data["runtime"].session_factory() as session:
        outbox.enqueue(session, chat_id=1002, purpose="test", payload={"text": "هنوز نرفته"})
        await session.commit()  # the worker is off in tests: this one stays waiting
    runtime = bot.app.bot_data["runtime"]
    now = datetime.now(UTC)
    assert await drop_sent_texts(runtime, now=now + timedelta(days=6)) == 0
    sent = len([row for row in await outbox_rows(settings) if row.status == "sent"])
    assert await drop_sent_texts(runtime, now=now + timedelta(days=8)) == sent > 0
    rows = await outbox_rows(settings)
    assert mentioning(rows, "+989121234567", DESCRIPTION[:20]) == []
    assert mentioning(rows, "هنوز نرفته"), "a message still to send keeps its text"
    assert await drop_sent_texts(runtime, now=now + timedelta(days=9)) == 0, "once"


async def test_saying_no_keeps_everything(bot: Bot, settings: Settings) -> None:
    await report_with_phone(bot, 1001)
    resident = bot.user(1001)
    await resident.send("/forget_me")
    await resident.press("نه")
    [case] = await cases_in(settings)
    assert case.reporter_id == 1001 and case.reporter_phone == "+989121234567"


async def test_phone_numbers_of_long_closed_cases_are_dropped(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report_with_phone(bot, 1001)
    clerk = bot.in_group(2001, -100100, "رضایی")
    await clerk.press("رد")
    await clerk.send("خارج از محدوده")
    runtime = bot.app.bot_data["runtime"]
    now = datetime.now(UTC)
    assert await drop_old_contacts(runtime, now=now + timedelta(days=30)) == 0
    assert await drop_old_contacts(runtime, now=now + timedelta(days=91)) == 1
    [case] = await cases_in(settings)
    assert case.reporter_phone is None and case.status == "rejected"


async def test_logs_at_info_carry_no_report_text_or_phone(bot: Bot, caplog: object) -> None:
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    with caplog.at_level(logging.INFO):
        await report_with_phone(bot, 1001)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert DESCRIPTION not in logged and "+989121234567" not in logged


async def test_a_blocked_user_is_ignored_until_unblocked(bot: Bot) -> None:
    from tests.conftest import COORDINATOR

    coordinator = bot.user(COORDINATOR)
    assert "مسدود شد" in texts(await coordinator.send("/block ۱۰۰۱"))[0]
    abuser = bot.user(1001)
    assert texts(await abuser.send("/start")) == []
    assert texts(await abuser.send("📝 گزارش جدید")) == []
    await coordinator.send("/unblock 1001")
    assert texts(await abuser.send("/start"))


async def test_button_mashing_is_slowed_down(bot: Bot) -> None:
    resident = bot.user(1001)
    await resident.send("📋 گزارش‌های من")
    answers = [await resident.press_data("my:p:0") for _ in range(25)]
    alerts = [
        c.text for calls in answers for c in calls if c.method == "answerCallbackQuery" and c.text
    ]
    assert any("آهسته‌تر" in text for text in alerts)


async def test_a_masher_handled_late_gets_no_message_per_press(bot: Bot) -> None:
    """Late presses can no longer be answered with a box; a flood of them is not answered with
    a flood of messages."""
    resident = bot.user(1001)
    await resident.send("📋 گزارش‌های من")
    bot.api.fail = query_too_old
    replies = [texts(await resident.press_data("my:p:0")) for _ in range(25)]
    assert not any("آهسته‌تر" in text for texts_of_press in replies for text in texts_of_press)
