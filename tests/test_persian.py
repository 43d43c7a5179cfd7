"""Normalisation, digits, Jalali dates and tracking codes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.digits import ascii_digits, persian_digits
from bot.jalali import TrackingCode, format_date, format_datetime, jalali_year
from bot.normalize import clean_text, normalize, squash


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("علي", "علی"),  # Arabic yeh
        ("موسى", "موسی"),  # alef maksura
        ("كتاب", "کتاب"),  # Arabic kaf
        ("مدرسة", "مدرسه"),  # teh marbuta
        ("خانۀ ما", "خانه ما"),  # heh with yeh above
        ("أحمد إمام ٱلله", "احمد امام الله"),  # hamza and wasla forms of alef
        ("مؤسسه", "موسسه"),  # waw with hamza
        ("خیـــــلی", "خیلی"),  # tatweel
        ("سَلامٌ", "سلام"),  # diacritics
        ("الرّحمٰن", "الرحمن"),  # shadda and superscript alef
        ("\u202bسلام\u202c\u200f", "سلام"),  # direction controls
        ("می\u200c\u200c\u200cخواهم", "می\u200cخواهم"),  # repeated ZWNJ collapses
        ("\u200cسلام\u200c دنیا\u200c", "سلام دنیا"),  # ZWNJ at word edges goes
        ("پلاک ۱۲ و ٣٤", "پلاک 12 و 34"),  # Persian and Arabic-Indic digits
        ("  چند    فاصله  ", "چند فاصله"),
        ("ﻧﺎﻥ", "نان"),  # presentation forms (NFKC)
    ],
)
def test_each_rule(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


@given(st.text())
def test_normalize_is_idempotent_and_total(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(alphabet=st.sampled_from("یيكکه ةۀ\u200c\u200f\u0640َ۱١1ا أ")))
def test_normalize_is_idempotent_on_persian_mixtures(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


def test_squash_ignores_spacing_and_letter_variants() -> None:
    assert squash("يوسف آباد") == squash("یوسف‌آباد") == squash("یوسفآباد")


def test_digits_round_trip() -> None:
    assert persian_digits("1405-00012") == "۱۴۰۵-۰۰۰۱۲"
    assert ascii_digits("۱۴۰۵-٠٠٠١٢") == "1405-00012"


def test_jalali_dates_in_tehran_time() -> None:
    nowruz = datetime(2026, 3, 20, 21, 0, tzinfo=UTC)  # 00:30 on 1 Farvardin 1405 in Tehran
    assert format_date(nowruz) == "۱ فروردین ۱۴۰۵"
    assert format_date(nowruz, "en") == "1 Farvardin 1405"
    assert jalali_year(nowruz) == 1405
    assert jalali_year(datetime(2026, 3, 20, 20, 0, tzinfo=UTC)) == 1404
    assert "۰۰:۳۰" in format_datetime(nowruz)


@pytest.mark.parametrize(
    "typed",
    [
        "۱۴۰۵-۰۰۰۱۲", "1405-12", "١٤٠٥/١٢", " 1405 - 00012 ", "۱۴۰۵ ۱۲",
        "۱۴۰۵۰۰۰۱۲", "کد ۱۴۰۵-۰۰۰۱۲", "\u2066۱۴۰۵-۰۰۰۱۲\u2069", "#140500012",
    ],
)  # fmt: skip
def test_tracking_code_accepts_any_digits(typed: str) -> None:
    assert TrackingCode.parse(typed) == TrackingCode(1405, 12)


@pytest.mark.parametrize(
    "typed", ["hello", "1405", "1405-0", "14050-1", "1405-12a", "09121234567", "۱۲۳"]
)
def test_tracking_code_rejects_non_codes(typed: str) -> None:
    assert TrackingCode.parse(typed) is None


def test_tracking_code_displays_left_to_right_with_persian_digits() -> None:
    assert TrackingCode(1405, 123).display() == "\u2066۱۴۰۵-۰۰۱۲۳\u2069"
    assert TrackingCode(1405, 123).canonical == "1405-00123"


@given(st.text(alphabet=st.characters(blacklist_categories=())))
def test_cleaned_text_can_be_stored_and_keeps_what_people_see(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # no lone surrogates
    assert "\x00" not in cleaned
    visible = [c for c in text if c in "\n\t" or not (ord(c) < 32 or ord(c) == 127)]
    assert len(cleaned) == len([c for c in visible if not 0xD800 <= ord(c) <= 0xDFFF])
