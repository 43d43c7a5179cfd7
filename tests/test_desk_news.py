"""The secretariat's desk and the council's secretary, chat by chat: what they are told when
an agency moves a decision, figures that agree between /cases and the digest, a step typed late,
the staff list after a removal. Each test states what a person notices."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from bot.config import Settings
from bot.digits import persian_digits
from bot.jalali import utcnow
from bot.pipeline import check_deadlines, send_daily_digest
from bot.services.worktime import WorkCalendar
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseEvent, CouncilStep
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import alerts, texts
from tests.test_agency import MUNICIPALITY, add_staff, report
from tests.test_case_desk import ANSWER, QUESTION, UNSURE
from tests.test_council import DECISION, SECRETARY, jalali_day, with_council
from tests.test_report_flow import cases_in

WATER = "آب محله از دیروز صبح قطع است و هیچ کس جواب نمی‌دهد"


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council: a secretary and one member."""
    return with_council(database_url)


async def handed_over_at(settings: Settings, case_ids: list[int], when: datetime) -> None:
    """The cases were filed and reached their agency at `when`, their history too (as if the
    days had really passed)."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        await session.execute(
            update(Case)
            .where(Case.id.in_(case_ids))
            .values(created_at=when, forwarded_at=when, handed_over_at=when, updated_at=when)
        )
        await session.execute(
            update(CaseEvent).where(CaseEvent.case_id.in_(case_ids)).values(created_at=when)
        )
        await session.commit()
    await engine.dispose()


async def lapse_council_step(settings: Settings, minutes: int) -> None:
    """The step the bot waits for in a private chat was begun `minutes` ago."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        await session.execute(
            update(CouncilStep).values(created_at=utcnow() - timedelta(minutes=minutes))
        )
        await session.commit()
    await engine.dispose()


def delivered_texts(bot: Bot, chat_id: int) -> list[str]:
    return [m.text for m in bot.api.delivered(chat_id)]


async def test_secretary_hears_when_the_agency_accepts_and_when_it_finishes_a_decision(
    bot: Bot, settings: Settings
) -> None:
    """The secretary records a decision for the municipality. When its clerk presses «پذیرش
    مصوبه», and later «انجام شد», the secretary, who follows the council's decisions, hears of
    each once, with the decision's number and the agency."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    secretary = bot.user(SECRETARY)
    await secretary.send("/decision")
    await secretary.send(DECISION)
    await secretary.press("شهرداری")
    await secretary.send(jalali_day(5))
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")

    before = len(delivered_texts(bot, SECRETARY))
    await clerk.press("پذیرش مصوبه")
    await bot.user(4242).send("/help")  # any update runs the outbox
    told = [t for t in delivered_texts(bot, SECRETARY)[before:] if "شمارهٔ ۱" in t]
    assert len(told) == 1 and "شهرداری منطقه" in told[0], (
        f"after the agency accepted decision no. 1 the secretary was sent {told}"
    )

    before = len(delivered_texts(bot, SECRETARY))
    await clerk.press("انجام شد")
    await bot.user(4242).send("/help")
    told = [t for t in delivered_texts(bot, SECRETARY)[before:] if "شمارهٔ ۱" in t]
    assert len(told) == 1 and "انجام" in told[0], (
        f"after the agency finished decision no. 1 the secretary was sent {told}"
    )


async def test_digest_counts_a_case_accepted_once_as_one_accepted_case(
    bot: Bot, settings: Settings
) -> None:
    """One case is accepted, the clerk asks the reporter a question and the reporter answers
    (which puts the case back to «در دست بررسی»): the coordinators' morning digest counts one
    acceptance, as /stats shows one case in the works."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1007)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply(QUESTION)
    await resident.press("پاسخ می‌دهم")
    await resident.send(ANSWER)

    await send_daily_digest(bot.jobs_runtime, now=utcnow())
    await bot.user(4242).send("/help")
    [digest] = [t for t in delivered_texts(bot, COORDINATOR_CHAT) if "خلاصهٔ روز" in t]
    assert "در دست بررسی: ۱" in texts(await bot.user(COORDINATOR).send("/stats"))[0]
    assert "پذیرفته‌شده: ۱" in digest, digest


