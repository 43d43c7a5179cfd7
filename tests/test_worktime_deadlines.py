"""The deadline job in working time: deadlines run in office hours only, reminders to agency
groups wait for the morning, and urgent domains' escalations reach the coordinators at once."""

from __future__ import annotations

from datetime import UTC, datetime, time

import jdatetime
from sqlalchemy import select

from bot.config import Settings
from bot.digits import persian_digits
from bot.jalali import TEHRAN
from bot.pipeline import check_deadlines
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseEvent
from tests.conftest import COORDINATOR_CHAT, Bot
from tests.test_agency import one_case, report
from tests.test_desk import MUNICIPALITY, POLICE

BURGLARY = "دیشب دزد از پشت‌بام وارد خانه همسایه شد و طلاهایشان را برد"
REMINDER, ESCALATION = "یادآوری", "پذیرفته نشده"


def jalali(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Tehran moment given by its Jalali date."""
    gregorian = jdatetime.date(year, month, day).togregorian()
    return datetime.combine(gregorian, time(hour, minute), TEHRAN)


async def hand_over_at(settings: Settings, case_id: int, moment: datetime) -> None:
    """Pretend the case reached its agency at `moment`."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        for event in await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)):
            event.created_at = moment.astimezone(UTC)
        case = await session.get(Case, case_id)
        assert case is not None
        case.handed_over_at = case.forwarded_at = moment.astimezone(UTC)
        await session.commit()
    await engine.dispose()


async def delivered(bot: Bot, chat_id: int, marker: str) -> list[str]:
    """Texts with `marker` that reached a chat, after the outbox has run."""
    await bot.user(4242).send("/help")  # any update runs the outbox
    return [m.text for m in bot.api.delivered(chat_id) if marker in m.text]


async def test_security_case_filed_thursday_afternoon_escalates_in_saturday_office_hours(
    bot: Bot, settings: Settings
) -> None:
    runtime = bot.jobs_runtime
    await report(bot.user(), BURGLARY)
    case = await one_case(settings)
    assert case.domain_key == "security"  # 2 working hours to accept, 6 to escalation
    await hand_over_at(settings, case.id, jalali(1405, 9, 19, 13))  # Thursday 13:00
    saturday = jalali(1405, 9, 21)
    assert await check_deadlines(runtime, now=saturday.replace(hour=6)) == 0, (
        "Thursday afternoon and Friday are not working time, nor Saturday before 07:30"
    )
    assert await check_deadlines(runtime, now=saturday.replace(hour=9, minute=20)) == 0
    assert await check_deadlines(runtime, now=saturday.replace(hour=9, minute=30)) == 1  # remind
    assert await check_deadlines(runtime, now=saturday.replace(hour=13, minute=20)) == 0
    assert await check_deadlines(runtime, now=saturday.replace(hour=13, minute=30)) == 1
    [escalation] = await delivered(bot, COORDINATOR_CHAT, ESCALATION)
    assert persian_digits(case.code) in escalation
    assert len(await delivered(bot, POLICE, REMINDER)) == 1


async def test_reminder_due_at_night_waits_for_the_morning(bot: Bot, settings: Settings) -> None:
    runtime = bot.jobs_runtime
    await report(bot.user())
    case = await one_case(settings)
    assert case.domain_key == "municipal"  # 24 working hours to accept, 48 to escalation
    # Saturday 11:25: 3h05 on Saturday + 7 h on each of Sunday to Tuesday = 24h05 by Tuesday
    # closing, so the reminder fell due at Tuesday 14:25, after the last run of the day.
    await hand_over_at(settings, case.id, jalali(1405, 9, 14, 11, 25))
    wednesday = jalali(1405, 9, 18)
    assert await check_deadlines(runtime, now=wednesday.replace(hour=2)) == 0
    assert await delivered(bot, MUNICIPALITY, REMINDER) == []
    assert await check_deadlines(runtime, now=wednesday.replace(hour=7, minute=20)) == 0
    assert await check_deadlines(runtime, now=wednesday.replace(hour=7, minute=30)) == 1
    [reminder] = await delivered(bot, MUNICIPALITY, REMINDER)
    assert persian_digits(case.code) in reminder
    assert await check_deadlines(runtime, now=wednesday.replace(hour=7, minute=40)) == 0
    assert await delivered(bot, COORDINATOR_CHAT, ESCALATION) == [], "48 working hours not yet"


async def test_escalation_of_an_ordinary_domain_waits_for_office_hours(
    bot: Bot, settings: Settings
) -> None:
    runtime = bot.jobs_runtime
    await report(bot.user())
    case = await one_case(settings)
    # Wednesday 1405/09/11 07:30 → 48 working hours: Wed 7, Thu 4.5, Sat to Wed 5 × 7 = 35,
    # Thursday 1405/09/19 1.5 more: due Thursday 09:00 a week later; checked that night.
    await hand_over_at(settings, case.id, jalali(1405, 9, 11, 7, 30))
    thursday_night = jalali(1405, 9, 19, 23)
    assert await check_deadlines(runtime, now=thursday_night) == 0
    saturday = jalali(1405, 9, 21, 7, 30)
    # The reminder, the escalation to accept, and the one to resolve (7 working days of 7 hours
    # = 49 hours, passed on Thursday 11:00).
    assert await check_deadlines(runtime, now=saturday) == 3
    assert len(await delivered(bot, COORDINATOR_CHAT, ESCALATION)) == 1


async def test_urgent_escalation_at_night_goes_at_once(bot: Bot, settings: Settings) -> None:
    runtime = bot.jobs_runtime
    await report(bot.user(), BURGLARY)
    case = await one_case(settings)  # security: urgent in the example config
    # Sunday 08:00: 2 working hours to accept (10:00), 6 to escalation (14:00). The job first
    # runs at 23:00 (the worker was down all afternoon).
    await hand_over_at(settings, case.id, jalali(1405, 9, 15, 8))
    assert await check_deadlines(runtime, now=jalali(1405, 9, 15, 23)) == 1, "the escalation only"
    [escalation] = await delivered(bot, COORDINATOR_CHAT, ESCALATION)
    assert persian_digits(case.code) in escalation
    assert await delivered(bot, POLICE, REMINDER) == [], "the agency's group is quiet at night"
    assert await check_deadlines(runtime, now=jalali(1405, 9, 16, 7, 30)) == 1  # the reminder
    assert len(await delivered(bot, POLICE, REMINDER)) == 1
    assert len(await delivered(bot, COORDINATOR_CHAT, ESCALATION)) == 1, "sent once"
