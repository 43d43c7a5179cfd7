"""Help asked for in the middle of a report keeps the step: its keyboard stays, and the report
carries on from where it was."""

from __future__ import annotations

from tests.fakebot import ChatUser, texts

SHARE_PHONE = "📱 شماره‌ام را به دستگاه مسئول بده"


async def to_privacy_step(resident: ChatUser) -> None:
    """A report written up to the question of sharing the phone number."""
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send("سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد")
    await resident.send("ادامه ⬅️")
    assert SHARE_PHONE in resident.reply_keyboard()


async def test_help_mid_report_keeps_the_steps_keyboard(resident: ChatUser) -> None:
    """/help at the privacy step: the help and its emergency numbers are sent, the buttons to
    stay anonymous or share the phone stay, and pressing one carries the report on."""
    await to_privacy_step(resident)
    [helped] = texts(await resident.send("/help"))
    assert "۱۱۰" in helped  # the emergency numbers
    assert SHARE_PHONE in resident.reply_keyboard()
    replies = texts(await resident.send("🙈 ناشناس بمانم"))
    assert any("«ثبت گزارش» را بزنید" in reply for reply in replies), replies


async def test_the_help_button_mid_report_keeps_the_steps_keyboard(resident: ChatUser) -> None:
    """The same with the menu's help label typed (an older keyboard still on screen)."""
    await to_privacy_step(resident)
    await resident.send("❓ راهنما")
    assert SHARE_PHONE in resident.reply_keyboard()
