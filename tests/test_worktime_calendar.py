"""Working time: national holidays of every year (solar and lunar), local extra days, office
hours, the start-up warning when next year's holidays are unknown, and the config's checks."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path

import holidays
import hypothesis
import jdatetime
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, DeadlineSettings, Settings, load_settings
from bot.jalali import TEHRAN
from bot.services import worktime
from bot.services.deadlines import OverdueCheck
from bot.services.worktime import Holidays, WorkCalendar, WorkingHours, missing_holidays_warning
from tests.conftest import EXAMPLE_CONFIG, make_settings
from tests.fakebot import start_bot, stop_bot
from tests.test_config import write_config


def example() -> Settings:
    """The shipped example config."""
    return load_settings(EXAMPLE_CONFIG, environ={})


def jalali(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Tehran moment given by its Jalali date."""
    gregorian = jdatetime.date(year, month, day).togregorian()
    return datetime.combine(gregorian, time(hour, minute), TEHRAN)


def whole_day(calendar: WorkCalendar, moment: datetime) -> timedelta:
    """Working time in the Tehran day of `moment`."""
    start = moment.replace(hour=0, minute=0)
    return calendar.elapsed(start, start + timedelta(days=1))


def ashura_1405() -> date:
    """Ashura of 1405 as the holidays package dates it (in the summer of 2026)."""
    found = holidays.country_holidays("IR", years=2026).get_named("Ashura")
    assert len(found) == 1
    return found[0]


def test_nowruz_1406_is_not_working_time() -> None:
    calendar = OverdueCheck(example().deadlines).calendar
    for day in range(1, 5):  # 1 to 4 Farvardin 1406, Sunday to Wednesday
        assert whole_day(calendar, jalali(1406, 1, day)) == timedelta(0), f"1406/01/0{day}"
    # The working days around it still count, in office hours only.
    assert whole_day(calendar, jalali(1406, 1, 7)) == timedelta(hours=7)  # a Saturday
    week = calendar.elapsed(jalali(1406, 1, 1), jalali(1406, 1, 6))  # Sunday to Friday
    assert week == timedelta(hours=4.5), "only Thursday morning, 1406/01/05, is working time"


def test_ashura_1405_and_tasua_are_not_working_time() -> None:
    ashura = ashura_1405()
    assert jdatetime.date.fromgregorian(date=ashura).year == 1405
    calendar = OverdueCheck(example().deadlines).calendar
    noon = datetime.combine(ashura, time(10, 0), TEHRAN)
    assert whole_day(calendar, noon) == timedelta(0)
    assert whole_day(calendar, noon - timedelta(days=1)) == timedelta(0), "Tasua"
    assert calendar.elapsed(noon - timedelta(days=2), noon) > timedelta(0), "the day before is not"


def test_a_national_holiday_has_its_persian_name() -> None:
    names = worktime.iran_holidays(ashura_1405().year)
    assert "عاشورا" in names[ashura_1405()]
    assert "نوروز" in worktime.iran_holidays(2027)[jalali(1406, 1, 1).date()]


def test_a_local_day_from_the_config_is_not_working_time() -> None:
    settings = example()
    local_day = jalali(1405, 9, 18, 10)  # Wednesday 9 December 2026: no national holiday
    plain = OverdueCheck(settings.deadlines).calendar
    assert whole_day(plain, local_day) == timedelta(hours=7)
    rules = settings.deadlines.model_copy(update={"holidays": ["1405/09/18"]})
    assert whole_day(OverdueCheck(rules).calendar, local_day) == timedelta(0)
    only_local = rules.model_copy(update={"national_holidays": False})
    calendar = OverdueCheck(only_local).calendar
    assert whole_day(calendar, local_day) == timedelta(0)
    assert whole_day(calendar, jalali(1406, 1, 1)) == timedelta(hours=7), "national days off"


def test_office_hours_are_the_only_working_time() -> None:
    calendar = OverdueCheck(example().deadlines).calendar
    sunday = jalali(1405, 9, 15)  # 6 December 2026
    assert calendar.elapsed(sunday, sunday.replace(hour=7, minute=30)) == timedelta(0)
    assert calendar.elapsed(sunday.replace(hour=14, minute=30), sunday + timedelta(days=1)) == (
        timedelta(0)
    )
    assert calendar.elapsed(sunday.replace(hour=2), sunday.replace(hour=9)) == timedelta(hours=1.5)
    assert not calendar.is_working(sunday.replace(hour=2))
    assert calendar.is_working(sunday.replace(hour=7, minute=30))
    assert not calendar.is_working(sunday.replace(hour=14, minute=30))
    thursday = jalali(1405, 9, 19)
    assert whole_day(calendar, thursday) == timedelta(hours=4.5)
    assert not calendar.is_working(thursday.replace(hour=12, minute=5))
    assert OverdueCheck(example().deadlines).calendar.days(7) == timedelta(hours=49), (
        "resolve_days counts working days of 7 hours, not 7 x 24 working hours"
    )


