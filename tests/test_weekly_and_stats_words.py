"""The council's weekly report and /stats as people read them: a report with many open
decisions arrives in several messages to every member, one unreachable member stopping no one;
the average of the earlier weeks keeps its fraction; /stats for typed dates is headed with the
last day typed; the period words of /stats are taken in Persian as in English; and a council
member who asks for a period beyond this week is told that members see this week's figures."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.config import Settings
from bot.jalali import utcnow
from bot.pipeline import send_weekly_report
from bot.services.stats import report_week
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import texts
from tests.test_agency import report
from tests.test_council import MEMBER, SECRETARY, with_council
from tests.test_desk_news import handed_over_at
from tests.test_report_flow import cases_in

WATER = "آب محله از دیروز صبح قطع است و هیچ کس جواب نمی‌دهد"
WORDING = (
    "ساماندهی جمع‌آوری زباله و پاک‌سازی معابر محله‌های یوسف‌آباد و جهاد با همکاری شهرداری"
    " منطقه و سرای محله، و گزارش پیشرفت هر دو هفته به دبیرخانه شورا"
)


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council: a secretary and one member."""
    return with_council(database_url)


async def thirty_open_decisions(bot: Bot, settings: Settings, now: datetime) -> None:
    """The council recorded thirty decisions, each a sentence or two, all still open."""
    from bot.services import council

    runtime = bot.jobs_runtime
    async with runtime.session_factory() as session:
        for n in range(30):
            await council.record_decision(
                session, settings=runtime.settings, cards=runtime.card_renderer,
                county_key=settings.counties[0].key, text=f"{WORDING} ({n})",
                agency_key="municipality", deadline_at=now + timedelta(days=20), by=SECRETARY,
                now=now,
            )  # fmt: skip
        await session.commit()


def delivered_texts(bot: Bot, chat_id: int) -> list[str]:
    """The texts that reached `chat_id`."""
    return [m.text for m in bot.api.delivered(chat_id)]


async def test_weekly_report_reaches_the_council_with_thirty_open_decisions(
    bot: Bot, settings: Settings
) -> None:
    """Thirty open decisions outgrow one message: the figures and the whole list arrive in
    several messages, each within Telegram's limit, to every member."""
    now = utcnow()
    await thirty_open_decisions(bot, settings, now)
    await bot.user(MEMBER).send("/start")
    await bot.user(SECRETARY).send("/start")
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=now)
    for person in (MEMBER, SECRETARY):
        got = delivered_texts(bot, person)
        whole = "\n".join(got)
        assert "مصوبه‌های باز شورا (۳۰)" in whole, f"{person} did not get the open decisions"
        listed = [line for line in whole.splitlines() if line.startswith("• شمارهٔ")]
        assert len(listed) == 30, f"{person} got {len(listed)} of the thirty decisions"
        assert len(got) > 1
        assert all(len(t.encode("utf-16-le")) // 2 <= 4096 for t in got)


async def test_one_unreachable_member_stops_no_one_else(bot: Bot, settings: Settings) -> None:
    """A member the bot cannot reach (they blocked it) is passed over; the one after them still
    receives the chart and the figures."""
    now = utcnow()
    await bot.user(SECRETARY).send("/start")
    first, *_ = [m.id for m in settings.counties[0].council_members]
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
    bot.api.fail = lambda call: (403, blocked) if call.chat_id == first else None
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=now)
    for person in {SECRETARY, MEMBER} - {first}:
        assert any("مصوبه" in t for t in delivered_texts(bot, person)), person


async def test_weekly_report_average_of_earlier_weeks_is_not_floored_to_zero(
    bot: Bot, settings: Settings
) -> None:
    """Three reports two weeks ago, none since: the four earlier weeks average ۰٫۸, not ۰."""
    for n in range(3):
        await report(bot.user(1001 + n), WATER)
    ids = [c.id for c in await cases_in(settings)]
    now = utcnow() + timedelta(days=7)
    start, _ = report_week(now)
    await handed_over_at(settings, ids, start - timedelta(days=10))
    await bot.user(MEMBER).send("/start")
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=now)
    [line] = [
        line
        for t in delivered_texts(bot, MEMBER)
        for line in t.splitlines()
        if "چهار هفتهٔ پیش" in line
    ]
    assert "۳" in line, line
    assert line.endswith("میانگین ۰٫۸"), line


async def test_stats_for_typed_dates_names_the_last_day_typed(bot: Bot, settings: Settings) -> None:
    """«/stats ۱۴۰۵/۰۹/۰۱ ۱۴۰۵/۰۹/۳۰» is headed with Azar's first and last days, and a single
    day typed twice names that day at both ends."""
    coordinator = bot.user(COORDINATOR)
    [month] = texts(await coordinator.send("/stats ۱۴۰۵/۰۹/۰۱ ۱۴۰۵/۰۹/۳۰"))
    assert month.startswith("📈 آمار از ۱ آذر ۱۴۰۵ تا ۳۰ آذر ۱۴۰۵"), month.splitlines()[0]
    [day] = texts(await coordinator.send("/stats ۱۴۰۵/۰۹/۱۶ ۱۴۰۵/۰۹/۱۶"))
    assert day.startswith("📈 آمار از ۱۶ آذر ۱۴۰۵ تا ۱۶ آذر ۱۴۰۵"), day.splitlines()[0]


@pytest.mark.parametrize("typed", ["ماه", "این ماه", "month", "Month"])
async def test_stats_takes_the_month_in_persian_too(
    bot: Bot, settings: Settings, typed: str
) -> None:
    """The month is asked for in Persian or in English, as a word or as the button reads."""
    [answer] = texts(await bot.user(COORDINATOR).send(f"/stats {typed}"))
    [month] = texts(await bot.user(COORDINATOR).send("/stats month"))
    assert answer.splitlines()[0] == month.splitlines()[0], answer


@pytest.mark.parametrize("typed", ["هفته", "هفتة", "این هفته"])
async def test_stats_takes_the_week_in_persian_too(
    bot: Bot, settings: Settings, typed: str
) -> None:
    """The week is asked for in Persian, Arabic letters typed for Persian ones taken too."""
    [answer] = texts(await bot.user(COORDINATOR).send(f"/stats {typed}"))
    [week] = texts(await bot.user(COORDINATOR).send("/stats"))
    assert answer.splitlines()[0] == week.splitlines()[0], answer


async def test_a_council_member_asking_for_the_month_is_not_given_the_week_unsaid(
    bot: Bot, settings: Settings
) -> None:
    """A council member who asks for the month reads that members see this week's figures,
    then this week's figures; one who asks for the week is given them without a word more."""
    await report(bot.user(1001))
    member = bot.user(MEMBER)
    [week] = texts(await member.send("/stats"))
    [asked] = texts(await member.send("/stats ماه"))
    said, _, figures = asked.partition("\n\n")
    assert "هفته" in said, asked
    assert figures == week
    [plain] = texts(await member.send("/stats هفته"))
    assert plain == week


async def test_export_takes_the_month_in_persian_too(bot: Bot, settings: Settings) -> None:
    """«/export ماه» is this month's cases as a file, as "/export month" is."""
    await report(bot.user(1001))
    calls = await bot.user(COORDINATOR).send("/export ماه")
    assert [c.method for c in calls if c.method == "sendDocument"] == ["sendDocument"]
    assert not any("نمونه" in text for text in texts(calls))