async def test_overdue_in_cases_agrees_with_overdue_in_the_digest_and_stats(
    bot: Bot, settings: Settings
) -> None:
    """A case has waited 30 working hours for the municipality to accept it: past the reminder
    (24 h) but not the escalation (48 h). /cases and the same morning's digest give the same
    count of overdue cases: a coordinator comparing them need not wonder which to believe."""
    await report(bot.user(1001))
    [case] = await cases_in(settings)
    now = utcnow()
    calendar = WorkCalendar.configured(settings.deadlines)
    await handed_over_at(settings, [case.id], calendar.latest_start(now, timedelta(hours=30)))

    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/cases")
    [button] = [b for b in coordinator.button_labels() if b.startswith("شهرداری منطقه")]
    in_cases = button.split("، ")[-1]  # "N دیرکرد"
    await send_daily_digest(bot.jobs_runtime, now=now)
    await coordinator.send("/help")
    [digest] = [t for t in delivered_texts(bot, COORDINATOR_CHAT) if "خلاصهٔ روز" in t]
    in_digest = digest.split("گذشته از مهلت: ")[1].split("\n")[0]
    assert in_cases == f"{in_digest} دیرکرد", (
        f"/cases says «{button}», the digest says «گذشته از مهلت: {in_digest}»"
    )


async def test_a_decision_typed_after_a_pause_is_not_lost_with_the_residents_answer(
    bot: Bot, settings: Settings
) -> None:
    """The secretary sends /decision at the start of the meeting and types the decision's
    wording when the council has agreed it, half an hour later: it is taken. Typed after the
    meeting's length it is not, and the secretary is told so and how to begin again, never
    answered as a resident («گزارش جدید»)."""
    secretary = bot.user(SECRETARY)
    await secretary.send("/decision")
    await lapse_council_step(settings, 31)
    [answer] = texts(await secretary.send(DECISION))
    assert "گزارش جدید" not in answer and "دستگاه" in answer, answer
    await secretary.press("شهرداری")
    await lapse_council_step(settings, 181)
    [late] = texts(await secretary.send(jalali_day(5)))
    assert "ثبت نشد" in late and "/decision" in late and "گزارش جدید" not in late, late


async def test_removing_a_clerk_from_staff_updates_the_list_and_says_so_in_its_own_words(
    bot: Bot, settings: Settings
) -> None:
    """A coordinator opens /staff and taps «✖️ رضایی — شهرداری منطقه»: the clerk is removed and
    the list shows the others only. A tap on the old button (a second phone, a slow network)
    says the clerk was already taken off, not something about a report."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await add_staff(settings, 2002, "police", "احمدی")
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/staff")
    [listing] = [m for m in bot.api.delivered(COORDINATOR) if "برای حذف" in m.text]
    old = coordinator.data_of("رضایی")
    first = await coordinator.press("رضایی")
    assert alerts(first) == ["حذف شد."]
    shown = bot.api.messages[(listing.chat_id, listing.message_id)]
    assert [b["text"] for b in shown.buttons() if "رضایی" in b["text"]] == []
    assert [b["text"] for b in shown.buttons() if "احمدی" in b["text"]], "the others stay"
    assert "۱ کارشناس" in shown.text
    again = alerts(await coordinator.press_data(old, shown))
    assert again and "پیش‌تر" in again[0] and "گزارش" not in again[0], again


async def test_block_names_the_person_in_persian_digits(bot: Bot, settings: Settings) -> None:
    """The coordinator types «/block ۱۰۰۲» in Persian digits; the bot names the person in
    Persian digits, as every other number it shows."""
    await report(bot.user(1002))
    [answer] = texts(await bot.user(COORDINATOR).send("/block ۱۰۰۲"))
    assert "۱۰۰۲" in answer and "1002" not in answer, answer


async def test_the_private_triage_card_stops_offering_domains_once_placed_in_the_group(
    bot: Bot, settings: Settings
) -> None:
    """A coordinator opens a queued case from /cases in their private chat; meanwhile it is
    placed from the coordinators' group card. The private copy shows its eleven domain
    buttons no more: it says who placed it (the reverse way round:
    tests/test_desk_and_council_edges.py)."""
    await report(bot.user(1002), UNSURE)
    [queued] = [c for c in await cases_in(settings) if c.status == "triage"]
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/cases")
    await coordinator.press("صف تعیین حوزه")
    await coordinator.press(persian_digits(queued.code))
    [private_card] = [m for m in bot.api.delivered(COORDINATOR) if "نیاز به تعیین حوزه" in m.text]
    in_group = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await in_group.press("خدمات شهری")
    [placed] = await cases_in(settings)
    assert placed.status == "forwarded"
    shown = bot.api.messages[(private_card.chat_id, private_card.message_id)]
    assert not shown.buttons(), f"still offers {[b['text'] for b in shown.buttons()]}"


async def test_coordinator_can_act_on_an_escalated_case_from_their_own_chat(
    bot: Bot, settings: Settings
) -> None:
    """A water cut sent to the utilities company has waited 60 working hours unaccepted: the
    coordinators get «🚨 … هنوز پذیرفته نشده است». The coordinator looks it up with /find in
    their private chat (or /cases → the agency → the case), wanting to send it elsewhere or
    act on it, as the rules allow a coordinator to, without being in the agency's group: the
    view carries the card's reroute, and the case goes to the agency picked."""
    await report(bot.user(1003), WATER)
    [case] = await cases_in(settings)
    now = utcnow()
    calendar = WorkCalendar.configured(settings.deadlines)
    await handed_over_at(settings, [case.id], calendar.latest_start(now, timedelta(hours=60)))
    await check_deadlines(bot.jobs_runtime, now=now)
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/help")
    assert any("هنوز پذیرفته نشده" in t for t in delivered_texts(bot, COORDINATOR_CHAT))

    [found] = [c for c in await coordinator.send(f"/find {case.code}") if c.method == "sendMessage"]
    markup = found.params.get("reply_markup") or {}
    labels = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
    assert any("ارجاع" in label or "کارت" in label for label in labels), (
        f"under an escalated case the coordinator is offered only {labels}"
    )
    await coordinator.press("ارجاع به دستگاه دیگر")
    closed = await coordinator.press("انتظامی")
    [moved] = await cases_in(settings)
    assert moved.agency_key == "police" and moved.status == "forwarded"
    assert any("کلانتری" in c.text for c in closed if c.method == "editMessageText")
    await coordinator.send("/help")  # the outbox runs
    utilities = agency_chat(1)
    [card] = [m for m in bot.api.delivered(utilities) if m.buttons() or "کلانتری" in m.text]
    shown = bot.api.messages[(card.chat_id, card.message_id)]
    assert shown.buttons() == [] and "کلانتری" in shown.text, "the former agency's card closed"


