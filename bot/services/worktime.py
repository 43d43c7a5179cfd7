"""Working time in Tehran: office hours of Saturday to Wednesday and Thursday morning, without
Iran's public holidays (solar and lunar, from the maintained `holidays` package, so next year's
are known without anyone typing them) or the county's own extra days off. Deadlines count only
this time, and reminders wait for it, so nobody is chased at night or over Nowruz."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import holidays as holiday_tables
import jdatetime

from bot.config import DeadlineSettings
from bot.jalali import TEHRAN, jalali_year, parse_jalali_date

log = logging.getLogger(__name__)

SATURDAY, THURSDAY, FRIDAY = 5, 3, 4  # Python weekdays
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_SEARCH = timedelta(days=3660)
# The year whose holidays must be known at start-up: the one we are in 60 days from now.
LOOKAHEAD = timedelta(days=60)

# A Gregorian year → Iran's national holidays in it, with their (Persian) names.
HolidaySource = Callable[[int], Mapping[date, str]]


@functools.cache
def iran_holidays(year: int) -> Mapping[date, str]:
    """Iran's public holidays of one Gregorian year from the `holidays` package, Persian names."""
    return dict(holiday_tables.country_holidays("IR", years=year, language="fa_IR"))


def national_source() -> HolidaySource:
    """Where national holidays come from (tests put an empty or fixed source here)."""
    return iran_holidays


def holiday_dates(jalali_days: Iterable[str]) -> set[date]:
    """Gregorian dates of Jalali holiday strings ('1405/01/01')."""
    found = set()
    for day in jalali_days:
        moment = parse_jalali_date(day)
        if moment is not None:
            found.add(moment.astimezone(TEHRAN).date())
    return found


class Holidays:
    """National holidays, read a Gregorian year at a time from a source, plus local days."""

    def __init__(self, *, local: Iterable[date] = (), source: HolidaySource | None = None) -> None:
        self.local = set(local)
        self.source = source
        self._years: dict[int, Container[date]] = {}

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        if day in self.local:
            return True
        if self.source is None:
            return False
        if day.year not in self._years:
            self._years[day.year] = set(self.source(day.year))
        return day in self._years[day.year]


@dataclass(frozen=True)
class WorkingHours:
    """Office hours in Tehran: `starts`–`ends` on Saturday to Wednesday, `starts`–
    `thursday_ends` on Thursday (no earlier than `starts`: Thursday off)."""

    starts: time = time(7, 30)
    ends: time = time(14, 30)
    thursday_ends: time = time(12, 0)

    def day_length(self) -> timedelta:
        """The working time of a full Saturday-to-Wednesday day."""
        return _between(self.starts, self.ends)


def _between(earlier: time, later: time) -> timedelta:
    """How long from `earlier` to `later` on one day (nothing if `later` is not later)."""
    day = date(2000, 1, 1)
    return max(datetime.combine(day, later) - datetime.combine(day, earlier), timedelta(0))


