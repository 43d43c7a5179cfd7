"""A typed step on a case (a question to the reporter, a resolution note, a rejection reason)
shows on the agency's card, as a pressed button's step does; a colleague pressing the card as it
was learns what became of the case; and a step checked before a coordinator's reroute is not
applied to the case at its new agency."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.jalali import utcnow
from bot.services import casework, routing
from models.db import create_engine, create_session_factory
from models.entities import Case
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import ChatUser, SentMessage, alerts, texts
from tests.test_agency import MUNICIPALITY, add_staff, one_case, report


async def card_as_shown(bot: Bot, settings: Settings) -> SentMessage:
    """The case's card in the agency's group, as the group sees it now (edits applied)."""
    case = await one_case(settings)
    [card] = [m for m in bot.api.delivered(MUNICIPALITY) if m.message_id == case.card_message_id]
    return card


async def rezaei_on_a_case(bot: Bot, settings: Settings) -> ChatUser:
    """A report at the municipality, and its clerk Rezaei in the agency's group."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    return bot.in_group(2001, MUNICIPALITY, "رضایی")


def labels(message: SentMessage) -> list[str]:
    """The card's buttons as people read them."""
    return [button["text"] for button in message.buttons()]


async def test_the_card_shows_a_rejection_and_offers_nothing_more(
    bot: Bot, settings: Settings
) -> None:
    """Rejected with a reason: the card reads «ردشده» and has no button left (it is final)."""
    clerk = await rezaei_on_a_case(bot, settings)
    await clerk.press("رد")
    await clerk.reply("خارج از محدودهٔ شهرداری منطقه است")
    assert (await one_case(settings)).status == "rejected"
    card = await card_as_shown(bot, settings)
    assert "ردشده" in card.text
    assert labels(card) == []


async def test_the_card_shows_a_resolution(bot: Bot, settings: Settings) -> None:
    """Resolved with a note: the card reads «رسیدگی‌شده» and no longer offers to resolve."""
    clerk = await rezaei_on_a_case(bot, settings)
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("سطل تخلیه و محل شسته شد")
    assert (await one_case(settings)).status == "resolved"
    card = await card_as_shown(bot, settings)
    assert "رسیدگی‌شده" in card.text
    assert not any("رسیدگی شد" in label for label in labels(card))


async def test_the_card_shows_a_question_waiting_for_the_reporter(
    bot: Bot, settings: Settings
) -> None:
    """A question asked: colleagues see the case waits for the reporter's answer."""
    clerk = await rezaei_on_a_case(bot, settings)
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply("دقیقاً جلوی کدام پلاک است؟")
    assert (await one_case(settings)).status == "needs_info"
    assert "نیاز به اطلاعات بیشتر" in (await card_as_shown(bot, settings)).text


async def test_the_card_still_names_the_clerk_after_the_reporter_answers(
    bot: Bot, settings: Settings
) -> None:
    """The reporter answers the question: the card is back «در دست بررسی» and still says who
    last acted on it (the reporter, unnamed to the agency, is not that)."""
    clerk = await rezaei_on_a_case(bot, settings)
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply("دقیقاً جلوی کدام پلاک است؟")
    resident = bot.user()
    await resident.press("پاسخ می‌دهم")
    await resident.send("جلوی پلاک ۱۲، کنار درخت چنار")
    assert (await one_case(settings)).status == "accepted"
    card = await card_as_shown(bot, settings)
    assert "در دست بررسی" in card.text and "آخرین اقدام: \u2068رضایی\u2069" in card.text


async def test_a_colleague_pressing_the_card_as_it_was_learns_what_became_of_it(
    bot: Bot, settings: Settings
) -> None:
    """Rezaei rejected the case; Karimi presses «پذیرش» on the card as he saw it before: he is
    told the case is now rejected, by Rezaei, and nothing changes."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await add_staff(settings, 2002, "municipality", "کریمی")
    await report(bot.user())
    first = bot.in_group(2001, MUNICIPALITY, "رضایی")
    second = bot.in_group(2002, MUNICIPALITY, "کریمی")
    before = await card_as_shown(bot, settings)
    [accept] = [b["callback_data"] for b in before.buttons() if "پذیرش" in b["text"]]
    await first.press("رد")
    await first.reply("خارج از محدودهٔ شهرداری منطقه است")
    [said] = alerts(await second.press_data(accept, before))
    assert "ردشده" in said and "رضایی" in said
    assert (await one_case(settings)).status == "rejected"


async def test_a_reason_racing_a_reroute_does_not_reject_the_new_agencys_case(
    bot: Bot, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The municipality's clerk types a rejection reason; just after the step is checked, a
    coordinator's reroute to the police commits (on PostgreSQL the clerk's chat and the
    coordinator's are handled at once). The reason is refused: the police's case stays
    forwarded to them, the clerk is told why, and the reporter hears of no rejection."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("رد")
    renderer = bot.app.bot_data["runtime"].card_renderer
    checked = casework.check_step

    async def check_then_reroute(session, **kwargs):  # type: ignore[no-untyped-def]
        case = await checked(session, **kwargs)
        engine = create_engine(settings.database.url)
        async with create_session_factory(engine)() as other:
            current = await other.get(Case, case.id)
            assert current is not None
            await routing.reroute(
                other, case=current, domain_key="security", actor_id=COORDINATOR,
                actor_name="دبیرخانه", cards=renderer, now=utcnow(),
            )  # fmt: skip
            await other.commit()
        await engine.dispose()
        return case

    monkeypatch.setattr(casework, "check_step", check_then_reroute)
    heard_before = len(bot.api.to_chat(resident.chat_id))
    await clerk.reply("خارج از محدودهٔ ماست")
    case = await one_case(settings)
    assert (case.agency_key, case.status) == ("police", "forwarded")
    assert "دستگاه دیگری ارجاع شده" in clerk.private().last_text
    assert all("رد" not in c.text for c in bot.api.to_chat(resident.chat_id)[heard_before:])


async def test_the_reporters_history_sets_a_clerks_note_apart_from_the_status(
    bot: Bot, settings: Settings
) -> None:
    """The reporter's case history shows a step's status, then a dash, then the clerk's note:
    «رسیدگی‌شده — سطل تخلیه …», not the two run together."""
    clerk = await rezaei_on_a_case(bot, settings)
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("سطل تخلیه و محل شسته شد")
    code = (await one_case(settings)).code
    [shown] = texts(await bot.user().send(code))  # the reporter
    [line] = [line for line in shown.splitlines() if "سطل تخلیه" in line]
    assert "رسیدگی‌شده — " in line
