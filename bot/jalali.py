"""Jalali dates in Tehran time, and tracking codes people can read out on the phone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jdatetime

from bot.digits import ascii_digits, ltr, persian_digits

TEHRAN = ZoneInfo("Asia/Tehran")
_JDATE_LOCALE = {"fa": "fa_IR", "en": "en_US"}
SEQUENCE_WIDTH = 5

# Year, a separator people might type (hyphen, slash, dash variants, space), then the sequence.
_CODE_PATTERN = r"([0-9۰-۹٠-٩]{4})\s*[-‐–—_/\s]\s*([0-9۰-۹٠-٩]{1,7})"
CODE_RE = re.compile(rf"^\s*{_CODE_PATTERN}\s*$")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (what the database stores)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives stored times back without a zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _as_tehran(moment: datetime, language: str = "fa") -> jdatetime.datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return jdatetime.datetime.fromgregorian(
        datetime=aware.astimezone(TEHRAN), locale=_JDATE_LOCALE.get(language, "fa_IR")
    )


def jalali_year(moment: datetime) -> int:
    """The Jalali year of a moment, as seen in Tehran."""
    return int(_as_tehran(moment).year)


def format_date(moment: datetime, language: str = "fa") -> str:
    """'۴ آذر ۱۴۰۵' (Persian) or '4 Azar 1405' (English), in Tehran time."""
    local = _as_tehran(moment, language)
    text = f"{local.day} {local.strftime('%B')} {local.year}"
    return persian_digits(text) if language == "fa" else text


def format_week(
    start: datetime, end: datetime, language: str = "fa", *, until: str, year: bool = True
) -> str:
    """The days of [start, end) as people name a week, the two joined by `until` (the locale's
    "week-until"): '15 to 21 Azar 1405', '29 Aban to 5 Azar 1405', or with both years when it
    spans two; the year left out with `year=False`."""
    first, last = _as_tehran(start, language), _as_tehran(end - timedelta(microseconds=1), language)
    if first.year != last.year:
        head = f"{first.day} {first.strftime('%B')} {first.year}"
    elif first.month != last.month:
        head = f"{first.day} {first.strftime('%B')}"
    else:
        head = str(first.day)
    tail = f"{last.day} {last.strftime('%B')}" + (f" {last.year}" if year else "")
    text = f"{head} {until} {tail}"
    return persian_digits(text) if language == "fa" else text


def format_datetime(moment: datetime, language: str = "fa") -> str:
    """The date as in `format_date`, then the Tehran time as HH:MM."""
    time = _as_tehran(moment).strftime("%H:%M")
    if language == "fa":
        return f"{format_date(moment, language)}، {ltr(persian_digits(time))}"
    return f"{format_date(moment, language)}, {time}"


@dataclass(frozen=True)
class TrackingCode:
    """A case's public code: the Jalali year and a per-year sequence."""

    year: int
    sequence: int

    @property
    def canonical(self) -> str:
        """The ASCII form stored in the database, e.g. 1405-00012."""
        return f"{self.year}-{self.sequence:0{SEQUENCE_WIDTH}d}"

    def display(self, language: str = "fa") -> str:
        """The form people read, isolated so it stays left-to-right inside Persian lines."""
        return ltr(persian_digits(self.canonical) if language == "fa" else self.canonical)

    @classmethod
    def parse(cls, typed: str) -> TrackingCode | None:
        """Read a code typed with Persian, Arabic-Indic or ASCII digits, as people type or
        paste it: with its dash or without, after a word such as «کد», within the direction
        marks the bot puts around it; None when it is not one."""
        text = _PREFIX.sub("", _without_marks(typed)).strip()
        match = CODE_RE.match(text)
        if match:
            year, sequence = (int(ascii_digits(part)) for part in match.groups())
        else:
            digits = ascii_digits(text)
            if not _JOINED.match(digits) or int(digits[:4]) not in YEARS:
                return None
            year, sequence = int(digits[:4]), int(digits[4:])
        return cls(year, sequence) if sequence > 0 else None

    @classmethod
    def from_canonical(cls, code: str) -> TrackingCode:
        """Rebuild a code from its stored form."""
        year, sequence = code.split("-")
        return cls(int(year), int(sequence))


