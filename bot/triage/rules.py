"""A small high-precision rule layer: situations that mean danger right now, and whom to call.

Matched on normalised text (Arabic letters folded, ZWNJ and spaces folded to one space, Latin in
lower case), so "آتش‌سوزی", "آتش سوزی", "اتیش سوزی" and "atish soozi" all count. Each pattern
names a situation, not only a word: a gas smell or "rotten eggs", sparks from a pole or cable,
smoke pouring out, a child locked in, someone fallen and not getting up, a threat to kill. Look-
alikes are left out on purpose (cigarette smoke, low gas pressure, a fire station's address, a
threat to sue, a shooting club). Precision over recall: the model still places the case; this
only adds the emergency numbers that fit the danger to the reply.
"""

from __future__ import annotations

import enum
import re

from bot.normalize import normalize


class Danger(enum.StrEnum):
    """A kind of danger; each brings its own emergency numbers."""

    GAS = "gas"
    FIRE = "fire"
    POWER = "power"
    ELECTROCUTED = "electrocuted"
    WATER = "water"
    VIOLENCE = "violence"
    MEDICAL = "medical"
    CHILD_LOCKED = "child-locked"
    CHILD_ALONE = "child-alone"
    ABUSE = "abuse"
    SELF_HARM = "self-harm"
    COLLAPSE = "collapse"
    DROWNING = "drowning"


class Service(enum.StrEnum):
    """An emergency line; the value is the number dialled in Iran."""

    POLICE = "110"
    AMBULANCE = "115"
    FIRE = "125"
    SOCIAL = "123"
    GAS = "194"
    POWER = "121"
    WATER = "122"


# Whom to call for each danger, most fitting first.
NUMBERS: dict[Danger, tuple[Service, ...]] = {
    Danger.GAS: (Service.GAS, Service.FIRE),
    Danger.FIRE: (Service.FIRE,),
    Danger.POWER: (Service.POWER,),
    Danger.ELECTROCUTED: (Service.AMBULANCE, Service.POWER),
    Danger.WATER: (Service.WATER,),
    Danger.VIOLENCE: (Service.POLICE,),
    Danger.MEDICAL: (Service.AMBULANCE,),
    Danger.CHILD_LOCKED: (Service.FIRE, Service.POLICE),
    Danger.CHILD_ALONE: (Service.SOCIAL, Service.POLICE),
    Danger.ABUSE: (Service.SOCIAL, Service.POLICE),
    Danger.SELF_HARM: (Service.AMBULANCE, Service.SOCIAL),
    Danger.COLLAPSE: (Service.FIRE, Service.AMBULANCE),
    Danger.DROWNING: (Service.AMBULANCE, Service.FIRE),
}

# Pieces the patterns share. Text is folded first: ZWNJ is a space, "می آید" and "میاد" alike.
_MI = r"(?:می ?)"  # the continuous prefix, joined or apart
_WORDS = r"(?: \S+){0,%d}"  # up to n words in between
_CHILD = r"(?<!\w)(?:بچه|کودک|نوزاد|پسربچه|دختربچه|پسر بچه|دختر بچه|bache|bachche)"
_INSIDE = r"(?:تو|توی|داخل|در|too|tooye|tu|tuye|dakhele)"
_ENCLOSED = r"(?:ماشین|خودرو|ماشینش|آسانسور|اسانسور|انباری|اتاق|خونه|خانه|mashin|asansor|khoone)"
_NOT_UP = (
    r"(?:بلند نمی ?شه|بلند نمی ?شود|بلند نشده|پا نمی ?شه|تکون نمی ?خوره|تکان نمی ?خورد|"
    r"حرکت نمی ?کنه|حرکت نمی ?کند|جواب نمی ?ده|جواب نمی ?دهد|بیهوش|نفس نمی ?کش|"
    r"boland nemishe|tekoon nemikhore|javab nemide)"
)
_POLE = r"(?:تیر|کابل|سیم|کنتور|ترانس|پست برق|جعبه برق|تابلو برق|tir|kabl|sim|trans)"

