"""The coordinator's desk: local groups, deadlines, digest, statistics, weekly report, exports."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import random
import statistics
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import jdatetime
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.digits import persian_digits
from bot.i18n import Translator
from bot.jalali import TEHRAN, format_date
from bot.pipeline import check_deadlines, send_daily_digest
from bot.reports import EXPORT_COLUMN_KEYS, export_rows, weekly_chart, write_export
from bot.services import stats
from bot.services.deadlines import OverdueCheck
from bot.services.reference import sync_reference_data
from bot.services.worktime import WorkCalendar, holiday_dates
from models.db import create_engine, create_session_factory
from models.entities import Agency, Case, CaseEvent, CaseStatus, Domain, Neighbourhood, Staff
from tests.conftest import (
    COORDINATOR,
    COORDINATOR_CHAT,
    EXAMPLE_CONFIG,
    Bot,
    agency_chat,
    make_settings,
)
from tests.fakebot import ApiCall, ChatUser, alerts, texts
from tests.test_agency import add_staff, one_case, report
from tests.test_privacy import report_with_phone
from tests.test_report_flow import DESCRIPTION, cases_in

MUNICIPALITY = agency_chat(0)
POLICE = agency_chat(2)
Sessions = async_sessionmaker[AsyncSession]


# --- local groups ---------------------------------------------------------------------------


async def apply_for_group(
    founder: ChatUser, name: str, place: str, purpose: str = "پاکسازی پارک‌ها و کاشت درخت"
) -> list[ApiCall]:
    """A resident asks to register a group in a neighbourhood; returns the bot's last answer."""
    await founder.send("/group")
    await founder.send(name)
    await founder.send(purpose)
    await founder.send(place)
    return await founder.press(place)


async def register_group(bot: Bot, founder_id: int = 1101) -> str:
    """A resident registers a group and a coordinator approves it; returns the members' link."""
    founder = bot.user(founder_id)
    answer = await apply_for_group(founder, "دوستداران محیط زیست جهاد", "جهاد")
    assert "دبیرخانه" in texts(answer)[0]
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    [request] = [m for m in bot.api.delivered(COORDINATOR_CHAT) if "تشکل" in m.text]
    assert "دوستداران محیط زیست جهاد" in request.text
    await coordinator.press("تأیید")
    approved = founder.last_text
    assert "تأیید شد" in approved
    return approved.split("start=")[1].strip()


async def test_group_registration_approval_membership_and_reporting_on_its_behalf(
    bot: Bot, settings: Settings
) -> None:
    payload = await register_group(bot)
    member = bot.user(1102)
    assert "عضو" in texts(await member.send(f"/start {payload}"))[0]
    await member.send("📝 گزارش جدید")
    await member.send("جهاد")
    await member.press("جهاد")
    await member.send(DESCRIPTION)
    await member.send("ادامه ⬅️")
    await member.send("🙈 ناشناس بمانم")
    await member.press("دوستداران محیط زیست")
    assert "از طرف" in member.api.to_chat(member.user_id)[-1].text
    await member.press("ثبت گزارش")
    case = await one_case(settings)
    assert case.group_id is not None
    [card] = [m for m in bot.api.delivered(MUNICIPALITY) if DESCRIPTION in m.text]
    assert "دوستداران محیط زیست جهاد" in card.text


async def test_refused_groups_cannot_be_joined_and_only_coordinators_decide(bot: Bot) -> None:
    founder = bot.user(1101)
    await apply_for_group(founder, "گروه آزمایشی", "جهاد", purpose="کارهای داوطلبانه")
    outsider = bot.in_group(2001, COORDINATOR_CHAT, "رهگذر")
    assert "دبیرخانه" in alerts(await outsider.press("تأیید"))[0]
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await coordinator.press("رد")
    assert "تأیید نشد" in founder.last_text
    reply = texts(await bot.user(1102).send("/start grp_doesnotexist"))[0]
    assert "معتبر نیست" in reply


async def test_reporters_without_groups_are_not_asked(bot: Bot) -> None:
    resident = bot.user(1103)
    await report(resident)
    assert not any("از طرف خودم" in label for label in resident.button_labels())


# --- deadlines ------------------------------------------------------------------------------


def tehran(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=TEHRAN)


