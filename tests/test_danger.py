"""Danger described without the word: situations, in Persian, colloquial, Arabic letters and
Finglish, each bringing the emergency numbers that fit it; look-alikes bring none."""

from __future__ import annotations

import pytest

from bot.triage.rules import Danger, Service, dangers, emergency_numbers, is_urgent
from tests.conftest import Bot
from tests.fakebot import texts
from tests.test_agency import report

FIRES = {
    # gas: a smell, "rotten eggs", a leak, a broken gas pipe
    "بوی گاز شدید در راه‌پله ساختمان می‌آید": Danger.GAS,
    "بوي گاز مياد كل كوچه": Danger.GAS,  # Arabic yeh and kaf
    "یه بوی تخم‌مرغ گندیده تو راه پله پیچیده": Danger.GAS,
    "بو تخم مرغ گندیده میاد از زیرزمین": Danger.GAS,
    "boo gaz miad too kooche": Danger.GAS,
    "booye gaz kheili shadide": Danger.GAS,
    "bu tokhm morgh gandide miad": Danger.GAS,
    "نشت گاز از کنتور همسایه": Danger.GAS,
    "لوله گاز جلوی خانه شکسته": Danger.GAS,
    # power: sparks from a pole or cable, a fallen live wire
    "از تیر برق سر کوچه جرقه می‌زنه": Danger.POWER,
    "کابل برق جرقه میزنه و صدا میده": Danger.POWER,
    "سیم برق پاره شده افتاده روی زمین": Danger.POWER,
    "سیم‌های برق روی درخت افتاده و جرقه می‌زند": Danger.POWER,
    "jaraghe az tir bargh": Danger.POWER,
    "برق گرفتش داره می‌لرزه": Danger.ELECTROCUTED,
    # fire and smoke
    "از پنجره‌ی طبقه دوم دود بیرون می‌زند": Danger.FIRE,
    "دود سیاه از انبار بلند شده": Danger.FIRE,
    "خونه همسایه پر از دود شده": Danger.FIRE,
    "آتیش گرفته ماشین": Danger.FIRE,
    "اتیش سوزی شده کمک": Danger.FIRE,
    "atish soozi shode": Danger.FIRE,
    # water: a burst main
    "لوله اصلی آب ترکیده و خیابان را آب برداشته": Danger.WATER,
    # a child alone or locked in
    "یه بچه کوچیک تو ماشین قفل شده و مادرش نیست": Danger.CHILD_LOCKED,
    "بچه تو آسانسور گیر کرده": Danger.CHILD_LOCKED,
    "بچه‌ی همسایه تنها توی خونه مونده از دیروز": Danger.CHILD_ALONE,
    # someone fallen and not getting up
    "پیرمردی تو پیاده‌رو افتاده و بلند نمی‌شه": Danger.MEDICAL,
    "یه خانم زمین خورده و تکون نمیخوره": Danger.MEDICAL,
    "معتادی در جوی آب افتاده و بیهوش است": Danger.MEDICAL,
    "oftade boland nemishe": Danger.MEDICAL,
    # threats and weapons
    "تهدیدم کرد که می‌کشه": Danger.VIOLENCE,
    "همسایه تهدید به کشتن کرد": Danger.VIOLENCE,
    "گفت میکشمت": Danger.VIOLENCE,
    "دارن همدیگه رو میزنن با قمه": Danger.VIOLENCE,
    "با چاقو به هم حمله کردند": Danger.VIOLENCE,
    "kasi ba chaghoo be ye nafar hamle kard": Danger.VIOLENCE,
    # abuse at home, collapse, drowning, self-harm
    "بچه را کتک می‌زنند صدای جیغش میاد": Danger.ABUSE,
    "همسایه هر شب همسرش را کتک می‌زند": Danger.ABUSE,
    "دیوار خانه قدیمی ریخت": Danger.COLLAPSE,
    "بچه تو استخر غرق شد": Danger.DROWNING,
    "می‌گوید می‌خواهد خودکشی کند": Danger.SELF_HARM,
}