_PATTERNS: dict[Danger, list[str]] = {
    Danger.GAS: [
        r"(?<!\w)بو(?:ی)? (?:شدید |تند |زیاد )?(?:ی )?گاز(?!و|ئ|\w)",
        r"نشت (?:ی )?گاز|نشتی گاز|گاز نشت|گاز (?:داره )?(?:نشت|نشتی)",
        r"(?<!\w)بو(?:ی)?" + _WORDS % 3 + r" تخم ?مرغ(?: های)? گندیده",
        r"لوله (?:ی )?گاز" + _WORDS % 2 + r" (?:شکست|شکسته|ترکید|ترکیده|سوراخ|پاره)",
        r"(?<!\w)bo+(?:ye?|e)? ?gaa?z(?!\w)|nasht(?:e|i)? ?(?:e )?gaa?z|gaz nasht",
        r"tokhm ?e? ?morgh(?:e)? gandide",
    ],
    Danger.FIRE: [
        r"(?<!بعد از )(?<!بعد )(?:آتش|آتیش|اتیش|اتش) ?سوزی|حریق(?!\s?نشان)",
        r"(?:آتش|آتیش|اتیش|اتش) (?:گرفت|گرفته|افتاده)(?!\w)",
        r"شعله (?:ور|کشید|می ?کشه|می ?کشد|زد)",
        r"انفجار(?! ?ترقه)|منفجر (?:شد|شده)",
        r"(?<!\w)دود(?! ?(?:سیگار|قلیان|اگزوز|ماشین|خودرو|کباب|منقل|تنور|اسپند))"
        + _WORDS % 4
        + rf" (?:بیرون {_MI}?(?:زنه|زند|اد|آید|اید|یاد)|بیرون زده|بلند شده|{_MI}(?:اد|آید|یاد))",
        r"دود (?:غلیظ|سیاه|زیاد|شدید)(?!\w)|پر (?:از )?دود (?:شده|است|هست)",
        r"atish ?soozi|atish gerefte|atish gereft|(?<!\w)harigh(?!\w)|dood miad|dood zade",
    ],
    Danger.POWER: [
        _POLE + r"\S*" + _WORDS % 4 + r" جرقه",
        r"جرقه" + _WORDS % 4 + r" (?:تیر|کابل|سیم|کنتور|ترانس|برق)",
        r"(?:سیم|کابل)(?: های)? (?:لخت )?برق" + _WORDS % 2 + r" (?:افتاده|پاره|روی زمین|رو زمین|"
        r"تو آب|توی آب|در آب|آویزان|اویزون|آویزونه)",
        r"(?:تیر|کابل|سیم|ترانس)\S*(?: برق)? (?:اتصالی|اتصال) (?:کرده|داره|دارد|می ?کنه)",
        r"jara?ghe" + _WORDS % 3 + r" (?:tir|kabl|sim|bargh)|(?:tir|kabl|sim)\S*" + _WORDS % 3
        + r" jara?ghe",
    ],
    Danger.ELECTROCUTED: [
        r"برق (?:\S+ )?گرفتش|برق گرفت(?!\w)|برق ?گرفتگی",
        r"bargh gerefte?sh|bargh gereft(?!\w)",
    ],
    Danger.WATER: [
        r"لوله (?:ی )?(?:اصلی )?(?:آب )?(?:اصلی )?(?:ترکیده|ترکید|شکسته|پاره شده)",
        r"آب (?:همه جا|کل کوچه|کل خیابان|خیابان|کوچه) (?:رو |را )?(?:گرفته|برداشته|برده)",
        r"looleh? ?(?:ye )?(?:ab )?tarkide",
    ],
    Danger.VIOLENCE: [
        r"(?<!\w)(?:چاقو(?! ?تیز)|قمه|قداره|شمشیر|اسلحه|کلت|تفنگ(?! ?بادی| ?اسباب)|چاقوکشی)",
        r"(?<!باشگاه )(?<!کلاس )(?<!مسابقه )(?<!مسابقات )تیراندازی|تیر اندازی|شلیک(?! ?ترقه)",
        r"تهدید(?:م|مون|ش)? (?:به )?(?:مرگ|کشتن|قتل|چاقو|اسید)",
        r"تهدید(?:م|مون|مان|ش)? (?:کرد|کرده|کردن|کردند|می ?کنه|می ?کنن|می ?کند)"
        + _WORDS % 3 + r" (?:می ?کشه|می ?کشم|بکشه|بکشم|می ?زنه|بزنه|چاقو|آتیش|آتش|اسید)",
        r"(?:می ?کشمت|می ?کشمتون|میکشمت|می ?کشیمت)",
        r"گروگان|آدم ?ربایی|بچه ?دزدی|ربودن",
        r"دزد (?:الان |همین الان )?(?:تو|توی|داخل) (?:خونه|خانه|حیاط|ساختمان)",
        r"دارن (?:همدیگه|هم|همدیگر) (?:رو |را )?(?:می ?زنن|میزنن|می ?کشن)",
        r"(?<!\w)(?:chaghoo|chaqu|ghame|aslahe|tofang)(?!\w)|tirandazi|tahdid be marg|mikoshamet",
    ],
    Danger.MEDICAL: [
        r"بیهوش|از هوش رفت|غش کرد|نفس نمی ?کش|خون ?ریزی",
        r"(?:افتاده|افتاد|زمین خورده|زمین خورد|زمین افتاده|پرت شده)" + _WORDS % 5 + " " + _NOT_UP,
        r"(?:oftade|zamin khorde)" + _WORDS % 4 + r" (?:boland nemishe|tekoon nemikhore|bihoosh)",
        r"(?<!\w)bihoo?sh|khoon ?rizi",
    ],
    Danger.CHILD_LOCKED: [
        _CHILD + r"\S*" + _WORDS % 4 + f" {_INSIDE} {_ENCLOSED}" + _WORDS % 3
        + r" (?:قفل|گیر|حبس|زندانی|جا مونده|جا مانده|gir|ghofl)",
        r"(?:قفل|حبس) (?:شده|کرده|کردن|کردند)" + _WORDS % 4 + " " + _CHILD,
    ],
    Danger.CHILD_ALONE: [
        _CHILD + r"\S*" + _WORDS % 2 + r" (?:تنها|تنهایی|تنهان|تنهاست|tanha)\S*"
        + f" {_INSIDE} {_ENCLOSED}",
        _CHILD + r"\S*" + _WORDS % 2 + f" {_INSIDE} {_ENCLOSED}" + r"\S*" + _WORDS % 2
        + r" (?:تنها|تنهایی|tanha)\S*(?: \S+){0,2} (?:رها|ول|گذاشتن|گذاشته|مونده|مانده|هست|است)",
    ],
    Danger.ABUSE: [
        r"کودک ?آزاری|همسر ?آزاری|بچه ?آزاری",
        r"(?:بچه|کودک|زن|همسر|خانم|دختر|پسر)\S*" + _WORDS % 2
        + r" (?:رو|را) (?:\S+ )?(?:کتک می ?زن|به شدت می ?زن|زیر کتک|کتک زد)",
    ],
    Danger.SELF_HARM: [r"(?<!پیشگیری از )خودکشی|khodkoshi"],
    Danger.COLLAPSE: [
        r"زیر آوار",
        r"(?<!نخاله )(?<!زباله )(?<!\w)(?:دیوار|سقف|ساختمان|خونه|خانه|بالکن|تراس)"
        r"(?: (?!را |رو )\S+){0,2} (?:ریخت|ریخته|فرو ?ریخت|فرو ?ریخته|ریزش کرد|ریزش کرده|"
        rf"{_MI}?ریزه|در حال ریزش|داره {_MI}ریزه)(?!\w)",
    ],
    Danger.DROWNING: [r"غرق (?:شد|شده|شدن|می ?شه|می ?شود)(?!\w)|gharq shod|ghargh shod"],
}  # fmt: skip
_COMPILED = {
    danger: re.compile("|".join(f"(?:{p})" for p in patterns).replace("آ", "ا"), re.IGNORECASE)
    for danger, patterns in _PATTERNS.items()
}


def fold(text: str) -> str:
    """The text as the patterns read it: normalised, ZWNJ a space, آ as ا, Latin lower-case."""
    folded = normalize(text).replace("\u200c", " ").replace("آ", "ا").lower()
    return re.sub(r"\s+", " ", folded)


def dangers(text: str) -> tuple[Danger, ...]:
    """The kinds of danger the text describes, in the order of `Danger`."""
    folded = fold(text)
    return tuple(danger for danger, pattern in _COMPILED.items() if pattern.search(folded))


def emergency_numbers(found: tuple[Danger, ...]) -> tuple[Service, ...]:
    """The lines to call for these dangers, each once, most fitting first."""
    numbers: list[Service] = []
    for danger in found:
        numbers += [n for n in NUMBERS[danger] if n not in numbers]
    return tuple(numbers)


def is_urgent(text: str) -> bool:
    """Whether the text names a danger that should be called in, not only reported."""
    return bool(dangers(text))