def test_working_time_skips_fridays_thursday_afternoons_and_holidays() -> None:
    holidays = holiday_dates(["1405/09/03"])  # Monday 24 November 2026
    working = WorkCalendar(working_days=True, holidays=holidays)
    wednesday_noon = tehran(2026, 11, 25, 12)
    saturday_noon = tehran(2026, 11, 28, 12)
    # Office hours 07:30–14:30, Thursday until 12:00: Wed 12:00→14:30 (2.5 h) + Thursday
    # 07:30→12:00 (4.5 h) + Saturday 07:30→12:00 (4.5 h); Friday none.
    assert working.elapsed(wednesday_noon, saturday_noon) == timedelta(hours=11.5)
    calendar = WorkCalendar(working_days=False, holidays=holidays)
    assert calendar.elapsed(wednesday_noon, saturday_noon) == timedelta(days=3)
    sunday, tuesday = tehran(2026, 11, 23), tehran(2026, 11, 25)
    assert working.elapsed(sunday, tuesday) == timedelta(hours=7), "the holiday is skipped"


def _walk_the_days(start: datetime, end: datetime, holidays: set[date]) -> timedelta:
    """The obvious way: every day's working window, one by one (the oracle for the fast one)."""
    total, day = timedelta(0), start.astimezone(TEHRAN).date()
    while day <= end.astimezone(TEHRAN).date():
        closes = time(12) if day.weekday() == 3 else time(14, 30)
        if day.weekday() != 4 and day not in holidays:
            opens = datetime.combine(day, time(7, 30), TEHRAN)
            shuts = datetime.combine(day, closes, TEHRAN)
            total += max(min(shuts, end) - max(opens, start), timedelta(0))
        day += timedelta(days=1)
    return total


@hypothesis.settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    order=st.permutations(range(3)),
)
def test_fast_working_time_agrees_with_walking_the_days(
    start: datetime, length: timedelta, order: list[int]
) -> None:
    holidays = holiday_dates(["1405/09/03", "1405/12/29", "1404/01/01", "1406/01/12"])
    calendar = WorkCalendar(working_days=True, holidays=holidays)
    spans = [
        (start.replace(tzinfo=TEHRAN) + shift, start.replace(tzinfo=TEHRAN) + shift + length)
        for shift in (timedelta(0), timedelta(days=-40), timedelta(days=45))
    ]
    for index in order:  # the running totals grow backwards and forwards
        begin, end = spans[index]
        assert calendar.elapsed(begin, end) == _walk_the_days(begin, end, holidays)


@hypothesis.settings(max_examples=300, deadline=None)
@given(
    end=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
    amount=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=20)),
    probe=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
)
def test_latest_late_hand_over_agrees_with_working_time(
    end: datetime, amount: timedelta, probe: timedelta
) -> None:
    calendar = WorkCalendar(
        working_days=True, holidays=holiday_dates(["1405/09/03", "1405/12/29", "1406/01/01"])
    )
    now = end.replace(tzinfo=UTC)
    latest = calendar.latest_start(now, amount)
    assert calendar.elapsed(latest, now) >= amount
    assert calendar.elapsed(latest + timedelta(microseconds=1), now) < amount
    handed_over = now - probe
    assert (handed_over <= latest) == (calendar.elapsed(handed_over, now) >= amount)


