"""Texts Telegram would refuse: long as shown, blank to the eye, grown by a history, or refused
by an agency's chat for good. The fake Bot API refuses what Telegram refuses (tests/fakebot.py),
and every test here fails if the bot made one call Telegram would refuse."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from bot.config import Settings
from bot.digits import persian_digits
from bot.fit import TEXT_LIMIT, units
from bot.services import outbox
from bot.services.routing import case_view
from models.db import create_engine, create_session_factory
from models.entities import Case
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import ApiCall, ChatUser, deliver_outbox, texts
from tests.test_agency import add_staff, one_case, report
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary
from tests.test_status import status_command

MUNICIPALITY = agency_chat(0)
POLICE = agency_chat(2)
GENERIC_ERROR = "مشکلی پیش آمد"
# 1,975 letters each with a fatha: 3,950 characters as typed and shown, 1,975 once normalised.
VOWELLED = "بَ" * 1975


async def start_description(resident: ChatUser) -> None:
    """New report, Yousefabad picked: the bot now asks for the description."""
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")


def everything_to(bot: Bot, chat_id: int) -> list[str]:
    """Every text sent or edited into a chat, and every alert there."""
    return [c.text for c in bot.api.to_chat(chat_id) if c.text]


async def test_a_description_long_as_shown_is_refused_where_it_is_typed(
    bot: Bot, settings: Settings
) -> None:
    """3,950 characters shown pass a 2,000 bound counted on the normalised text; the summary
    then overflows a message. The bound holds for what the resident typed."""
    resident = bot.user()
    await start_description(resident)
    [reply] = texts(await resident.send(VOWELLED))
    assert "طولانی" in reply and persian_digits(3950) in persian_digits(reply)
    [asked] = texts(await resident.send(DESCRIPTION))  # still at the step, nothing lost
    assert "عکس" in asked
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION and case.neighbourhood_id is not None
    assert not [t for t in everything_to(bot, resident.chat_id) if GENERIC_ERROR in t]


@pytest.mark.parametrize(
    "blank",
    [
        "\u200b\u2060\u3164\u00ad\u200c" * 6,
        "ــــــــــــــــ      \u200c\u200c\u3164\u3164 . ",
        "\u115f\u1160\uffa0\u200b" * 5 + "ab",
    ],
    ids=["zero-width", "tatweel-and-spaces", "hangul-fillers"],
)
async def test_a_description_without_letters_to_see_is_asked_again(
    bot: Bot, settings: Settings, blank: str
) -> None:
    """Zero-width and filler characters would reach the agency as a blank card."""
    resident = bot.user()
    await start_description(resident)
    [reply] = texts(await resident.send(blank))
    assert "حرف یا رقم" in reply, reply
    [asked] = texts(await resident.send(DESCRIPTION))
    assert "عکس" in asked, "the description step takes a real description next"
    assert await cases_in(settings) == []
    assert not [t for t in everything_to(bot, resident.chat_id) if GENERIC_ERROR in t]


async def _lengthen_waiting_card(bot: Bot, settings: Settings, room: int) -> str:
    """The case (placed, its card still waiting) gets a description as long as leaves `room`
    units free on its card, as a case filed before descriptions were bounded as shown; the
    waiting card is rendered anew. The new description."""
    cards = bot.app.bot_data["runtime"].card_renderer
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        case = await one_case(settings)
        view = await case_view(session, case.id)
        pad = TEXT_LIMIT - room - units(cards.agency(view)["text"])
        text = view.text + " " + "خ" * (pad - 1)
        await session.execute(update(Case).where(Case.id == case.id).values(text_original=text))
        card = cards.agency(await case_view(session, case.id))
        assert units(card["text"]) == TEXT_LIMIT - room
        await outbox.rewrite_waiting(
            session, case_id=case.id, purpose=outbox.AGENCY_CARD, payload=card
        )
        await session.commit()
    await engine.dispose()
    return text


async def test_an_anonymous_card_near_the_limit_still_takes_accept(
    bot: Bot, settings: Settings
) -> None:
    """Accepting adds a line to the card ("last action: …"): at 4,090 units the edit would be
    refused and the card keep its stale buttons."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    resident = ChatUser(bot.app, bot.api, 1001, deliver=False)
    await walk_to_summary(resident)
    await resident.press("ثبت گزارش")
    long_text = await _lengthen_waiting_card(bot, settings, room=6)
    await deliver_outbox(bot.app)
    [card] = bot.api.delivered(MUNICIPALITY)
    assert long_text in card.text, "it fitted whole"

    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    calls = await clerk.press("پذیرش")
    [edit] = [c for c in calls if c.method == "editMessageText"]
    [card] = bot.api.delivered(MUNICIPALITY)
    assert "در دست بررسی" in card.text and "کارشناس رضایی" in card.text
    assert "…" in card.text and units(card.text) <= TEXT_LIMIT
    assert not any("پذیرش" in b["text"] for b in card.buttons()), "accept is gone"
    assert any("رسیدگی شد" in b["text"] for b in card.buttons())
    assert (await one_case(settings)).status == "accepted"
    assert edit.text == card.text


