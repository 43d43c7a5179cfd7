"""A resident files a report from /start to the tracking code, through the real application."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.config import Settings
from bot.digits import persian_digits
from models.db import create_engine, create_session_factory
from models.entities import Case, Draft
from tests.conftest import Bot, agency_chat
from tests.fakebot import (
    ApiCall,
    ChatUser,
    FakeBotAPI,
    alerts,
    query_too_old,
    start_bot,
    stop_bot,
    texts,
)

DESCRIPTION = "سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد"


async def cases_in(settings: Settings) -> list[Case]:
    """Every case in the database, oldest first."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = list((await session.scalars(select(Case).order_by(Case.id))).all())
    await engine.dispose()
    return found


async def walk_to_summary(resident: ChatUser, description: str = DESCRIPTION) -> None:
    """New report → Yousefabad (typed) → description → skip media → anonymous."""
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(description)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")


async def confirm_report(resident: ChatUser) -> list[ApiCall]:
    """Press "send": when an open case nearby reads the same and the bot offers to join it
    instead, file this one all the same. The calls of the last press."""
    calls = await resident.press("ثبت گزارش")
    if "من هم همین مشکل" in resident.last_text:
        calls = await resident.press("ثبت گزارش خودم")
    return calls


async def test_start_shows_welcome_and_main_menu(resident: ChatUser) -> None:
    replies = texts(await resident.send("/start"))
    assert "محله" in replies[-1]
    assert resident.reply_keyboard() == [
        "📝 گزارش جدید",
        "📋 گزارش‌های من",
        "🏘 محلهٔ من",
        "❓ راهنما",
    ]