async def test_statistics_agree_with_going_through_the_cases_one_by_one(
    database_url: str,
) -> None:
    """Overdue as the deadline job decides it, medians as Python's `statistics` works them out
    (hours to accept in working time, to resolve in calendar hours)."""
    settings = make_settings(
        database_url, deadlines={"holidays": ["1405/09/03", "1405/08/24"]}
    )  # a Monday and a Saturday holiday among the example's working-time rules
    now = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)  # a Thursday morning
    check = OverdueCheck(settings.deadlines)
    edge = check.late_if_handed_over_by(waiting=True, domain_key=None, now=now)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        await sync_reference_data(session=session, settings=settings)
        places = list((await session.scalars(select(Neighbourhood.id))).all())
        domains = [
            (d.key, d.agency_kind)
            for d in (await session.scalars(select(Domain))).all()
            if d.agency_kind
        ]
        rng = random.Random(5)
        moments = [now - timedelta(seconds=rng.uniform(0, 20 * 86400)) for _ in range(400)]
        moments += [edge, edge + timedelta(microseconds=1), now, now - timedelta(days=19)]
        rows = []
        for n, handed_over in enumerate(moments):
            domain, agency = rng.choice(domains)
            status = rng.choice([*CaseStatus])
            rows.append(
                _generated_case(n, places[n % len(places)], domain, agency, status, handed_over)
            )
        rows[-4]["domain_key"] = rows[-3]["domain_key"] = "utilities"  # no rule of its own
        rows[-4]["status"] = rows[-3]["status"] = CaseStatus.FORWARDED
        for row in rows[:300]:
            row["accepted_at"] = row["forwarded_at"] + timedelta(hours=rng.uniform(0.1, 90))
            if rng.random() < 0.6:
                row["resolved_at"] = row["accepted_at"] + timedelta(hours=rng.uniform(1, 300))
        await session.execute(insert(Case), rows)
        await session.commit()
        figures = await stats.collect(
            session, settings=settings, start=now - timedelta(days=30), end=now, now=now
        )
        names = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
    await engine.dispose()
    overdue: Counter[str] = Counter()
    hours: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        kinds = check.kinds(
            status=row["status"], domain_key=row["domain_key"], since=row["handed_over_at"], now=now
        )
        name = names[row["agency_key"]]
        overdue[name] += any(kind != "remind" for kind in kinds)
        if "accepted_at" in row:  # in working time, as the deadlines count it
            taken = check.calendar.elapsed(row["forwarded_at"], row["accepted_at"])
            hours[name, "accepted_at"].append(taken.total_seconds() / 3600)
        if "resolved_at" in row:
            taken = row["resolved_at"] - row["forwarded_at"]
            hours[name, "resolved_at"].append(taken.total_seconds() / 3600)
    found = {a.name: round(a.overdue_rate * a.cases) for a in figures.agencies}
    assert found == {name: overdue[name] for name in found}
    assert sum(found.values()) > 20, "the generated cases include overdue ones"
    for figure in figures.agencies:
        for median, milestone in (
            (figure.median_accept_hours, "accepted_at"),
            (figure.median_resolve_hours, "resolved_at"),
        ):
            assert median == pytest.approx(
                statistics.median(hours[figure.name, milestone]), abs=1e-3
            )
    sizes = {len(values) % 2 for values in hours.values()}
    assert sizes == {0, 1}, "medians of odd and even counts are both checked"


def _generated_case(
    n: int, place: int, domain: str, agency: str, status: str, handed_over: datetime
) -> dict[str, Any]:
    """A case row as the statistics read it, filed when it was handed over."""
    return {
        "id": n + 1, "code": f"1405-{n + 1:05d}", "year": 1405, "sequence": n + 1,
        "draft_token": f"stats-{n}", "neighbourhood_id": place, "text_original": "گزارش",
        "text_normalized": "گزارش", "photo_file_ids": [], "status": status,
        "domain_key": domain, "agency_key": agency, "created_at": handed_over,
        "updated_at": handed_over, "forwarded_at": handed_over, "handed_over_at": handed_over,
    }  # fmt: skip