LOOK_ALIKES = [
    "چراغ کوچه خاموش است",
    "فشار گاز کم است و بخاری خاموش می‌شود",
    "قبض گاز خیلی زیاد آمده",
    "بوی گازوئیل اتوبوس‌ها",
    "آبگرمکن خونه گاز داره؟",
    "سگ ولگرد بچه رو گاز گرفت",
    "تخم مرغ‌ها در مغازه گندیده بود و فروختند",
    "بوی بد زباله می‌آید",
    "آتش‌نشانی محله کجاست",
    "اتش بازی چهارشنبه سوری",
    "خانواده‌ای که بعد از آتش‌سوزی خانه‌شان بی‌سرپناه شده‌اند",
    "دود سیگار جوان‌ها در پارک اذیت می‌کند",
    "دود اگزوز ماشین‌ها بلند است",
    "کباب‌پزی دود زیادی دارد",
    "برق کوچه از دیشب قطع است",
    "جرقه یک ایده خوب برای پاکسازی محله",
    "سیم کشی برق ساختمان مدرسه فرسوده است",
    "برق گرفتن غیرمجاز مغازه از تیر",
    "فشار آب کم است",
    "آب قطع شده",
    "لوله کشی مدرسه قدیمی است",
    "بچه‌ها در پارک تنها بازی می‌کنند",
    "مهدکودک محله جا ندارد",
    "کودکان کار سر چهارراه گدایی می‌کنند",
    "موتوری‌ها در چاله زمین می‌خورند",
    "خون‌گیری درمانگاه تعطیل است",
    "همسایه تهدید به شکایت کرد",
    "تهدید زیست محیطی برای پارک",
    "باشگاه تیراندازی برای نوجوانان",
    "چاقو تیز کن دوره‌گرد صبح زود داد می‌زند",
    "نخاله ساختمانی ریخته‌اند سر کوچه",
    "نخاله ساختمان را ریخته‌اند",
    "محله غرق زباله شده",
    "کلاس پیشگیری از خودکشی برای نوجوانان",
    "کلاس خانواده برای زوج‌های جوان",
]


@pytest.mark.parametrize(("text", "danger"), FIRES.items())
def test_situations_are_caught_without_the_word_danger(text: str, danger: Danger) -> None:
    assert danger in dangers(text)
    assert is_urgent(text)


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_not_danger(text: str) -> None:
    assert dangers(text) == ()


def test_each_danger_brings_its_own_numbers_each_once() -> None:
    assert emergency_numbers((Danger.GAS,)) == (Service.GAS, Service.FIRE)
    assert emergency_numbers((Danger.POWER,)) == (Service.POWER,)
    assert emergency_numbers((Danger.WATER,)) == (Service.WATER,)
    assert emergency_numbers((Danger.VIOLENCE,)) == (Service.POLICE,)
    assert emergency_numbers((Danger.MEDICAL,)) == (Service.AMBULANCE,)
    assert emergency_numbers((Danger.CHILD_ALONE,)) == (Service.SOCIAL, Service.POLICE)
    both = emergency_numbers((Danger.GAS, Danger.FIRE))
    assert both == (Service.GAS, Service.FIRE), "the fire brigade once"


@pytest.mark.parametrize(
    ("text", "called", "not_called"),
    [
        ("از تیر برق سر کوچه جرقه می‌زنه و بچه‌ها زیرش بازی می‌کنند", ["۱۲۱"], ["۱۱۰", "۱۹۴"]),
        ("پیرمردی تو پیاده‌رو افتاده و بلند نمی‌شه، کسی کمک نمی‌کنه", ["۱۱۵"], ["۱۲۵", "۱۹۴"]),
        ("یه بچه کوچیک تو ماشین قفل شده و مادرش نیست، هوا هم گرمه", ["۱۲۵", "۱۱۰"], ["۱۹۴"]),
        ("bu tokhm morgh gandide too rahpele miad, hame tarsidan", ["۱۹۴", "۱۲۵"], ["۱۱۰"]),
        ("لوله اصلی آب ترکیده و خیابان را آب برداشته است", ["۱۲۲"], ["۱۱۰", "۱۲۵"]),
    ],
)
async def test_the_reply_names_the_numbers_that_fit(
    bot: Bot, text: str, called: list[str], not_called: list[str]
) -> None:
    resident = bot.user()
    await report(resident, text)
    [warning] = [r for r in texts(bot.api.to_chat(resident.user_id)) if "فوراً تماس" in r]
    assert all(number in warning for number in called), warning
    assert not any(number in warning for number in not_called), warning


async def test_an_ordinary_report_brings_no_numbers(bot: Bot) -> None:
    resident = bot.user()
    await report(resident, "فشار گاز کم است و بخاری‌ها شب‌ها خاموش می‌شوند، لطفاً بررسی کنید")
    assert not any("فوراً تماس" in r for r in texts(bot.api.to_chat(resident.user_id)))