# Jalali years a four-digit start of a typed number may be.
YEARS = range(1380, 1500)
# A code's year and sequence typed together, without the dash.
_JOINED = re.compile(r"^[0-9]{5,11}$")
# Characters that show as nothing and only steer the text's direction (the bot isolates codes).
_MARKS = dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
_ANY_DIGIT = "[0-9۰-۹٠-٩]"
_MARK = "[\u200e\u200f\u202a-\u202e\u2066-\u2069]"
# A message a resident means as one of their codes (`TrackingCode.parse` reads it): a year of
# this century's (13xx or 14xx) and its sequence, the dash or not, maybe after «کد», maybe in
# the marks of a code copied from the bot's message. A phone number (0…) is not one.
TYPED_CODE = re.compile(
    rf"^(?:\s|{_MARK})*(?:(?:#|کد|code|شماره|پیگیری|رهگیری)(?:\s|[:：])*)?(?:{_MARK})*"
    rf"[1۱١][3۳٣4۴٤]{_ANY_DIGIT}{{2}}(?:\s|[-‐–—_/]|{_MARK})*{_ANY_DIGIT}{{1,7}}(?:\s|{_MARK})*$",
    re.IGNORECASE,
)


def _without_marks(typed: str) -> str:
    return typed.translate(_MARKS)


_PREFIX = re.compile(r"^\s*(?:#|کد|code|شماره|پیگیری|رهگیری|[\s:：-])*", re.IGNORECASE)
_SPOKEN = re.compile(r"^[0-9\s\-‐–—_/]+$")
_SEPARATED = re.compile(r"^\s*([0-9]{4})\s*[-‐–—_/\s]\s*([0-9]{1,7})\s*$")
# A message that is only a code, as typed from a call (a number of five digits or more).
SPOKEN_CODE = re.compile(
    r"^\s*(?:#|کد|code)?\s*[0-9۰-۹٠-٩][0-9۰-۹٠-٩\s\-‐–—_/]{4,16}\s*$", re.IGNORECASE
)


def spoken_codes(typed: str, *, this_year: int) -> list[TrackingCode]:
    """The codes a clerk may mean by what they typed from a call, most likely first:
    '۱۴۰۵-۰۰۱۲۳', '۱۴۰۵۰۰۱۲۳', '1405 123', 'کد ۱۴۰۵/۱۲۳' or just '۱۲۳' (this year, then the
    last). Empty when the text is not a code (a word, a phone number)."""
    text = _PREFIX.sub("", ascii_digits(typed)).strip()
    if not text or not _SPOKEN.match(text):
        return []
    found: list[TrackingCode] = []
    separated = _SEPARATED.match(text)
    if separated:
        year, sequence = int(separated[1]), int(separated[2])
        return [TrackingCode(year, sequence)] if sequence > 0 else []
    digits = re.sub(r"\D", "", text)
    if 5 <= len(digits) <= 11 and int(digits[:4]) in YEARS and int(digits[4:]) > 0:
        found.append(TrackingCode(int(digits[:4]), int(digits[4:])))
    if 1 <= len(digits) <= 7 and int(digits) > 0:
        found += [TrackingCode(this_year, int(digits)), TrackingCode(this_year - 1, int(digits))]
    return found


_JALALI_DATE = r"(\d{4})\s*/\s*(\d{1,2})\s*/\s*(\d{1,2})"
_JALALI_DATETIME = re.compile(rf"^\s*{_JALALI_DATE}\s+(\d{{1,2}})\s*:\s*(\d{{2}})\s*$")
_JALALI_DATE_ONLY = re.compile(rf"^\s*{_JALALI_DATE}\s*$")


def parse_jalali_date(typed: str) -> datetime | None:
    """'۱۴۰۵/۰۹/۰۱' (any digits) → the start of that day in Tehran, as UTC; None if invalid."""
    match = _JALALI_DATE_ONLY.match(ascii_digits(typed))
    if match is None:
        return None
    year, month, day = (int(part) for part in match.groups())
    return _to_utc(year, month, day, 0, 0)


def parse_jalali_datetime(typed: str) -> datetime | None:
    """'۱۴۰۵/۰۹/۱۲ ۱۸:۳۰' (any digits), Tehran time → UTC; None when malformed or impossible."""
    match = _JALALI_DATETIME.match(ascii_digits(typed))
    if match is None:
        return None
    year, month, day, hour, minute = (int(part) for part in match.groups())
    return _to_utc(year, month, day, hour, minute)


def _to_utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime | None:
    try:
        local: datetime = jdatetime.datetime(year, month, day, hour, minute).togregorian()
    except ValueError:
        return None
    return local.replace(tzinfo=TEHRAN).astimezone(UTC)