def _walk(start: datetime, end: datetime, days_off: set[date], hours: WorkingHours) -> timedelta:
    """Every day's office hours one by one: the oracle for the running totals."""
    total, day = timedelta(0), start.astimezone(TEHRAN).date()
    while day <= end.astimezone(TEHRAN).date():
        closes = hours.thursday_ends if day.weekday() == 3 else hours.ends
        if day.weekday() != 4 and day not in days_off and closes > hours.starts:
            opens = datetime.combine(day, hours.starts, TEHRAN)
            shuts = datetime.combine(day, closes, TEHRAN)
            total += max(min(shuts, end) - max(opens, start), timedelta(0))
        day += timedelta(days=1)
    return total


@hypothesis.settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    opens=st.integers(min_value=0, max_value=11 * 4),
    hours_open=st.integers(min_value=1, max_value=12 * 4),
    thursday=st.integers(min_value=-4, max_value=12 * 4),
)
def test_running_totals_agree_with_walking_the_days_for_any_office_hours(
    start: datetime, length: timedelta, opens: int, hours_open: int, thursday: int
) -> None:
    quarter = timedelta(minutes=15)
    moment = datetime(2000, 1, 1)
    starts = moment + opens * quarter
    hours = WorkingHours(
        starts=starts.time(),
        ends=(starts + hours_open * quarter).time(),
        thursday_ends=(starts + max(min(thursday, hours_open), 0) * quarter).time(),
    )
    days_off = Holidays(local={date(2026, 12, 9)}, source=worktime.iran_holidays)
    calendar = WorkCalendar(working_days=True, holidays=days_off, hours=hours)
    begin = start.replace(tzinfo=TEHRAN)
    national = {
        d for year in range(2024, 2030) for d in worktime.iran_holidays(year) if d.year == year
    }
    assert calendar.elapsed(begin, begin + length) == _walk(
        begin, begin + length, national | {date(2026, 12, 9)}, hours
    )


def test_no_national_holidays_for_the_coming_year_is_warned_about() -> None:
    rules = example().deadlines
    now = jalali(1405, 11, 20, 12)  # 60 days on is in 1406
    assert missing_holidays_warning(rules, now=now) is None, "the package knows 1406"
    warning = missing_holidays_warning(rules, now=now, source=lambda year: {})
    assert warning is not None and "1406" in warning and "\n" not in warning
    assert missing_holidays_warning(rules, now=jalali(1405, 9, 1), source=lambda year: {})
    off = rules.model_copy(update={"national_holidays": False})
    assert missing_holidays_warning(off, now=now, source=lambda year: {}) is None
    # A source that knows only 1405 (up to 20 March 2027) leaves 1406 unknown.
    only_1405 = {date(2026, 6, 25): "عاشورا"}
    assert missing_holidays_warning(rules, now=now, source=lambda year: only_1405) is not None


async def test_start_up_warns_once_when_the_source_knows_nothing_of_next_year(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, telegram={"rate_limit": False})
    monkeypatch.setattr(worktime, "national_source", lambda: lambda year: {})
    with caplog.at_level(logging.WARNING):
        app, _ = await start_bot(settings, role="worker")
        await stop_bot(app)
    found = [r for r in caplog.records if "no national holidays" in r.getMessage()]
    assert len(found) == 1 and found[0].levelno == logging.WARNING
    assert "\n" not in found[0].getMessage()
    caplog.clear()
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        app, _ = await start_bot(settings, role="worker")
        await stop_bot(app)
    assert not [r for r in caplog.records if "no national holidays" in r.getMessage()]


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ('work_ends = "14:30"', r"deadlines: .*work_ends 07:00 must be later than work_starts"),
        ('work_starts = "07:30"', r"deadlines\.work_starts: String should match"),
        ('thursday_ends = "12:00"', r"deadlines: .*thursday_ends 15:00 must not be after"),
        ("urgent_domains = [", r"deadlines: .*urgent_domains: unknown domain fire"),
        ("holidays = []", r"deadlines: .*holiday '1405/12/30' is not a Jalali date"),
    ],
)
def test_wrong_office_hours_or_days_name_the_key(
    tmp_path: Path, replace: str, message: str
) -> None:
    wrong = {
        'work_ends = "14:30"': 'work_ends = "07:00"',
        'work_starts = "07:30"': 'work_starts = "7:30"',
        'thursday_ends = "12:00"': 'thursday_ends = "15:00"',
        "urgent_domains = [": 'urgent_domains = ["fire", ',
        "holidays = []": 'holidays = ["1405/12/30"]',  # 1405 is not a leap year
    }
    path = write_config(tmp_path, (replace, wrong[replace]))
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_defaults_describe_a_tehran_office() -> None:
    rules = DeadlineSettings()
    assert (rules.work_starts, rules.work_ends, rules.thursday_ends) == ("07:30", "14:30", "12:00")
    assert rules.urgent_domains == ["security", "family"] and rules.national_holidays
