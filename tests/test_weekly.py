"""The council's weekly report and the agenda button on the case card, driven chat by chat: the
report covers the last Saturday-to-Friday week in Tehran, names the county and the week once,
compares the week with the four before it, counts each agency's open, resolved and overdue
cases, gives the hours to accept in working time, and says an empty week in words; a
coordinator's press puts a case on the next agenda once, anyone else's changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import CouncilMember, Settings
from bot.i18n import Translator
from bot.pipeline import send_weekly_report
from bot.reports import weekly_figure
from bot.services.stats import AgencyWeek, Stats
from models.db import create_engine, create_session_factory
from models.entities import AgendaItem, Case, CaseStatus
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, make_settings
from tests.fakebot import alerts, texts
from tests.test_agency import report

MEMBER = 7002
TEHRAN_CLOCK = timedelta(hours=3, minutes=30)
# The report's Saturday morning: Saturday 5 December 2026 (14 Azar 1405), 08:00 in Tehran. Its
# week is Saturday 28 November to Friday 4 December (7 to 13 Azar); no public holiday in it.
SATURDAY = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)
WEEK = "۷ تا ۱۳ آذر ۱۴۰۵"


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council member who receives the report."""
    base = make_settings(database_url, telegram={"rate_limit": False})
    members = [CouncilMember(id=MEMBER, role="civil-society", name="نمایندهٔ سمن‌ها")]
    county = base.counties[0].model_copy(update={"council_members": members})
    return base.model_copy(update={"counties": [county]})


def tehran(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    """A moment of late 2026 on Tehran's clock, as the UTC the database keeps."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - TEHRAN_CLOCK


async def shape_cases(settings: Settings, changes: list[dict[str, Any]]) -> None:
    """Give the cases (oldest first) the times, statuses and agencies of the story."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        cases = list((await session.scalars(select(Case).order_by(Case.id))).all())
        assert len(cases) == len(changes)
        for case, values in zip(cases, changes, strict=True):
            for name, value in values.items():
                setattr(case, name, value)
        await session.commit()
    await engine.dispose()


async def agenda_rows(settings: Settings) -> int:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(AgendaItem))
    await engine.dispose()
    return int(count or 0)


def filed(at: datetime, agency: str, status: str, **more: Any) -> dict[str, Any]:
    """A case filed and handed to `agency` at `at`."""
    return {
        "created_at": at, "forwarded_at": at, "handed_over_at": at, "agency_key": agency,
        "status": status, "accepted_at": None, "resolved_at": None, **more,
    }  # fmt: skip


async def test_the_weekly_report_covers_saturday_to_friday_in_working_hours(
    bot: Bot, settings: Settings
) -> None:
    agencies = settings.counties[0].agencies
    municipality, police = agencies[0], agencies[2]
    for resident in range(1001, 1007):
        await report(bot.user(resident))
    await shape_cases(
        settings,
        [
            # Friday night, the week's last evening: counted, open, not yet overdue.
            filed(tehran(4, 21), municipality.key, CaseStatus.FORWARDED),
            # The report's own Saturday morning: not this week's.
            filed(tehran(5, 7), municipality.key, CaseStatus.FORWARDED),
            # Eight days before the report: the week before, resolved then.
            filed(
                tehran(27, 8, month=11),
                municipality.key,
                CaseStatus.RESOLVED,
                resolved_at=tehran(27, 10, month=11),
            ),
            # Thursday evening, accepted on Saturday at 09:30: two working hours (Thursday's
            # office closes at noon, Friday is off, Saturday opens at 07:30).
            filed(
                tehran(3, 18), municipality.key, CaseStatus.ACCEPTED, accepted_at=tehran(5, 9, 30)
            ),
            # Resolved by the police in the week.
            filed(
                tehran(29, 9, month=11),
                police.key,
                CaseStatus.RESOLVED,
                resolved_at=tehran(1, 10),
            ),
            # Three weeks back and never accepted: open and overdue at the week's end.
            filed(tehran(15, 9, month=11), municipality.key, CaseStatus.FORWARDED),
        ],
    )
    await bot.user(MEMBER).send("/start")
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=SATURDAY)
    [chart] = [c for c in bot.api.to_chat(MEMBER) if c.method == "sendPhoto"]
    [text] = [m.text for m in bot.api.delivered(MEMBER) if "آمار هفته" in m.text]
    caption = chart.params["caption"]
    county = settings.counties[0].name
    # The county and the week, named once: in the chart's caption.
    assert caption == f"📊 گزارش هفتگی {county} — هفتهٔ {WEEK}"
    assert county not in text and "آذر" not in text
    assert chart.files["photo"][1].startswith(b"\x89PNG")
    # Friday night, Thursday evening and the police's case; not Saturday's, not the old ones.
    assert text.startswith("📈 آمار هفته — ۳ گزارش")
    assert "این هفته ۳ گزارش؛ چهار هفتهٔ پیش (از نزدیک به دور): ۱ / ۱ / ۰ / ۰" in text
    # Each agency at the end of the week.
    assert f"• {municipality.name}: ۳ باز · ۰ رسیدگی‌شده · ۱ گذشته از مهلت" in text
    assert f"• {police.name}: ۰ باز · ۱ رسیدگی‌شده · ۰ گذشته از مهلت" in text
    # Thursday 18:00 to Saturday 09:30 is 39.5 hours on the clock, two in working time.
    [line] = [row for row in text.splitlines() if row.startswith(f"• {municipality.name}: ۲ گزارش")]
    assert "· ۲ ساعت کاری /" in line
    assert "ساعت کاری تا پذیرش" in text


