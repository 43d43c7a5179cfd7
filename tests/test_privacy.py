"""Forgetting a resident, and the retention of reporters' phone numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.config import Settings
from bot.pipeline import drop_old_contacts, drop_sent_texts
from bot.services import outbox
from models.db import create_engine, create_session_factory
from models.entities import CaseEvent, OutboxMessage, User
from tests.conftest import Bot
from tests.fakebot import ChatUser, deliver_outbox, query_too_old, texts
from tests.test_agency import add_staff
from tests.test_outbox import outbox_rows
from tests.test_report_flow import DESCRIPTION, cases_in

PHONE = "+989121234567"
REDACTED = "[حذف‌شده به درخواست گزارش‌دهنده]"


async def report_with_phone(bot: Bot, user_id: int, resident: ChatUser | None = None) -> None:
    resident = resident or bot.user(user_id)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send_contact(PHONE)
    await resident.press("ثبت گزارش")


def shown_in_groups(bot: Bot, words: str) -> list[str]:
    """The messages in group chats (the agencies') that show `words` now, edits applied."""
    return [
        message.text
        for (chat_id, _), message in bot.api.messages.items()
        if chat_id < 0 and words in message.text
    ]


async def test_forget_me_removes_identity_and_keeps_anonymous_cases(
    bot: Bot, settings: Settings
) -> None:
    await report_with_phone(bot, 1001)
    resident = bot.user(1001)
    await resident.send("/forget_me")
    assert "۱ گزارش" in texts(await resident.press("بله، پاک شود"))[-1]
    [case] = await cases_in(settings)
    assert (case.reporter_id, case.reporter_phone, case.share_phone) == (None, None, False)
    assert case.text_original == REDACTED, "the case stays for the statistics, without words"
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        assert await session.get(User, 1001) is None
        mentions = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.actor_id == 1001)
        )
    await engine.dispose()
    assert mentions == 0
    runtime = bot.app.bot_data["runtime"]
    assert 1001 not in runtime.presses and 1001 not in runtime.messages, "nor their counts"
    assert "پیدا نشد" in texts(await resident.send("1405-1"))[0], "the case is no longer theirs"


def mentioning(rows: list[OutboxMessage], *words: str) -> list[OutboxMessage]:
    """The rows whose payload carries any of `words`."""
    return [row for row in rows if any(word in str(row.payload) for word in words)]


async def test_forget_me_leaves_no_message_to_them_nor_their_number_in_the_outbox(
    bot: Bot, settings: Settings
) -> None:
    """The outbox kept a copy of every message: the agency's card with the reporter's words and
    phone number, and the notices to their chat, long after /forget_me."""
    await report_with_phone(bot, 1001)
    before = await outbox_rows(settings)
    assert mentioning(before, PHONE) and mentioning(before, DESCRIPTION[:20])
    resident = bot.user(1001)
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    rows = await outbox_rows(settings)
    assert [row for row in rows if row.chat_id == 1001] == [], "nothing to or from their chat"
    assert mentioning(rows, PHONE) == []
    cards_sent_before = [row.id for row in before if row.purpose == outbox.AGENCY_CARD]
    assert mentioning([row for row in rows if row.id in cards_sent_before], DESCRIPTION[:20]) == []


async def test_forget_me_takes_the_number_off_the_agencys_card(bot: Bot) -> None:
    """The agency's chat showed the number on the card; the card is edited without it and
    without the reporter's words, and the agency keeps the case."""
    await report_with_phone(bot, 1001)
    assert shown_in_groups(bot, PHONE)
    resident = bot.user(1001)
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    assert shown_in_groups(bot, PHONE) == []
    assert shown_in_groups(bot, DESCRIPTION[:20]) == []
    assert shown_in_groups(bot, REDACTED), "the agency still has the case"


async def test_a_card_still_waiting_when_its_reporter_is_forgotten_goes_without_the_number(
    bot: Bot,
) -> None:
    """The card rendered with the number, still in the outbox when the reporter asks to be
    forgotten (a group held back by Telegram's limit, a worker down), goes without it (and
    without their words)."""
    resident = ChatUser(bot.app, bot.api, 1001, deliver=False)
    await report_with_phone(bot, 1001, resident)
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    assert shown_in_groups(bot, DESCRIPTION[:20]) == [], "not sent yet"
    await deliver_outbox(bot.app)
    assert shown_in_groups(bot, REDACTED), "the agency gets the case"
    assert shown_in_groups(bot, PHONE) == shown_in_groups(bot, DESCRIPTION[:20]) == []


async def test_texts_of_sent_messages_are_dropped_after_a_week(
    bot: Bot, settings: Settings
) -> None:
    """An agency's card carries the reporter's words and phone number; the case gives up the
    number after the retention period, the outbox kept its copy for ever."""
    await report_with_phone(bot, 1001)
    async with bot.app.bot_data["runtime"].session_factory() as session:
        outbox.enqueue(session, chat_id=1002, purpose="test", payload={"text": "هنوز نرفته"})
        await session.commit()  # the worker is off in tests: this one stays waiting
    runtime = bot.jobs_runtime
    now = datetime.now(UTC)
    assert await drop_sent_texts(runtime, now=now + timedelta(days=6)) == 0
    sent = len([row for row in await outbox_rows(settings) if row.status == "sent"])
    assert await drop_sent_texts(runtime, now=now + timedelta(days=8)) == sent > 0
    rows = await outbox_rows(settings)
    assert mentioning(rows, PHONE, DESCRIPTION[:20]) == []
    assert mentioning(rows, "هنوز نرفته"), "a message still to send keeps its text"
    assert await drop_sent_texts(runtime, now=now + timedelta(days=9)) == 0, "once"


async def test_saying_no_keeps_everything(bot: Bot, settings: Settings) -> None:
    await report_with_phone(bot, 1001)
    resident = bot.user(1001)
    await resident.send("/forget_me")
    await resident.press("نه")
    [case] = await cases_in(settings)
    assert case.reporter_id == 1001 and case.reporter_phone == PHONE


async def test_phone_numbers_of_long_closed_cases_are_dropped(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report_with_phone(bot, 1001)
    clerk = bot.in_group(2001, -100100, "رضایی")
    await clerk.press("رد")
    await clerk.reply("خارج از محدوده")
    runtime = bot.jobs_runtime
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
    assert DESCRIPTION not in logged and PHONE not in logged


async def test_a_blocked_user_is_ignored_until_unblocked(bot: Bot) -> None:
    from tests.conftest import COORDINATOR

    coordinator = bot.user(COORDINATOR)
    abuser = bot.user(1001)
    assert texts(await abuser.send("/start")), "a coordinator blocks someone who wrote to the bot"
    assert "مسدود شد" in texts(await coordinator.send("/block ۱۰۰۱"))[0]
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