def _question(round_: int) -> str:
    """A 1,000-character question (the longest staff may type)."""
    return (f"پرسش {round_}: " + "کدام پلاک و کدام کوچه دقیقاً؟ " * 40)[:1000]


def _answer(round_: int) -> str:
    """A 2,000-character answer, half of it emoji (two UTF-16 units each)."""
    return (f"پاسخ {round_}: " + "جلوی نانوایی 🚧🕳 " * 200)[:2000]


async def test_long_questions_and_answers_leave_the_case_openable(
    bot: Bot, settings: Settings
) -> None:
    """Two rounds of a 1,000-character question and a 2,000-character answer: the case view
    with its history would be over 6,000 units, and the resident could never open it again."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1007)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    for round_ in (1, 2):
        await clerk.press("پرسش از گزارش‌دهنده")
        await clerk.reply(_question(round_))
        assert "ثبت شد" in clerk.private().last_text
        await resident.press("پاسخ می‌دهم")
        await resident.send(_answer(round_))
        assert "به دستگاه رسید" in resident.last_text
    relays = [c for c in bot.api.to_chat(MUNICIPALITY) if "پاسخ گزارش‌دهنده" in c.text]
    assert len(relays) == 2 and _answer(2)[:40] in relays[1].text

    await resident.send("📋 گزارش‌های من")
    case = await one_case(settings)
    calls = await resident.press(persian_digits(case.code))
    [view] = [c for c in calls if c.method == "editMessageText"]
    assert persian_digits(case.code) in view.text and DESCRIPTION in view.text
    assert _answer(2)[:40] in view.text, "the newest step is on the first page"
    seen = [view.text]
    while any("قدیمی‌تر" in b["text"] for b in _buttons(view)):
        [view] = [c for c in await resident.press("سابقهٔ قدیمی‌تر") if c.method == "editMessageText"]
        seen.append(view.text)
    assert len(seen) >= 2, "the history runs over pages"
    assert _question(1)[:40] in "".join(seen), "the oldest step is a few presses away"
    typed = texts(await resident.send(case.code))
    assert typed and persian_digits(case.code) in typed[-1]
    assert not [t for t in everything_to(bot, resident.chat_id) if GENERIC_ERROR in t]


def _buttons(call: ApiCall) -> list[dict[str, str]]:
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


@pytest.mark.parametrize(
    "refusal",
    [
        (400, "Bad Request: message is too long"),
        (400, "Bad Request: BUTTON_DATA_INVALID"),
        (403, "Forbidden: bot is not a member of the supergroup chat"),
    ],
)
async def test_a_refused_card_goes_to_the_coordinators_and_status_names_it(
    bot: Bot,
    settings: Settings,
    refusal: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Telegram refuses the agency's card for good: the coordinators get the case, with its
    code, why, and the buttons to place it again; the resident hears it did not arrive;
    `mahalle status` names the case and exits 1 until it is placed again."""
    code, description = refusal

    def refuse_cards(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.chat_id == MUNICIPALITY and call.method == "sendMessage":
            return code, {"ok": False, "error_code": code, "description": description}
        return None

    bot.api.fail = refuse_cards
    resident = bot.user()
    await report(resident)
    case = await one_case(settings)
    shown_code = persian_digits(case.code)
    assert bot.api.delivered(MUNICIPALITY) == []
    [triage] = [m for m in bot.api.delivered(COORDINATOR_CHAT) if m.buttons()]
    assert shown_code in triage.text and ("نرسید" in triage.text or "نپذیرفت" in triage.text)
    if "too long" in description:
        assert "بلندتر" in triage.text
    told = [t for t in texts(bot.api.to_chat(resident.chat_id)) if "نرسید" in t]
    assert len(told) == 1 and shown_code in told[0]
    assert case.undeliverable

    exit_code, printed, _ = await status_command(settings.database.url, monkeypatch, capsys)
    assert exit_code == 1 and case.code in printed, printed

    bot.api.fail = None
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await coordinator.press("انتظامی و امنیت")
    [placed] = await cases_in(settings)
    assert placed.agency_key == "police" and placed.status == "forwarded"
    assert not placed.undeliverable
    assert len(bot.api.delivered(POLICE)) == 1
    assert "«" in resident.last_text and "فرستاده شد" in resident.last_text
    exit_code, printed, _ = await status_command(settings.database.url, monkeypatch, capsys)
    assert case.code not in printed and "needs a look: cards that did not arrive" not in printed
    if not settings.database.url.startswith("postgresql"):
        assert exit_code == 0, printed