async def test_an_empty_week_says_so_in_words_and_on_the_chart(
    bot: Bot, settings: Settings
) -> None:
    await bot.user(MEMBER).send("/start")
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=SATURDAY)
    [text] = [m.text for m in bot.api.delivered(MEMBER) if "آمار هفته" in m.text]
    assert text.startswith("📈 آمار هفته — ۰ گزارش\nاین هفته هیچ گزارشی ثبت نشد.")
    assert "بر حسب وضعیت" not in text and "میانگین رضایت" not in text
    [chart] = [c for c in bot.api.to_chat(MEMBER) if c.method == "sendPhoto"]
    assert chart.params["caption"].endswith(WEEK)


def chart_words(figure: Any) -> list[str]:
    """Every text drawn on the chart's panels: titles, bar labels, sentences."""
    words = []
    for axis in figure.axes:
        words += [axis.get_title()] + [text.get_text() for text in axis.texts]
    return words


def test_the_chart_labels_its_bars_and_words_its_empty_panels() -> None:
    translate = Translator.load()

    def t(key: str, /, **values: object) -> str:
        return translate(key, "fa", **values)

    start = SATURDAY - timedelta(days=7)
    busy = Stats(start=start, end=SATURDAY, total=12, by_domain=[("خدمات شهری", 12)])
    agencies = [AgencyWeek("شهرداری", open=7, resolved=5, overdue=2)]
    words = chart_words(weekly_figure(busy, t, "fa", earlier=[9, 4, 0, 3], agencies=agencies))
    for value in ("۱۲", "۹", "۴", "۰", "۳", "۷", "۵", "۲"):
        assert value in words, value
    assert t("chart-no-accept") in words  # no agency accepted a case: said in words
    quiet = Stats(start=start, end=SATURDAY)
    words = chart_words(weekly_figure(quiet, t, "fa", earlier=[0, 0, 0, 0]))
    assert words.count("در این هفته گزارشی ثبت نشد") == 3


async def test_the_agenda_button_works_for_coordinators_only_and_once(
    bot: Bot, settings: Settings
) -> None:
    await report(bot.user(1001))
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        code = await session.scalar(select(Case.code))
    await engine.dispose()
    assert code is not None
    # In the county's coordinators' group a coordinator looks the case up; the card has the
    # button, and a clerk who is in the group presses it: nothing changes.
    in_group = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await in_group.send(code)
    clerk = bot.in_group(2001, COORDINATOR_CHAT, "رهگذر")
    refused = alerts(await clerk.press("به دستور جلسهٔ شورا"))
    assert "کار هماهنگ‌کنندگان شهرستان است" in refused[0]
    # A resident replaying the same button's data: refused as well.
    data = in_group.data_of("به دستور جلسهٔ شورا")
    resident = bot.user(1001)
    assert "کار هماهنگ‌کنندگان" in alerts(await resident.press_data(data))[0]
    assert await agenda_rows(settings) == 0
    # The coordinator, in their private chat: /find, then the button; once.
    coordinator = bot.user(COORDINATOR)
    found = await coordinator.send(f"/find {code}")
    assert any("به دستور جلسهٔ شورا" in label for label in coordinator.button_labels()), found
    added = alerts(await coordinator.press("به دستور جلسهٔ شورا"))
    assert "در دستور جلسهٔ بعدی شورا گذاشته شد" in added[0]
    again = alerts(await coordinator.press("به دستور جلسهٔ شورا"))
    assert "از قبل در دستور جلسهٔ بعدی شورا هست" in again[0]
    assert await agenda_rows(settings) == 1
    # The same press in the group: already there.
    assert "از قبل" in alerts(await in_group.press("به دستور جلسهٔ شورا"))[0]
    assert await agenda_rows(settings) == 1
    agenda = texts(await coordinator.send("/agenda"))[0]
    assert "گزارش" in agenda and "هنوز موردی" not in agenda
