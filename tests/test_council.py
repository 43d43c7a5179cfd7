"""The council: coordinators put cases and patterns on the next meeting's agenda, the secretary
sets its date and records decisions, the agenda goes to the members the day before, the
responsible agency works each decision on its card, deadlines chase it, the weekly report and
the export list it; driven chat by chat."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import jdatetime
import pytest
from sqlalchemy import func, select

from bot.config import CouncilMember, Settings
from bot.jalali import TEHRAN, utcnow
from bot.pipeline import check_deadlines, send_council_agendas, send_weekly_report
from models.db import create_engine, create_session_factory
from models.entities import CouncilDecision, DecisionEvent
from tests.conftest import COORDINATOR, Bot, make_settings
from tests.fakebot import alerts, texts
from tests.test_agency import MUNICIPALITY, add_staff, one_case, report

SECRETARY = 7001
MEMBER = 7002
OTHER_WASTE = "زباله‌های سر کوچه را یک هفته است کسی جمع نکرده و بوی بدی می‌دهد"
DECISION = "ساماندهی جمع‌آوری زباله در یوسف‌آباد تا پایان ماه"


def with_council(database_url: str) -> Settings:
    """The test config with a council: a secretary and one member of civil society."""
    base = make_settings(database_url, telegram={"rate_limit": False})
    members = [
        CouncilMember(id=SECRETARY, role="secretary", name="دبیر شورا"),
        CouncilMember(id=MEMBER, role="civil-society", name="نمایندهٔ سمن‌ها"),
    ]
    county = base.counties[0].model_copy(update={"council_members": members})
    return base.model_copy(update={"counties": [county]})


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council (`with_council`)."""
    return with_council(database_url)


def jalali_day(days_from_today: int) -> str:
    """A Tehran day from today, as the secretary types it."""
    day = (utcnow().astimezone(TEHRAN) + timedelta(days=days_from_today)).date()
    return str(jdatetime.date.fromgregorian(date=day).strftime("%Y/%m/%d"))


async def decision_rows(settings: Settings) -> tuple[list[tuple[str, str | None]], int]:
    """(status, progress) of every decision, and how many audit rows there are."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(CouncilDecision.status, CouncilDecision.progress).order_by(CouncilDecision.id)
        )
        found = [(str(s), p) for s, p in rows]
        events = await session.scalar(select(func.count()).select_from(DecisionEvent))
    await engine.dispose()
    return found, int(events or 0)


async def test_agenda_meeting_decision_from_start_to_weekly_report(
    bot: Bot, settings: Settings
) -> None:
    runtime = bot.jobs_runtime
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    await report(bot.user(1001))
    await report(bot.user(1002), OTHER_WASTE)
    case = await one_case_of(settings)
    coordinator = bot.user(COORDINATOR)
    # A case onto the agenda by its code, once.
    added = texts(await coordinator.send(f"/agenda_add {case}"))
    assert "در دستور جلسهٔ بعدی شورا گذاشته شد" in added[0]
    again = texts(await coordinator.send(f"/agenda_add {case}"))
    assert "از قبل در دستور جلسه" in again[0]
    # A pattern onto the agenda with one press under /stats.
    await coordinator.send("/stats")
    pressed = await coordinator.press("گزارش")
    assert "در دستور جلسهٔ بعدی شورا گذاشته شد" in alerts(pressed)[0]
    secretary, member = bot.user(SECRETARY), bot.user(MEMBER)
    await member.send("/start")
    agenda = texts(await member.send("/agenda"))[0]
    assert "تاریخ جلسه هنوز تعیین نشده" in agenda and "الگو:" in agenda and "گزارش" in agenda
    # The secretary sets the date (a bad one first), in their private chat.
    await secretary.send("/meeting")
    assert "درست نیست" in texts(await secretary.send("۱۴۰۵/۱۳/۴۰"))[0]
    tomorrow = jalali_day(1)
    assert "ثبت شد" in texts(await secretary.send(tomorrow))[0]
    # The agenda goes to the members on the day before, once.
    assert await send_council_agendas(runtime, now=utcnow() - timedelta(days=1)) == 0
    assert await send_council_agendas(runtime, now=utcnow()) == 2
    assert await send_council_agendas(runtime, now=utcnow()) == 0
    await bot.user(4242).send("/help")  # any update runs the outbox
    [sent] = [m.text for m in bot.api.delivered(MEMBER) if "تاریخ جلسه:" in m.text]
    assert "الگو:" in sent
    # A decision: text, agency (a button), deadline (Jalali), in the secretary's chat.
    await secretary.send("/decision")
    await secretary.send(DECISION)
    await secretary.press("شهرداری")
    recorded = texts(await secretary.send(jalali_day(2)))[0]
    assert "ثبت شد" in recorded and "شهرداری" in recorded
    await bot.user(4242).send("/help")
    [card] = [m for m in bot.api.delivered(MUNICIPALITY) if "مصوبهٔ شورای راهبری" in m.text]
    assert DECISION in card.text and "در انتظار پذیرش" in card.text
    # A stranger's press is refused with nothing changed.
    stranger = bot.in_group(3999, MUNICIPALITY, "غریبه")
    refused = await stranger.press("پذیرش مصوبه")
    assert "به دستگاه شما سپرده نشده" in alerts(refused)[0]
    assert await decision_rows(settings) == ([("open", None)], 1)
    # The agency accepts, reports progress in private, and is chased past the deadline.
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    await clerk.press("پذیرش مصوبه")
    await clerk.press("گزارش پیشرفت")
    noted = texts(await bot.user(2001).send("قرارداد پیمانکار امضا شد"))[0]
    assert "ثبت شد" in noted
    assert await decision_rows(settings) == ([("accepted", "قرارداد پیمانکار امضا شد")], 3)
    await bot.user(4242).send("/help")
    assert any("قرارداد پیمانکار" in m.text for m in bot.api.delivered(SECRETARY))
    due = (utcnow().astimezone(TEHRAN) + timedelta(days=3)).replace(hour=0, minute=0)
    await check_deadlines(runtime, now=due - timedelta(hours=2))
    await check_deadlines(runtime, now=due + timedelta(hours=1))
    await check_deadlines(runtime, now=due + timedelta(hours=2))  # once only
    await bot.user(4242).send("/help")
    reminders = [m.text for m in bot.api.delivered(MUNICIPALITY) if "به‌زودی تمام" in m.text]
    overdue = [m.text for m in bot.api.delivered(SECRETARY) if "گذشته است" in m.text]
    assert len(reminders) == 1 and len(overdue) == 1 and DECISION in overdue[0]
    # The weekly report lists it, overdue first; to the council's members too.
    await send_weekly_report(bot.jobs.bot, runtime, now=due + timedelta(hours=3))
    weekly = [m.text for m in bot.api.delivered(MEMBER) if "مصوبه‌های باز" in m.text]
    assert len(weekly) == 1 and "🚨" in weekly[0] and "گذشته" in weekly[0]
    [chart] = [c for c in bot.api.to_chat(MEMBER) if c.method == "sendPhoto"]
    assert settings.counties[0].name in chart.params["caption"]
    # Done; the export lists it as done, its text inert for spreadsheets.
    await clerk.press("انجام شد")
    assert (await decision_rows(settings))[0] == [("done", "قرارداد پیمانکار امضا شد")]
    exported = await secretary.send("/council_export")
    assert [c.method for c in exported].count("sendDocument") == 1
    report_after = texts(await member.send("/agenda"))[0]
    assert "دستور جلسه" in report_after


async def one_case_of(settings: Settings) -> str:
    """The first case's code as a person types it."""
    from bot.cards import code_for_display

    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        from models.entities import Case

        code = await session.scalar(select(Case.code).order_by(Case.id).limit(1))
    await engine.dispose()
    assert code is not None
    return code_for_display(code, "fa")