async def _age(settings: Settings, case_id: int, hours: float) -> datetime:
    """Pretend the case was handed over `hours` ago (in calendar time); returns that moment."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        events = (
            await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id))
        ).all()
        moment = datetime.now(UTC) - timedelta(hours=hours)
        for event in events:
            event.created_at = moment
        await session.commit()
    await engine.dispose()
    return moment


async def test_reminder_then_escalation_each_once_even_across_restarts(
    bot: Bot, settings: Settings
) -> None:
    hours_24 = {"deadlines": settings.deadlines.model_copy(update={"working_days": False})}
    runtime = bot.jobs_runtime
    runtime.settings = settings_24h = runtime.settings.model_copy(update=hours_24)
    await report(bot.user())
    case = await one_case(settings)
    await _age(settings, case.id, 30)  # past 24 h to accept, before the 48 h escalation
    now = datetime.now(UTC)
    assert await check_deadlines(runtime, now=now) == 1
    assert await check_deadlines(runtime, now=now + timedelta(minutes=10)) == 0, (
        "once per threshold"
    )
    await bot.user().send("/help")  # any update runs the outbox
    reminders = [m for m in bot.api.delivered(MUNICIPALITY) if "یادآوری" in m.text]
    assert len(reminders) == 1 and persian_digits(case.code) in reminders[0].text

    later = now + timedelta(hours=20)  # 50 h: escalation
    assert await check_deadlines(runtime, now=later) == 1
    runtime.settings = settings_24h  # a "restart" changes nothing: the record is in the database
    assert await check_deadlines(runtime, now=later + timedelta(hours=1)) == 0
    await bot.user().send("/help")
    escalations = [m for m in bot.api.delivered(COORDINATOR_CHAT) if "پذیرفته نشده" in m.text]
    assert len(escalations) == 1


async def test_security_has_a_shorter_deadline_and_accepting_stops_reminders(
    bot: Bot, settings: Settings
) -> None:
    runtime = bot.jobs_runtime
    runtime.settings = runtime.settings.model_copy(
        update={"deadlines": settings.deadlines.model_copy(update={"working_days": False})}
    )
    await report(bot.user(), "دیشب دزد از پشت‌بام وارد خانه همسایه شد و طلاهایشان را برد")
    case = await one_case(settings)
    assert case.domain_key == "security"
    await _age(settings, case.id, 3)  # security: 2 h to accept
    assert await check_deadlines(runtime, now=datetime.now(UTC)) == 1
    await add_staff(settings, 2002, "police", "احمدی")
    await bot.in_group(2002, POLICE, "احمدی").press("پذیرش")
    assert await check_deadlines(runtime, now=datetime.now(UTC) + timedelta(hours=1)) == 0


async def test_daily_digest_counts_the_day_once(bot: Bot, settings: Settings) -> None:
    await report(bot.user(1001))
    await report(bot.user(1002), "سلام، یه سوال داشتم درباره این ربات و اینکه چطوری کار میکنه")
    runtime = bot.jobs_runtime
    now = datetime.now(UTC)
    assert await send_daily_digest(runtime, now=now)
    assert not await send_daily_digest(runtime, now=now + timedelta(minutes=5))
    await bot.user().send("/help")
    [digest] = [m for m in bot.api.delivered(COORDINATOR_CHAT) if "خلاصهٔ روز" in m.text]
    assert "گزارش تازه: ۲" in digest.text and "در انتظار تعیین حوزه: ۱" in digest.text


# --- statistics, weekly report, exports -----------------------------------------------------


async def test_statistics_figures(bot: Bot, settings: Settings, session_factory: Sessions) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1001)
    await report(resident)
    await report(bot.user(1002), "چاله بزرگ وسط خیابان اصلی محله هنوز پر نشده است و خطرناک است")
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    cases = await cases_in(settings)
    async with session_factory() as session:
        accepted = (
            await session.scalars(select(CaseEvent).where(CaseEvent.to_status == "accepted"))
        ).one()
        forwarded = (
            await session.scalars(
                select(CaseEvent).where(
                    CaseEvent.to_status == "forwarded", CaseEvent.case_id == accepted.case_id
                )
            )
        ).one()
        # Accepted three working hours after it was forwarded (a Sunday morning, 08:00 to 11:00
        # in Tehran): the audit row and the case's milestones.
        accepted.created_at = forwarded.created_at + timedelta(hours=3)
        accepted_case = await session.get(Case, accepted.case_id)
        assert accepted_case is not None and accepted_case.forwarded_at is not None
        sunday_morning = datetime(2026, 11, 29, 8, 0, tzinfo=TEHRAN)
        accepted_case.forwarded_at = sunday_morning
        accepted_case.accepted_at = sunday_morning + timedelta(hours=3)
        case = await session.get(Case, cases[0].id)
        assert case is not None
        case.rating, case.reopen_count = 4, 1
        await session.commit()
        now = datetime.now(UTC) + timedelta(hours=4)
        figures = await stats.collect(
            session, settings=settings, start=now - timedelta(days=7), end=now, now=now
        )
    assert figures.total == 2
    assert dict(figures.by_status) == {"forwarded": 1, "accepted": 1}
    assert dict(figures.by_domain) == {"خدمات شهری": 2}
    assert dict(figures.by_district) == {"منطقه ۶": 2}
    [municipality] = figures.agencies
    assert municipality.cases == 2 and municipality.median_accept_hours == 3.0
    assert municipality.reopen_rate == 0.5 and municipality.rating == 4.0
    assert figures.rating == 4.0 and figures.ratings == 1

    translate = Translator.load()
    png = weekly_chart(figures, lambda k, **v: translate(k, "fa", **v), "fa")
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


async def test_stats_command_for_coordinators_only(bot: Bot) -> None:
    await report(bot.user(1001))
    reply = texts(await bot.user(COORDINATOR).send("/stats"))[0]
    assert "آمار از" in reply and "۱ گزارش" in reply and "خدمات شهری: ۱" in reply
    edits = [
        c for c in await bot.user(COORDINATOR).press("این ماه") if c.method == "editMessageText"
    ]
    assert "آمار از" in edits[0].text and "۱ گزارش" in edits[0].text
    assert "فرمان" in texts(await bot.user(1001).send("/stats"))[0]


async def test_exports_open_back_with_jalali_dates_and_consented_phones_only(
    bot: Bot, settings: Settings, session_factory: Sessions, tmp_path: Path
) -> None:
    await report_with_phone(bot, 1001)
    await report(bot.user(1002), "چاله بزرگ وسط خیابان اصلی محله هنوز پر نشده است و خطرناک است")
    translate = Translator.load()

    def t(key: str, /, **values: object) -> str:
        return translate(key, "fa", **values)

    now = datetime.now(UTC)
    cases = await cases_in(settings)
    header = [t(k) for k in EXPORT_COLUMN_KEYS]
    for file_format in ("csv", "xlsx"):
        path = tmp_path / f"out.{file_format}"
        async with session_factory() as session:
            rows = export_rows(
                session,
                start=now - timedelta(days=1),
                end=now + timedelta(days=1),
                t=t,
                language="fa",
            )
            assert await write_export(rows, header, path, file_format) == 2
        if file_format == "csv":
            raw = path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf"), "BOM, so Excel reads Persian"
            table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        else:
            sheet = load_workbook(path).active
            assert sheet is not None
            table = [
                [str(c) if c is not None else "" for c in row]
                for row in sheet.iter_rows(values_only=True)
            ]
        assert table[0] == header
        first, second = table[1], table[2]
        assert first[0] == persian_digits(cases[0].code)
        assert first[1].startswith(format_date(cases[0].created_at)), "Jalali date, Persian digits"
        quote = "'" if file_format == "csv" else ""  # a CSV phone opens as text behind a quote
        assert first[header.index(t("export-phone"))] == quote + "+989121234567"
        assert second[header.index(t("export-phone"))] == "", "anonymous reporters stay anonymous"
        assert first[header.index(t("export-text"))] == DESCRIPTION


async def test_export_command_sends_a_file_and_the_cli_writes_one(
    bot: Bot, settings: Settings, tmp_path: Path
) -> None:
    await report(bot.user(1001))
    calls = await bot.user(COORDINATOR).send("/export")
    [document] = [c for c in calls if c.method == "sendDocument"]
    name, content, _ = document.files["document"]
    assert name.endswith(".csv") and content.startswith(b"\xef\xbb\xbf")
    assert "۱۴۰۵-۰۰۰۰۱" in content.decode("utf-8-sig")
    assert "فرمان" in texts(await bot.user(1001).send("/export"))[0], "not for residents"

    day = jdatetime.date.fromgregorian(date=datetime.now(TEHRAN).date()).strftime("%Y/%m/%d")
    output = tmp_path / "cases.xlsx"
    command = ["export", "--from", day, "--to", day, "--format", "xlsx", "--output", str(output)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *command, "--config", str(EXAMPLE_CONFIG),
        env={**os.environ, "MAHALLE_DATABASE_URL": settings.database.url},
    )  # fmt: skip
    assert await process.wait() == 0
    sheet = load_workbook(output).active
    assert sheet is not None and sheet.max_row == 2 and sheet.sheet_view.rightToLeft


async def test_staff_list_and_removal(
    bot: Bot, settings: Settings, session_factory: Sessions
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    coordinator = bot.user(COORDINATOR)
    reply = texts(await coordinator.send("/staff"))[0]
    assert "۱ کارشناس" in reply
    await coordinator.press("رضایی")
    async with session_factory() as session:
        assert (await session.scalars(select(Staff))).all() == []


async def test_agencies_are_checked_live(bot: Bot) -> None:
    """A chat the bot cannot reach is told apart from one where, on Bale, it is not an admin
    (Bale answers getChatMember only to admins)."""
    bot.api.fail = lambda call: (
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if call.method in {"getChatMember", "getChat"} and call.params.get("chat_id") == POLICE
        else None
    )
    bot.api.admin_in.add(MUNICIPALITY)
    lines = texts(await bot.user(COORDINATOR).send("/agencies"))[0].splitlines()
    [municipality] = [line for line in lines if "شهرداری منطقه" in line]
    [police] = [line for line in lines if "کلانتری / فراجا" in line]
    [schools] = [line for line in lines if "آموزش و پرورش" in line]
    assert municipality.startswith("✅") and police.startswith("❌")
    if bot.api.dialect.member_needs_admin:
        assert schools.startswith("☑️") and "مدیر" in schools, "in the group, not an admin"
    else:
        assert schools.startswith("✅")


async def test_weekly_report_sends_a_chart_and_the_figures(bot: Bot) -> None:
    from bot.pipeline import send_weekly_report

    await report(bot.user(1001))
    # On the Saturday morning after the week the case was filed in.
    saturday = stats.week_start(datetime.now(UTC)) + timedelta(days=7, hours=8)
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=saturday)
    [photo] = [c for c in bot.api.to_chat(COORDINATOR_CHAT) if c.method == "sendPhoto"]
    assert photo.files["photo"][1].startswith(b"\x89PNG")
    figures = [c.text for c in bot.api.to_chat(COORDINATOR_CHAT) if c.method == "sendMessage"][-1]
    assert "۱ گزارش" in figures and "شهرداری منطقه" in figures
