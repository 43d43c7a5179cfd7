"""What a new resident or clerk meets first: menu words typed by hand, an invite opened in the
middle of a report, a page that is no more."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from models.db import create_engine, create_session_factory
from models.entities import Staff
from tests.conftest import COORDINATOR, Bot, make_settings
from tests.fakebot import ChatUser, bot_side, start_bot, stop_bot, texts
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary


async def test_menu_words_typed_without_their_emoji_work(bot: Bot, settings: Settings) -> None:
    resident = bot.user()
    assert "محله را" in texts(await resident.send("گزارش جدید"))[-1]
    replies = texts(await resident.send("انصراف"))
    assert any("لغو" in r or "منصرف" in r or "ثبت نشد" in r for r in replies), replies
    assert "۱۱۰" in texts(await resident.send("راهنما"))[-1]
    await resident.send("گزارش   جدید")  # spaced oddly, still the menu word
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    assert "ادامه" in " ".join(resident.reply_keyboard())
    await resident.send("ادامه")
    await resident.send("ناشناس بمانم")
    await resident.press("ثبت گزارش")
    assert len(await cases_in(settings)) == 1


async def test_an_invite_opened_in_the_middle_of_a_report_works_and_keeps_the_report(
    bot: Bot, settings: Settings
) -> None:
    coordinator = bot.user(COORDINATOR)
    link = texts(await coordinator.send("/invite municipality"))[0]
    token = link.split("start=")[1].split()[0]
    clerk = bot.user(2001)
    await clerk.send("📝 گزارش جدید")
    await clerk.send("یوسف آباد")
    await clerk.press("یوسف‌آباد")
    replies = texts(await clerk.send(f"/start {token}"))
    assert any("به کارشناسان" in r or "خوش آمدید" in r or "عضو" in r for r in replies), replies
    assert "سر جایش" in replies[-1]
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        staff = (await session.scalars(select(Staff))).all()
    await engine.dispose()
    assert [(s.user_id, s.agency_key) for s in staff] == [(2001, "municipality")]
    await clerk.send(DESCRIPTION)  # the report goes on at the description step
    await clerk.send("ادامه ⬅️")
    await clerk.send("🙈 ناشناس بمانم")
    await clerk.press("ثبت گزارش")
    assert [c.text_original for c in await cases_in(settings)] == [DESCRIPTION]


async def test_a_forged_or_vanished_page_of_my_reports_shows_the_last_page(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"reports_per_hour": 20}
    )
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 1001)
    for _ in range(6):
        await walk_to_summary(resident)
        await resident.press("ثبت گزارش")
    assert "صفحهٔ ۱ از ۲" in texts(await resident.send("📋 گزارش‌های من"))[0]
    calls = await resident.press_data("my:p:999999")
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "صفحهٔ ۲ از ۲" in edit.text and "۱۰۰۰۰۰۰" not in edit.text
    await stop_bot(app)


async def test_a_round_video_message_is_not_called_a_voice_message(bot: Bot) -> None:
    resident = bot.user()
    note = {"file_id": "VN1", "file_unique_id": "vn1", "length": 240, "duration": 5}
    [reply] = texts(await resident.send_content(video_note=note))
    assert "ویدیویی" in reply and "صوتی" not in reply


async def test_a_description_sent_again_at_the_photos_step_replaces_the_first(
    bot: Bot, settings: Settings
) -> None:
    """The bot asks for an edited message to be sent again; at the photos step that works."""
    resident = bot.user()
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    corrected = DESCRIPTION.replace("سه روز", "پنج روز")
    assert "ویرایش" in texts(await resident.edit_message(corrected))[0]
    assert "جای شرح قبلی" in texts(await resident.send(corrected))[0]
    assert "ادامه" in " ".join(resident.reply_keyboard())
    assert "شرح تازه" not in texts(await resident.send("باشه"))[0]
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    assert [c.text_original for c in await cases_in(settings)] == [corrected]


def voice(file_id: str, seconds: int) -> dict[str, object]:
    """A voice message as Telegram describes it."""
    return {"file_id": file_id, "file_unique_id": f"u{file_id}", "duration": seconds}


async def test_voice_messages_go_with_the_report_and_go_when_the_reporter_is_forgotten(
    bot: Bot, settings: Settings
) -> None:
    """Up to two short voice messages at the photos step; the agency gets them before the card;
    /forget_me drops them with the rest."""
    resident = bot.user()
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(DESCRIPTION)
    assert "بلند" in texts(await resident.send_content(voice=voice("V0", 600)))[0]
    assert "۱ از ۲" in texts(await resident.send_content(voice=voice("V1", 20)))[0]
    assert "۲ از ۲" in texts(await resident.send_content(voice=voice("V2", 45)))[0]
    assert "بیش از ۲" in texts(await resident.send_content(voice=voice("V3", 5)))[0]
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    summary = [m for m in bot.api.delivered(resident.chat_id) if "پیام صوتی" in m.text][-1]
    assert "پیام صوتی: ۲" in summary.text
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.voice_file_ids == ["V1", "V2"]
    agency = [c for c in bot.api.calls if c.chat_id == -100100]
    voices = [c.params["voice"] for c in agency if c.method == "sendVoice"]
    [card_at] = [i for i, c in enumerate(agency) if c.method == "sendMessage"]
    assert voices == ["V1", "V2"]
    assert all(i < card_at for i, c in enumerate(agency) if c.method == "sendVoice")
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    [forgotten] = await cases_in(settings)
    assert forgotten.voice_file_ids == []


async def test_what_people_named_and_chat_ids_keep_their_direction(bot: Bot) -> None:
    """A group named with a right-to-left override cannot turn the on-behalf button around,
    and a negative chat id reads left to right inside Persian text."""
    from tests.test_desk import apply_for_group

    founder = bot.user(1101)
    tricky = "\u202eگروه وارونه"
    await apply_for_group(founder, tricky, "جهاد")
    await bot.in_group(COORDINATOR, -100900, "دبیرخانه").press("تأیید")
    await founder.send("📝 گزارش جدید")
    await founder.send("جهاد")
    await founder.press("جهاد")
    await founder.send(DESCRIPTION)
    await founder.send("ادامه ⬅️")
    await founder.send("🙈 ناشناس بمانم")
    [label] = [label for label in founder.button_labels() if "وارونه" in label]
    start = label.index("\u2068")
    assert label.index("\u202e") > start and label.index("\u2069", start) > label.index("\u202e")
    group_chat = bot.in_group(5005, -1001234567890, "کسی")
    [answer] = texts(await group_chat.send("/chatid"))
    assert f"\u2066{bot_side(-1001234567890)}\u2069" in answer


async def test_help_typed_in_the_middle_of_a_report_shows_help_and_keeps_the_step(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user()
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    assert "۱۱۰" in texts(await resident.send("راهنما"))[-1]
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    assert len(await cases_in(settings)) == 1