def _clock(hhmm: str) -> time:
    """'07:30' → 07:30 (the config checked the shape)."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    return time(hour, minute)


def working_hours(rules: DeadlineSettings) -> WorkingHours:
    """The office hours the config sets."""
    return WorkingHours(
        starts=_clock(rules.work_starts),
        ends=_clock(rules.work_ends),
        thursday_ends=_clock(rules.thursday_ends),
    )


def _window(
    day: date, holidays: Container[date], hours: WorkingHours
) -> tuple[datetime, datetime] | None:
    """The working part of one Tehran day, or None for Fridays, holidays and a closed Thursday."""
    if day.weekday() == FRIDAY or day in holidays:
        return None
    ends = hours.thursday_ends if day.weekday() == THURSDAY else hours.ends
    if ends <= hours.starts:
        return None
    return datetime.combine(day, hours.starts, TEHRAN), datetime.combine(day, ends, TEHRAN)


class WorkCalendar:
    """Working time between two moments in constant time: each Tehran day's working seconds are
    summed once into a running total, so `/stats` over a month of open cases costs a lookup per
    case instead of a walk over the days between."""

    def __init__(
        self,
        *,
        working_days: bool,
        holidays: Container[date],
        hours: WorkingHours | None = None,
    ) -> None:
        self.working_days = working_days
        self.holidays = holidays
        self.hours = hours or WorkingHours()
        self._first: date | None = None
        # Each Tehran day's office hours as POSIX seconds ((0, 0) for a day off).
        self._opens: dict[date, tuple[float, float]] = {}
        # _before[i]: working seconds from the first day up to (not including) day i.
        self._before: list[float] = [0.0]

    @classmethod
    def configured(
        cls, rules: DeadlineSettings, *, source: HolidaySource | None = None
    ) -> WorkCalendar:
        """The calendar the config describes: office hours, national holidays (unless turned
        off) and the local extra days."""
        national = (source or national_source()) if rules.national_holidays else None
        return cls(
            working_days=rules.working_days,
            holidays=Holidays(local=holiday_dates(rules.holidays), source=national),
            hours=working_hours(rules),
        )

    def days(self, count: float) -> timedelta:
        """`count` working days as working time (calendar days when working days are off)."""
        if not self.working_days:
            return timedelta(days=count)
        return self.hours.day_length() * count

    def is_working(self, moment: datetime) -> bool:
        """Whether `moment` falls in office hours (always, when working days are off)."""
        if not self.working_days:
            return True
        window = _window(moment.astimezone(TEHRAN).date(), self.holidays, self.hours)
        return window is not None and window[0] <= moment < window[1]

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (calendar time when working days are off)."""
        if end <= start:
            return timedelta(0)
        if not self.working_days:
            return end - start
        first_day, last_day = start.astimezone(TEHRAN).date(), end.astimezone(TEHRAN).date()
        if self._first is None or not (
            self._first <= first_day
            and last_day < self._first + timedelta(days=len(self._before) - 1)
        ):
            self._cover(first_day, last_day + timedelta(days=1))
        worked = self._worked_by(end, last_day) - self._worked_by(start, first_day)
        return timedelta(seconds=worked)

    def latest_start(self, end: datetime, amount: timedelta) -> datetime:
        """The latest moment from which `amount` of working time has passed by `end`: a case
        handed over then or earlier is late. Found by bisection on `elapsed`, which never grows
        as the start moves later, so the answer agrees with `elapsed` to the microsecond."""
        latest = end - amount  # working time never exceeds calendar time
        if self.elapsed(latest, end) >= amount:
            return latest
        step = max(amount, timedelta(days=1))
        earliest = latest - step
        while self.elapsed(earliest, end) < amount:
            if latest - earliest > MAX_SEARCH:  # every day a holiday: nothing is ever late
                return datetime.min.replace(tzinfo=UTC)
            step *= 2
            earliest = latest - step
        late, early = 0, (latest - earliest) // ONE_MICROSECOND  # offsets back from `latest`
        while early - late > 1:  # elapsed(latest - early) >= amount > elapsed(latest - late)
            middle = (late + early) // 2
            if self.elapsed(latest - middle * ONE_MICROSECOND, end) >= amount:
                early = middle
            else:
                late = middle
        return latest - early * ONE_MICROSECOND

    def _worked_by(self, moment: datetime, day: date) -> float:
        """Working seconds from the first day the totals reach up to `moment`, on Tehran's `day`
        (which the totals reach): a difference of two of these is the working time between two
        moments, whatever lies between them."""
        assert self._first is not None
        opens = self._opens.get(day)
        if opens is None:
            window = _window(day, self.holidays, self.hours)
            opens = self._opens[day] = (
                (window[0].timestamp(), window[1].timestamp()) if window else (0.0, 0.0)
            )
        done = min(max(moment.timestamp() - opens[0], 0.0), opens[1] - opens[0])
        return self._before[(day - self._first).days] + done

    def _cover(self, first: date, last: date) -> None:
        """Extend the running totals to reach from `first` to `last`."""
        if self._first is None or first < self._first:
            start = first if self._first is None else min(first, self._first)
            self._first, self._before = start, [0.0]
        day = self._first + timedelta(days=len(self._before) - 1)
        while day <= last:
            window = _window(day, self.holidays, self.hours)
            whole = (window[1] - window[0]).total_seconds() if window else 0.0
            self._before.append(self._before[-1] + whole)
            day += timedelta(days=1)


def national_holidays_in_jalali_year(year: int, source: HolidaySource) -> dict[date, str]:
    """The national holidays the source knows in one Jalali year (which spans two Gregorian)."""
    first = jdatetime.date(year, 1, 1).togregorian()
    after = jdatetime.date(year + 1, 1, 1).togregorian()
    found: dict[date, str] = {}
    for gregorian_year in range(first.year, after.year + 1):
        found |= {d: n for d, n in source(gregorian_year).items() if first <= d < after}
    return found


def missing_holidays_warning(
    rules: DeadlineSettings, *, now: datetime, source: HolidaySource | None = None
) -> str | None:
    """One line for the log when working time is counted with national holidays but the source
    knows none for the coming Jalali year (an old `holidays` package); else None."""
    if not (rules.working_days and rules.national_holidays):
        return None
    year = jalali_year(now + LOOKAHEAD)
    if national_holidays_in_jalali_year(year, source or national_source()):
        return None
    return (
        f"deadlines: no national holidays known for the Jalali year {year}; every day but Friday "
        f"counts as working time. Upgrade the 'holidays' package, or list the year's holidays "
        f"in [deadlines] holidays"
    )


def warn_if_holidays_run_out(rules: DeadlineSettings, *, now: datetime) -> None:
    """At start-up: a WARNING if the coming year's national holidays are unknown."""
    if warning := missing_holidays_warning(rules, now=now):
        log.warning(warning)
