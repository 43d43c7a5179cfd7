"""The bot as its people use it: residents who type and reply rather than press, a group's
member looking for how to register, a clerk reading the help. Each test is a place where one of
them was once confused, misled or stuck, and says what they see instead."""

from __future__ import annotations

from bot.config import Settings
from bot.digits import persian_digits
from tests.conftest import Bot, agency_chat
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import add_staff, one_case, report
from tests.test_report_flow import DESCRIPTION

MUNICIPALITY = agency_chat(0)
VOICE = {"file_id": "VOICE1", "file_unique_id": "voice1", "duration": 6}


async def accepted_case(bot: Bot, settings: Settings) -> tuple[ChatUser, ChatUser]:
    """A resident's report, accepted by a municipality clerk: (resident, clerk)."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    resident = bot.user(1001)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    await clerk.press("پذیرش")
    return resident, clerk


async def asked(bot: Bot, settings: Settings, question: str) -> tuple[ChatUser, ChatUser]:
    """The clerk asks the reporter `question` (typed in their private chat)."""
    resident, clerk = await accepted_case(bot, settings)
    await clerk.press("پرسش")
    await clerk.private().send(question)
    assert question in resident.last_text
    return resident, clerk


def relayed_answers(bot: Bot) -> list[str]:
    """Reporter answers the agency's group was shown."""
    return [m.text for m in bot.api.delivered(MUNICIPALITY) if "پاسخ گزارش‌دهنده" in m.text]


# --- the resident who types rather than presses ---------------------------------------------


async def test_an_answer_typed_under_the_agencys_question_is_not_waved_off(
    bot: Bot, settings: Settings
) -> None:
    """The agency asks "which alley?"; the resident, as on any messenger, replies to that
    message with the answer: it reaches the agency as their answer, and the resident is not
    steered to a new report."""
    resident, _ = await asked(bot, settings, "دقیقاً کدام کوچه؟ پلاک چند؟")
    [question] = [m for m in bot.api.delivered(resident.chat_id) if "پرسیده است" in m.text]

    reply = texts(await resident.reply_to(question.message_id, "کوچه سوم، پلاک ۱۲"))

    assert relayed_answers(bot) or any("پاسخ می‌دهم" in line for line in reply), reply
    assert not any("گزارش جدید" in line for line in reply), "not steered to a new report"


async def test_typing_not_fixed_after_a_resolution_does_not_send_one_to_a_new_report(
    bot: Bot, settings: Settings
) -> None:
    """The agency says it is fixed and asks «آیا مشکل واقعاً برطرف شد؟». A resident who types
    "درست نشده هنوز" is pointed to «نه، برطرف نشده», which reopens the case, not steered to
    a duplicate report."""
    resident, clerk = await accepted_case(bot, settings)
    await clerk.press("رسیدگی شد")
    await clerk.private().send("سطل زباله تخلیه و شسته شد")
    assert "برطرف شد؟" in resident.last_text

    reply = texts(await resident.send("درست نشده هنوز"))

    reopened = (await one_case(settings)).status == "reopened"
    assert reopened or any("برطرف نشده" in line for line in reply), reply
    assert not any("گزارش جدید" in line for line in reply), "not steered to a new report"


async def test_typing_laghv_cancels_the_report(resident: ChatUser) -> None:
    """«لغو» is the everyday Persian for cancel: typed at the description step it cancels, as
    «انصراف» does, and is not taken for a three-letter description."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")

    reply = texts(await resident.send("لغو"))

    assert reply == ["گزارش لغو شد. چیزی ثبت نشد."], reply


async def test_typing_the_anonymous_word_at_the_phone_step_is_understood(
    resident: ChatUser,
) -> None:
    """At the phone step a typist writes «ناشناس» (the button's first word, as «ادامه» and
    «گزارش جدید» are understood without their emoji): they stay anonymous and see the summary."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه")
    assert "ناشناس" in resident.last_text

    reply = texts(await resident.send("ناشناس"))

    assert reply and reply[0] == "پیش از ثبت، خلاصه را ببینید:", reply


