"""Working time in Tehran: Saturday to Wednesday, Thursday until noon, no public holidays."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from bot.jalali import TEHRAN, parse_jalali_date

SATURDAY, THURSDAY, FRIDAY = 5, 3, 4  # Python weekdays
THURSDAY_CLOSES = time(12, 0)


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


def elapsed(
    start: datetime,
    end: datetime,
    *,
    working_days: bool,
    holidays: set[date],
    enough: timedelta | None = None,
) -> timedelta:
    """Time between two moments, counting only working time when asked to. With `enough`, the
    count may stop once it reaches that much (callers that only compare with a deadline)."""
    if not working_days:
        return max(end - start, timedelta(0))
    total = timedelta(0)
    day = start.astimezone(TEHRAN).date()
    last = end.astimezone(TEHRAN).date()
    while day <= last and (enough is None or total < enough):
        window = _window(day, holidays)
        if window is not None:
            overlap = min(window[1], end) - max(window[0], start)
            total += max(overlap, timedelta(0))
        day += timedelta(days=1)
    return total