async def test_full_report_gets_a_persian_tracking_code(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("/start")
    await walk_to_summary(resident)
    summary = resident.api.to_chat(resident.user_id)[-1].text
    assert "یوسف‌آباد" in summary and DESCRIPTION in summary
    assert await cases_in(settings) == [], "nothing is stored before the resident confirms"

    replies = texts(await resident.press("ثبت گزارش"))

    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION and case.status == "forwarded"
    assert case.neighbourhood.name == "یوسف‌آباد" and case.reporter_phone is None
    assert case.code.endswith("-00001")
    assert persian_digits(case.code) in replies[0] and "ثبت شد" in replies[0]
    assert "شهرداری منطقه" in replies[1], "then: sent to the municipality"
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید", "the main menu comes back"
    [card] = [c for c in resident.api.to_chat(agency_chat(0)) if c.method == "sendMessage"]
    assert DESCRIPTION in card.text and persian_digits(case.code) in card.text


async def test_saved_neighbourhood_is_offered_first(resident: ChatUser) -> None:
    await resident.send("🏘 محلهٔ من")
    await resident.send("قزلقلعه")
    await resident.press("قزل‌قلعه")
    assert "قزل‌قلعه" in resident.last_text

    replies = texts(await resident.send("/new"))
    assert "قزل‌قلعه" in replies[-1]
    await resident.press("✅ قزل‌قلعه")
    assert "شرح دهید" in resident.last_text


async def test_browsing_districts_and_pages(resident: ChatUser) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.press("منطقه ۶")
    assert "بعدی ←" in resident.button_labels()
    await resident.press("بعدی ←")
    await resident.press("بعدی ←")
    await resident.press("دانشگاه تهران")
    picker = [c for c in resident.api.calls if c.method == "editMessageText"][-1]
    assert picker.text.startswith("محله:") and "دانشگاه تهران" in picker.text, "shows the choice"
    assert "reply_markup" not in picker.params, "and its buttons are gone"


async def test_photo_with_caption_counts_as_description_and_first_photo(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send_photo("P1", caption=DESCRIPTION)
    assert "عکس" in resident.last_text and "ادامه" in resident.last_text
    for n in range(2, 7):
        await resident.send_photo(f"P{n}")
    assert "بیش از ۵ عکس" in resident.last_text
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.photo_file_ids == ["P1", "P2", "P3", "P4", "P5"]
    assert case.text_original == DESCRIPTION


async def test_photo_without_caption_is_kept_while_text_is_asked(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    replies = texts(await resident.send_photo("LONELY"))
    assert "عکس نگه داشته شد" in replies[-1]
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.photo_file_ids == ["LONELY"]


async def test_description_length_is_checked_and_the_step_repeats(resident: ChatUser) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    assert "کوتاه است (۸ حرف)" in texts(await resident.send("خراب است"))[-1]
    too_long = "چاله " * 500
    assert "حداکثر ۲۰۰۰" in texts(await resident.send(too_long))[-1]
    await resident.send(DESCRIPTION)
    assert "عکس" in resident.last_text


async def test_location_outside_the_county_is_asked_again(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    assert "بیرون از محدوده" in texts(await resident.send_location(29.6, 52.5))[-1]  # Shiraz
    assert "موقعیت دریافت شد" in texts(await resident.send_location(35.72, 51.40))[-1]
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert (case.latitude, case.longitude) == (35.72, 51.40)


async def test_only_the_residents_own_phone_is_accepted(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    assert (
        "فقط شمارهٔ خودتان" in texts(await resident.send_contact("+989120000000", owner_id=555))[-1]
    )
    await resident.send_contact("+989121111111")
    assert "به دستگاه داده می‌شود" in resident.api.to_chat(resident.user_id)[-1].text
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.share_phone and case.reporter_phone == "+989121111111"


async def test_editing_one_part_returns_to_the_summary(
    resident: ChatUser, settings: Settings
) -> None:
    await walk_to_summary(resident)
    await resident.press("ویرایش")
    await resident.press("شرح مشکل")
    replies = texts(await resident.send("چراغ‌های خیابان اصلی محله یک هفته است خاموش است"))
    assert "چراغ‌های خیابان" in replies[-1] and "ثبت گزارش" in replies[-1]
    await resident.press("ویرایش")
    await resident.press("محله")
    await resident.send("امیرآباد")
    await resident.press("امیرآباد")
    assert "امیرآباد" in resident.api.to_chat(resident.user_id)[-1].text
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.neighbourhood.name == "امیرآباد" and case.text_original.startswith("چراغ‌های خیابان")


async def test_cancel_by_command_by_keyboard_and_by_button(
    resident: ChatUser, settings: Settings
) -> None:
    await resident.send("📝 گزارش جدید")
    assert "لغو شد" in texts(await resident.send("/cancel"))[-1]
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    assert "لغو شد" in texts(await resident.send("✖️ انصراف"))[-1]
    await walk_to_summary(resident)
    assert "لغو شد" in texts(await resident.press("✖️ انصراف"))[-1]
    assert await cases_in(settings) == []
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید"


async def test_double_confirm_creates_one_case(resident: ChatUser, settings: Settings) -> None:
    await walk_to_summary(resident)
    confirm_data = resident.data_of("ثبت گزارش")
    await resident.press_data(confirm_data)
    second = await resident.press_data(confirm_data)  # a double tap, or the same update redelivered
    assert len(await cases_in(settings)) == 1
    assert "پیش‌تر با کد" in alerts(second)[0] and "۱۴۰۵-۰۰۰۰۱" in alerts(second)[0]


async def test_hourly_limit_stops_a_new_report_politely(bot: Bot, settings: Settings) -> None:
    resident = bot.user(2002)
    for n in range(settings.bot.reports_per_hour):
        await walk_to_summary(resident, f"{DESCRIPTION} شماره {n}")
        await resident.press("ثبت گزارش")
    replies = texts(await resident.send("📝 گزارش جدید"))
    assert "حداکثر ۵ گزارش" in replies[-1] and "دقیقهٔ دیگر" in replies[-1]
    assert len(await cases_in(settings)) == settings.bot.reports_per_hour


async def test_a_flood_from_everyone_waits_a_minute_and_loses_nothing(
    bot: Bot, settings: Settings
) -> None:
    runtime = bot.app.bot_data["runtime"]
    runtime.settings = settings.model_copy(
        update={"bot": settings.bot.model_copy(update={"reports_per_minute_all": 2})}
    )
    for user_id in (3001, 3002):
        await walk_to_summary(bot.user(user_id))
        await confirm_report(bot.user(user_id))
    third = bot.user(3003)
    await walk_to_summary(third)
    refused = alerts(await confirm_report(third))
    assert "یک دقیقهٔ دیگر" in refused[0] and "محفوظ" in refused[0]
    assert len(await cases_in(settings)) == 2, "the third waits"
    runtime.settings = settings  # a minute later, as far as the limit is concerned
    replies = texts(await third.press("ثبت گزارش"))
    assert any("۱۴۰۵-۰۰۰۰۳" in reply for reply in replies), "the kept draft goes through"


async def test_a_confirm_handled_late_still_tells_the_code_and_brings_the_menu_back(
    resident: ChatUser, settings: Settings
) -> None:
    await walk_to_summary(resident)
    resident.api.fail = query_too_old
    replies = texts(await resident.press("ثبت گزارش"))
    [case] = await cases_in(settings)
    assert persian_digits(case.code) in replies[0] and "ثبت شد" in replies[0]
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید", "the main menu comes back"
    again = texts(await resident.send("📝 گزارش جدید"))
    assert "محله" in again[-1], "a new report starts afresh, not stuck at the old confirm"


async def test_a_summary_that_cannot_be_changed_still_gets_the_code(
    resident: ChatUser, settings: Settings
) -> None:
    """Removing the pressed summary's buttons is tidying: when Telegram refuses it (the message
    deleted meanwhile, or no longer editable), the committed report still names its code."""
    await walk_to_summary(resident)

    def uneditable(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if not call.method.startswith("edit"):
            return None
        description = "Bad Request: message can't be edited"
        return 400, {"ok": False, "error_code": 400, "description": description}

    resident.api.fail = uneditable
    replies = texts(await resident.press("ثبت گزارش"))
    [case] = await cases_in(settings)
    assert persian_digits(case.code) in replies[0] and "ثبت شد" in replies[0]
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید"


async def test_a_confirm_handled_again_late_names_the_code_in_a_message(
    resident: ChatUser, settings: Settings
) -> None:
    """The "already submitted" box can no longer be shown; the resident reads it in the chat."""
    await walk_to_summary(resident)
    confirm_data = resident.data_of("ثبت گزارش")
    await resident.press_data(confirm_data)
    resident.api.fail = query_too_old  # the same press again, after a restart's backlog
    replies = texts(await resident.press_data(confirm_data))
    [case] = await cases_in(settings)
    assert len(replies) == 1 and "پیش‌تر با کد" in replies[0]
    assert persian_digits(case.code) in replies[0]


class PressWatchingAPI(FakeBotAPI):
    """Holds the first of a press's two calls (its answer, the change to its message) up to a
    second for the other, and records whether the other came meanwhile (True: neither waited on
    the other) or only after the first was answered (False, for each of the two)."""

    def __init__(self) -> None:
        super().__init__()
        self.together: list[bool] = []
        self._waiting: asyncio.Event | None = None

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        if name == "answerCallbackQuery" or name.startswith("edit"):
            await self._meet()
        return await super().do_request(url, method, *args, **kwargs)

    async def _meet(self) -> None:
        if self._waiting is not None:  # the press's other call is held: let both go
            self._waiting.set()
            self._waiting = None
            return
        partner = self._waiting = asyncio.Event()
        try:
            await asyncio.wait_for(partner.wait(), 1.0)
            self.together.append(True)
        except TimeoutError:
            self._waiting = None
            self.together.append(False)


async def test_a_press_is_answered_and_its_message_changed_in_one_round_trip(
    settings: Settings,
) -> None:
    """With Telegram a round trip away, the spinner stops and the keyboard goes at once."""
    api = PressWatchingAPI()
    app, _ = await start_bot(settings, api)
    resident = ChatUser(app, api, 1001)
    await walk_to_summary(resident)  # picking the neighbourhood is a press
    await resident.press("ثبت گزارش")
    await stop_bot(app)
    assert api.together == [True, True], "neither call of a press waited on the other"


async def _change_draft(settings: Settings, user_id: int, **changes: Any) -> None:
    """Change a person's saved draft behind the conversation's back (another bot of the
    deployment taking it on, or the config dropping its place)."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        row = await session.get(Draft, user_id)
        assert row is not None
        row.data = {**row.data, **changes}
        await session.commit()
    await engine.dispose()


async def test_a_confirm_of_a_draft_that_lost_its_description_asks_for_it_again(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user(2101)
    await walk_to_summary(resident)
    await _change_draft(settings, 2101, text=None)
    asked = texts(await resident.press("ثبت گزارش"))
    assert any("مشکل را شرح دهید" in text for text in asked), asked
    assert not await cases_in(settings), "nothing filed without a description"
    summary = texts(await resident.send(DESCRIPTION))
    assert any(DESCRIPTION in text for text in summary), "straight back to the summary"
    await confirm_report(resident)
    assert [case.text_original for case in await cases_in(settings)] == [DESCRIPTION]


async def test_a_confirm_of_a_draft_whose_place_is_not_served_asks_for_a_place(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user(2102)
    await walk_to_summary(resident)
    await _change_draft(settings, 2102, neighbourhood_id=987654)
    asked = texts(await resident.press("ثبت گزارش"))
    assert any("دیگر در فهرست نیست" in text for text in asked), asked
    assert not await cases_in(settings), "nothing filed for a place this bot does not serve"
    await resident.send("یوسف آباد")
    summary = texts(await resident.press("یوسف‌آباد"))
    assert any(DESCRIPTION in text for text in summary), "straight back to the summary"
    await confirm_report(resident)
    assert len(await cases_in(settings)) == 1
