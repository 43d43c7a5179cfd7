"""Whatever a resident sends at whatever step: a polite Persian answer, and nothing lost."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Settings
from tests.conftest import Bot
from tests.fakebot import ChatUser, alerts, crash_bot, start_bot, stop_bot, texts
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary

STICKER = {
    "file_id": "S",
    "file_unique_id": "S",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "type": "regular",
}
VOICE = {"file_id": "V", "file_unique_id": "V", "duration": 3}
DOCUMENT = {"file_id": "D", "file_unique_id": "D", "file_name": "report.pdf"}
FORWARD_ORIGIN = {"type": "hidden_user", "sender_user_name": "someone", "date": 1700000000}

# (what is sent, a fragment of the answer that names it)
ODD_MESSAGES: list[tuple[str, dict[str, Any], str]] = [
    ("sticker", {"sticker": STICKER}, "استیکر"),
    ("voice", {"voice": VOICE}, "پیام صوتی"),
    ("file", {"document": DOCUMENT}, "فایل"),
    ("forwarded", {"text": DESCRIPTION, "forward_origin": FORWARD_ORIGIN}, "بازارسال"),
    (
        "command",
        {"text": "/weather", "entities": [{"type": "bot_command", "offset": 0, "length": 8}]},
        "فرمان",
    ),
]

# How to reach each step, and a phrase of what that step expects.
STEPS = {
    "neighbourhood": (["📝 گزارش جدید"], "انتخاب محله"),
    "description": (["📝 گزارش جدید", "جهاد", "press:جهاد"], "شرح مشکل"),
    "media": (["📝 گزارش جدید", "جهاد", "press:جهاد", DESCRIPTION], "عکس یا موقعیت"),
    "privacy": (["📝 گزارش جدید", "جهاد", "press:جهاد", DESCRIPTION, "ادامه ⬅️"], "ناشناس بمانم"),
    "confirm": (
        ["📝 گزارش جدید", "جهاد", "press:جهاد", DESCRIPTION, "ادامه ⬅️", "🙈 ناشناس بمانم"],
        "زیر خلاصه",
    ),
}


async def reach(resident: ChatUser, step: str) -> None:
    for action in STEPS[step][0]:
        if action.startswith("press:"):
            await resident.press(action.removeprefix("press:"))
        else:
            await resident.send(action)


async def finish_from(resident: ChatUser, step: str) -> None:
    """Complete the report from `step` on, proving the draft survived."""
    remaining = ["press:جهاد", DESCRIPTION, "ادامه ⬅️", "🙈 ناشناس بمانم", "press:ثبت گزارش"]
    start = {"neighbourhood": 0, "description": 1, "media": 2, "privacy": 3, "confirm": 4}[step]
    if step == "neighbourhood":
        await resident.send("جهاد")
    for action in remaining[start:]:
        if action.startswith("press:"):
            await resident.press(action.removeprefix("press:"))
        else:
            await resident.send(action)


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize(
    ("kind", "content", "named"), ODD_MESSAGES, ids=[m[0] for m in ODD_MESSAGES]
)
async def test_odd_message_at_each_step_is_answered_and_the_draft_survives(
    bot: Bot, settings: Settings, step: str, kind: str, content: dict[str, Any], named: str
) -> None:
    resident = bot.user()
    await reach(resident, step)
    replies = texts(await resident.send_content(**content))
    assert len(replies) == 1
    if (kind, step) == ("voice", "media"):  # taken there, with the photos
        assert "دریافت شد" in replies[0]
    elif (kind, step) == ("voice", "description"):  # kept, and the description still asked for
        assert "دریافت شد" in replies[0] and "با نوشتن" in replies[0]
    else:
        assert named in replies[0] and STEPS[step][1] in replies[0]
    await finish_from(resident, step)
    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION


@pytest.mark.parametrize("step", ["privacy", "confirm"])
async def test_text_where_a_button_is_expected(resident: ChatUser, step: str) -> None:
    await reach(resident, step)
    replies = texts(await resident.send("بله درسته"))
    assert "انتظار نداشتم" in replies[0] and STEPS[step][1] in replies[0]


async def test_edited_message_is_not_taken_and_is_answered(
    resident: ChatUser, settings: Settings
) -> None:
    await reach(resident, "description")
    replies = texts(await resident.edit_message(DESCRIPTION))
    assert "ویرایش پیام‌ها خوانده نمی‌شود" in replies[0]
    await resident.send(DESCRIPTION)
    assert "عکس" in resident.last_text


async def test_stale_button_from_an_earlier_step_changes_nothing(resident: ChatUser) -> None:
    await reach(resident, "description")
    # The district list sent at the neighbourhood step is still on screen.
    answer = alerts(await resident.press("منطقه ۶"))
    assert "دیگر فعال نیست" in answer[0]
    await resident.send(DESCRIPTION)
    assert "عکس" in resident.last_text, "still at the description step, which then succeeds"


@pytest.mark.parametrize(
    "data",
    ["rn:n:999999", "rc:not-the-draft", "my:c:1", "xx", "rn:n:1'; DROP TABLE cases;--", "re:bogus"],
)
async def test_forged_callback_data_is_refused_politely(
    resident: ChatUser, settings: Settings, data: str
) -> None:
    await walk_to_summary(resident)
    answer = alerts(await resident.press_data(data))
    assert answer and any(
        p in answer[0] for p in ("دیگر فعال نیست", "پیدا نشد", "دیگر در فهرست نیست")
    )
    await resident.press("ثبت گزارش")
    assert len(await cases_in(settings)) == 1


async def test_another_users_case_stays_hidden(bot: Bot, settings: Settings) -> None:
    owner, stranger = bot.user(3001), bot.user(3002)
    await walk_to_summary(owner)
    await owner.press("ثبت گزارش")
    [case] = await cases_in(settings)
    for typed in ("۱۴۰۵-۰۰۰۰۱", "1405-1", "١٤٠٥-١"):
        replies = texts(await stranger.send(typed))
        assert "پیدا نشد" in replies[0] and DESCRIPTION not in replies[0]
    await stranger.send("/start")
    answer = alerts(await stranger.press_data(f"my:c:{case.id}"))
    assert "پیدا نشد" in answer[0]
    assert "۱۴۰۵-۰۰۰۰۱" in texts(await owner.send("1405-1"))[0]


async def test_unknown_command_and_chatter_outside_a_report(resident: ChatUser) -> None:
    replies = texts(await resident.send("/weather"))
    assert "فرمان" in replies[0] and "«📝 گزارش جدید» را بزنید" in replies[0]
    replies = texts(await resident.send("سلام خوبی؟"))
    assert "«📝 گزارش جدید» را بزنید" in replies[0] and "«📋 گزارش‌های من»" in replies[0]
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید"


async def test_menu_taps_mid_report_are_not_taken_as_text(resident: ChatUser) -> None:
    await reach(resident, "description")
    replies = texts(await resident.send("📋 گزارش‌های من"))
    assert "انتظار نداشتم" in replies[0] and "شرح مشکل" in replies[0]


async def test_help_mid_report_keeps_the_step(resident: ChatUser, settings: Settings) -> None:
    await reach(resident, "media")
    replies = texts(await resident.send("/help"))
    assert all(number in replies[0] for number in ("۱۱۰", "۱۱۵", "۱۲۵", "۱۲۳"))
    await finish_from(resident, "media")
    assert len(await cases_in(settings)) == 1


async def test_a_restart_mid_report_resumes_where_it_was(settings: Settings) -> None:
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 4004)
    await reach(resident, "media")
    await resident.send_photo("BEFORE-CRASH")
    await crash_bot(app)  # no shutdown, no final persistence flush

    app2, api2 = await start_bot(settings)
    resident = ChatUser(app2, api2, 4004)
    replies = texts(await resident.send("ادامه ⬅️"))
    assert "ناشناس" in replies[0], "the conversation continues at the media step"
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    await stop_bot(app2)
    [case] = await cases_in(settings)
    assert case.photo_file_ids == ["BEFORE-CRASH"] and case.text_original == DESCRIPTION


async def test_resident_messages_in_a_group_are_ignored(bot: Bot) -> None:
    member = bot.in_group(5005, -100123, "someone")  # a group the bot was added to
    assert texts(await member.send("📝 گزارش جدید")) == []
    assert texts(await member.send("/start")) == []


async def test_another_command_mid_report_says_how_to_leave_and_keeps_the_draft(
    resident: ChatUser, settings: Settings
) -> None:
    """/forget_me in the middle of a report: the answer says to finish or /cancel first, the
    person is not forgotten, and the report carries on to its code."""
    await reach(resident, "media")
    [reply] = texts(await resident.send("/forget_me"))
    assert "/cancel" in reply and "عکس یا موقعیت" in reply
    await finish_from(resident, "media")
    assert len(await cases_in(settings)) == 1
