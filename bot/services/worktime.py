"""Working time in Tehran: Saturday to Wednesday, Thursday until noon, no public holidays."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from bot.jalali import TEHRAN, parse_jalali_date

SATURDAY, THURSDAY, FRIDAY = 5, 3, 4  # Python weekdays
THURSDAY_CLOSES = time(12, 0)
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_SEARCH = timedelta(days=3660)


def holiday_dates(jalali_days: Iterable[str]) -> set[date]:
    """Gregorian dates of Jalali holiday strings ('1405/01/01')."""
    found = set()
    for day in jalali_days:
        moment = parse_jalali_date(day)
        if moment is not None:
            found.add(moment.astimezone(TEHRAN).date())
    return found


def _window(day: date, holidays: set[date]) -> tuple[datetime, datetime] | None:
    """The working part of one Tehran day, or None for Fridays and holidays."""
    if day.weekday() == FRIDAY or day in holidays:
        return None
    start = datetime.combine(day, time(0, 0), TEHRAN)
    end = (
        datetime.combine(day, THURSDAY_CLOSES, TEHRAN)
        if day.weekday() == THURSDAY
        else start + timedelta(days=1)
    )
    return start, end


class WorkCalendar:
    """Working time between two moments in constant time: each Tehran day's working seconds are
    summed once into a running total, so `/stats` over a month of open cases costs a lookup per
    case instead of a walk over the days between."""

    def __init__(self, *, working_days: bool, holidays: set[date]) -> None:
        self.working_days = working_days
        self.holidays = holidays
        self._first: date | None = None
        # _before[i]: working seconds from the first day up to (not including) day i.
        self._before: list[float] = [0.0]

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (calendar time when working days are off)."""
        if end <= start:
            return timedelta(0)
        if not self.working_days:
            return end - start
        first_day, last_day = start.astimezone(TEHRAN).date(), end.astimezone(TEHRAN).date()
        if first_day == last_day:
            return timedelta(seconds=self._overlap(first_day, start, end))
        seconds = (
            self._overlap(first_day, start, end)
            + self._seconds_between(first_day + timedelta(days=1), last_day)
            + self._overlap(last_day, start, end)
        )
        return timedelta(seconds=seconds)

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

    def _overlap(self, day: date, start: datetime, end: datetime) -> float:
        window = _window(day, self.holidays)
        if window is None:
            return 0.0
        return max((min(window[1], end) - max(window[0], start)).total_seconds(), 0.0)

    def _seconds_between(self, first: date, last: date) -> float:
        """Working seconds of the whole days from `first` up to (not including) `last`."""
        if last <= first:
            return 0.0
        self._cover(first, last)
        assert self._first is not None
        return self._before[(last - self._first).days] - self._before[(first - self._first).days]

    def _cover(self, first: date, last: date) -> None:
        """Extend the running totals to reach from `first` to `last`."""
        if self._first is None or first < self._first:
            start = first if self._first is None else min(first, self._first)
            self._first, self._before = start, [0.0]
        day = self._first + timedelta(days=len(self._before) - 1)
        while day <= last:
            window = _window(day, self.holidays)
            whole = (window[1] - window[0]).total_seconds() if window else 0.0
            self._before.append(self._before[-1] + whole)
            day += timedelta(days=1)