async def test_a_district_broadcast_names_its_districts_where_it_is_confirmed(
    bot: Bot, settings: Settings
) -> None:
    """A water-cut notice for district 6: the screen that asks «ارسال شود؟» names the district
    chosen with buttons, not only the kind of audience."""
    await report(bot.user(1001))  # Yousefabad, district 6, opted in
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/broadcast")
    await coordinator.send("اطلاعیه: فردا آب منطقه از ساعت ۹ تا ۱۲ قطع است")
    await coordinator.press("ساکنان منطقه")
    await coordinator.press("منطقه ۶")
    await coordinator.press("تأیید")
    await coordinator.press("همین حالا")
    [summary] = [m for m in bot.api.delivered(COORDINATOR) if "ارسال شود؟" in m.text]
    assert "گیرندگان: ۱ نفر" in summary.text
    assert "منطقه ۶" in summary.text and "منطقه ۷" not in summary.text, summary.text


async def test_a_neighbourhood_name_that_matches_none_is_said_not_dropped(
    bot: Bot, settings: Settings
) -> None:
    """Of two neighbourhoods typed, one is misspelt beyond recognition: the coordinator is
    told which name added no one, and the summary names the one that matched."""
    await report(bot.user(1001))  # Yousefabad, opted in
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/broadcast")
    await coordinator.send("اطلاعیه: فردا از ساعت ۹ تا ۱۲ آب قطع است")
    await coordinator.press("ساکنان محله‌های انتخابی")
    [chosen, *_] = texts(await coordinator.send("یوسف آباد، زززخخخ"))
    assert "یوسف‌آباد" in chosen and "جور نشد" in chosen and "زززخخخ" in chosen, chosen
    summary = texts(await coordinator.press("همین حالا"))[-1]
    assert "گیرندگان: ۱ نفر" in summary and "یوسف‌آباد" in summary, summary


async def test_digest_counts_a_case_resolved_while_its_question_waited(
    bot: Bot, settings: Settings
) -> None:
    """The clerk asks the reporter a question, then resolves the case without waiting for the
    answer: the digest counts it resolved."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user(1007))
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply(QUESTION)
    await clerk.press("رسیدگی شد")
    await clerk.reply("سطل زباله تخلیه و شسته شد")
    assert (await cases_in(settings))[0].status == "resolved"
    await send_daily_digest(bot.jobs_runtime, now=utcnow())
    await bot.user(4242).send("/help")
    [digest] = [t for t in delivered_texts(bot, COORDINATOR_CHAT) if "خلاصهٔ روز" in t]
    assert "رسیدگی‌شده: ۱" in digest and "پذیرفته‌شده: ۱" in digest, digest