async def test_a_voice_note_sent_for_the_description_is_kept_like_a_photo(
    resident: ChatUser,
) -> None:
    """A voice note sent when the description is asked for is kept with the report, as a photo
    is, and the written description is still asked for: an older resident need not record it
    again."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send_content(voice=VOICE)
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")

    summary = resident.last_text
    assert "🎙 پیام صوتی: ۱" in summary, summary


async def test_pressing_new_report_in_a_forgotten_draft_says_how_to_leave_it(
    resident: ChatUser,
) -> None:
    """A resident left a report at the photo step and comes back later to report something
    else: «📝 گزارش جدید» is answered with what the step waits for and how to leave the
    unfinished report (/cancel or «انصراف»)."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)

    [reply] = texts(await resident.send("📝 گزارش جدید"))

    assert "/cancel" in reply or "انصراف" in reply, reply


# --- following one's report -----------------------------------------------------------------


async def test_a_report_waiting_for_the_residents_answer_offers_the_answer_button(
    bot: Bot, settings: Settings
) -> None:
    """The resident checks the report by typing its code: it shows «نیاز به اطلاعات بیشتر —
    دقیقاً کدام کوچه؟» and carries «✍️ پاسخ می‌دهم», so the notice far up the chat (or deleted)
    is not the only way to answer."""
    resident, _ = await asked(bot, settings, "دقیقاً کدام کوچه؟")
    case = await one_case(settings)

    calls = await resident.send(case.code.replace("-", ""))  # typed, ASCII digits

    [detail] = [c for c in calls if c.method == "sendMessage"]
    assert "نیاز به اطلاعات بیشتر" in detail.text
    markup = detail.params.get("reply_markup") or {}
    labels = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
    assert "✍️ پاسخ می‌دهم" in labels, labels


async def test_thanks_for_a_rating_is_said_once(bot: Bot, settings: Settings) -> None:
    """Pressing ۵⭐ thanks the resident once («از امتیاز شما ممنونیم.»), not once as the
    button's answer and again as a message."""
    resident, clerk = await accepted_case(bot, settings)
    await clerk.press("رسیدگی شد")
    await clerk.private().send("سطل زباله تخلیه شد")
    await resident.press("بله، برطرف شد")

    calls = await resident.press("۵⭐")

    said = alerts(calls) + texts(calls)
    assert said.count("از امتیاز شما ممنونیم.") == 1, said


# --- a civil-society group's member ---------------------------------------------------------


async def test_help_tells_a_group_how_to_register(resident: ChatUser) -> None:
    """Reporting on behalf of a local group needs the group registered with /group: /help
    says so, so a group's founder can find it."""
    [help_text] = texts(await resident.send("/help"))

    assert "/group" in help_text, help_text


# --- the agency clerk -------------------------------------------------------------------------


async def test_staff_help_says_notes_are_typed_in_the_private_chat(
    bot: Bot, settings: Settings
) -> None:
    """/help in the agency's group names the card's buttons as they read («رسیدگی شد») and says
    the question, note or reason is written in the clerk's private chat with the bot, where the
    bot asks for it."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")

    [help_text] = texts(await clerk.send("/help"))

    assert "خصوصی" in help_text, help_text
    assert "رسیدگی شد" in help_text, help_text


async def test_a_reporters_history_shows_no_internal_domain_keys(
    bot: Bot, settings: Settings
) -> None:
    """The reporter's own case view is Persian: a reroute must not show the config's internal
    domain key (`security`) as if it were a note from the agency."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1001)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("ارجاع")
    await clerk.press("انتظامی")
    case = await one_case(settings)
    [view] = texts(await resident.send(case.code))
    assert "security" not in view, view


async def test_rating_from_the_case_view_keeps_its_way_back(bot: Bot, settings: Settings) -> None:
    """A closed case opened from «گزارش‌های من» offers its rating; once rated, the stars go and
    the way back to the list stays."""
    resident, clerk = await accepted_case(bot, settings)
    await clerk.press("رسیدگی شد")
    await clerk.private().send("سطل زباله تخلیه شد")
    await resident.press("بله، برطرف شد")
    await resident.send("📋 گزارش‌های من")
    case = await one_case(settings)
    view = await resident.press(persian_digits(case.code))
    [shown] = [c for c in view if c.method == "editMessageText"]
    labels = [b["text"] for row in shown.params["reply_markup"]["inline_keyboard"] for b in row]
    assert "۵⭐" in labels and any("بازگشت" in label for label in labels), labels
    rated = await resident.press("۵⭐")
    [kept] = [c for c in rated if c.method == "editMessageReplyMarkup"]
    left = [b["text"] for row in kept.params["reply_markup"]["inline_keyboard"] for b in row]
    assert "۵⭐" not in left and any("بازگشت" in label for label in left), left
    assert (await one_case(settings)).rating == 5