async def test_only_coordinators_add_and_only_the_secretary_decides(
    bot: Bot, settings: Settings
) -> None:
    await report(bot.user(1001))
    case = await one_case(settings)
    member = bot.user(MEMBER)
    assert "فقط دبیرخانه" in texts(await member.send(f"/agenda_add {case.code}"))[0]
    assert "فقط دبیر شورای راهبری" in texts(await member.send("/decision"))[0]
    assert "فقط دبیر شورای راهبری" in texts(await bot.user(COORDINATOR).send("/meeting"))[0]
    assert "ویژهٔ دبیرخانه و اعضای شورا" in texts(await bot.user(1001).send("/agenda"))[0]
    assert await decision_rows(settings) == ([], 0)
    # The members' /stats is read-only figures: no buttons under them.
    [figures] = [c for c in await member.send("/stats") if c.method == "sendMessage"]
    assert "گزارش" in figures.text and not figures.params.get("reply_markup")


async def test_export_keeps_a_formula_like_decision_inert_and_states_it(
    bot: Bot, settings: Settings
) -> None:
    secretary = bot.user(SECRETARY)
    await secretary.send("/decision")
    await secretary.send('=HYPERLINK("http://x.example","click")')
    await secretary.press("بهزیستی")
    await secretary.send(jalali_day(5))
    calls = await secretary.send("/council_export")
    [sent] = [c for c in calls if c.method == "sendDocument"]
    name, content, _ = sent.files["document"]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert name.endswith(".csv") and rows[0][:2] == ["شماره", "متن مصوبه"]
    assert rows[1][1].startswith("'=HYPERLINK") and rows[1][2] == "بهزیستی"
    assert rows[1][4] == "در انتظار پذیرش" and rows[1][7] == ""
    assert "ویژهٔ دبیرخانه" in texts(await bot.user(1001).send("/council_export"))[0]


async def test_an_empty_week_is_said_in_words(bot: Bot, settings: Settings) -> None:
    await bot.user(MEMBER).send("/start")
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=utcnow())
    [text] = [m.text for m in bot.api.delivered(MEMBER) if "هیچ گزارشی ثبت نشد" in m.text]
    assert "مصوبهٔ بازی نمانده است" in text
    assert "چهار هفتهٔ پیش (از نزدیک به دور): ۰ / ۰ / ۰ / ۰ — میانگین ۰" in text


def test_council_texts_exist_in_english_too() -> None:
    from bot.i18n import Translator

    t = Translator.load()
    assert t("decision-card-title", "en", number=3) == "📌 Council decision no. 3"
    assert "deadline" in t("decision-overdue", "en", number=3, agency="A", date="d", text="x")
