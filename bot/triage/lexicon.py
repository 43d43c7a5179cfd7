"""Domain words, in Persian (formal and colloquial) and Finglish, as extra model features.

A few hundred examples cannot teach every word people use; this list carries what any clerk
knows (a burglary is the police's, a gas smell the gas company's). Each entry is a regular
expression matched at a word start in the model's folded text (normalised, no ZWNJ, ASCII digits,
lower-case Latin). The model still weighs these features against everything else.
"""

from __future__ import annotations

import re

LEXICON: dict[str, list[str]] = {
    "municipal": [
        r"زباله", r"آشغال", r"اشغال\b", r"سطل", r"رفتگر", r"نخاله", r"آسفالت", r"اسفالت", r"چاله",
        r"پیاده ?رو", r"جدول", r"جوی?\b", r"جوب", r"لایروبی", r"آب ?گرفتگی", r"درخت", r"فضای سبز",
        r"پارک\b", r"نیمکت", r"سگ", r"ولگرد", r"تابلو", r"خط ?کشی", r"سرعت ?گیر", r"پارک(?:ینگ)? ",
        r"ساخت و ساز", r"بدون مجوز", r"منهول", r"شهرداری", r"روشنایی", r"چراغ", r"سنگفرش", r"پل عابر",
        r"zobale", r"ashghal", r"asfalt", r"chale", r"cheragh", r"sag\b", r"velgard", r"jub", r"joob",
        r"park\b", r"derakht", r"shahrdari", r"piaderoo",
    ],
    "utilities": [
        r"آب\b", r"آب ", r"آبفا", r"فشار آب", r"لوله", r"کنتور", r"برق\b", r"برقم", r"قطعی", r"قطع",
        r"کابل", r"سیم", r"تیر برق", r"ترانس", r"گاز", r"مخابرات", r"تلفن", r"اینترنت", r"فیبر",
        r"ADSL", r"آنتن", r"فاضلاب", r"قبض", r"انشعاب", r"نشت",
        r"ab\b", r"bargh", r"gaz\b", r"internet", r"telephone", r"telefon", r"mokhaberat", r"ghat",
        r"feshar", r"looleh?", r"kontor",
    ],
    "security": [
        r"دزد", r"سرقت", r"سارق", r"قاپ", r"زورگیر", r"چاقو", r"قمه", r"اسلحه", r"تفنگ", r"شلیک",
        r"تیراندازی", r"دعوا", r"نزاع", r"درگیر", r"کتک ?کاری", r"مزاحم", r"متلک", r"تعقیب", r"مشکوک",
        r"مواد ?فروش", r"مواد می ?فروش", r"فروش مواد", r"خرید و فروش مواد", r"موادفروش", r"ویراژ",
        r"تک ?چرخ", r"اگزوز", r"پلیس", r"کلانتری", r"گشت", r"کلاهبردار", r"شکستن", r"شکسته اند",
        r"بدون پلاک", r"پلاک", r"سر و صدا", r"صدای بلند", r"مهمانی", r"پارتی", r"مست", r"جیب ?بر",
        r"dozd", r"sereghat", r"dava\b", r"chaghoo", r"police", r"polis", r"mavad", r"motori",
        r"vorage?", r"mozahem", r"pelak",
    ],
    "social": [
        r"معتاد", r"اعتیاد", r"مصرف", r"سرنگ", r"کارتن ?خواب", r"بی ?خانمان", r"کودکان? کار",
        r"بچه(?:ه)?(?:ای|ها)? ?(?:ی )?کار", r"کودک(?:ان)? خیابان", r"زباله ?گرد", r"گدا", r"تکدی",
        r"متکدی", r"فرار", r"فراری", r"گرمخانه", r"اورژانس اجتماعی", r"بی ?سرپرست", r"چسب می ?کش",
        r"اوردوز", r"ترک اعتیاد", r"فال ?فروش", r"فال می ?فروش", r"شیشه\b", r"بیماری روانی",
        r"motad", r"mo'tad", r"e'tiad", r"etiad", r"karton", r"geda", r"bache ?haye kar", r"bi ?khaneman",
    ],
    "family": [
        r"همسر", r"شوهر", r"زنش", r"زن و شوهر", r"طلاق", r"جدا ش", r"مشاوره", r"خانواده", r"خانوادگی",
        r"کتک", r"کبود", r"خشونت", r"تنبیه", r"کودک ?آزاری", r"بچه(?:ش|شون|ها)? ?رو? کتک", r"والدین",
        r"پدر", r"مادر", r"فرزند", r"بچه هاش", r"سالمند", r"پدربزرگ", r"مادربزرگ", r"پیرزن", r"پیرمرد",
        r"تنها", r"زوج", r"ازدواج", r"عروس", r"مادرشوهر", r"نامادری", r"فرزندپروری", r"زندانی کرده",
        r"hamsar", r"shohar", r"kotak", r"talagh", r"moshavere", r"madarbozorg", r"pedarbozorg", r"tanha",
    ],
    "cultural": [
        r"مسجد", r"هیئت", r"حسینیه", r"محرم", r"عزاداری", r"اربعین", r"رمضان", r"افطار", r"قرآن",
        r"نماز", r"جشن", r"مراسم", r"مذهبی", r"کتابخانه", r"کتابخونه", r"کتاب", r"مطالعه", r"فرهنگسرا",
        r"فرهنگی", r"فرهنگ", r"کانون", r"ورزش", r"ورزشی", r"فوتبال", r"فوتسال", r"بسکتبال", r"زمین بازی",
        r"زمین ورزش", r"زمین فوتبال", r"باشگاه", r"استخر", r"سالن", r"کلاس", r"هنری", r"نقاشی",
        r"خوشنویسی", r"تئاتر", r"سینما", r"سرود", r"اردو", r"جشنواره", r"نوجوان", r"تابستان",
        r"masjed", r"ketab", r"football", r"futbal", r"varzesh", r"kelas", r"quran", r"jashn",
    ],
    "health": [
        r"بهداشت", r"غیربهداشتی", r"مسموم", r"تاریخ ?گذشته", r"فاسد", r"گندیده", r"مونده", r"موش",
        r"سوسک", r"ساس", r"شپش", r"کک\b", r"مگس", r"پشه", r"سم ?پاشی", r"بیماری", r"مریض", r"واکسن",
        r"واکسیناسیون", r"آبله", r"سرخک", r"سل\b", r"اسهال", r"تب\b", r"درمانگاه", r"کلینیک", r"پزشک",
        r"دکتر", r"داروخانه", r"داروخونه", r"دارو", r"بیمارستان", r"اورژانس\b", r"آمبولانس", r"رستوران",
        r"ساندویچی", r"فست ?فود", r"قصابی", r"نانوایی", r"غذا", r"گوشت", r"مرغ", r"بوفه", r"لبنی",
        r"ghaza", r"resturan", r"rest?ooran", r"moosh", r"mush", r"soosk", r"doktor", r"darookhane",
        r"behdasht", r"mariz", r"vaksan",
    ],
    "welfare": [
        r"نیازمند", r"فقیر", r"فقر", r"بی ?بضاعت", r"کم ?بضاعت", r"کم ?درآمد", r"درآمد", r"بیکار",
        r"اشتغال", r"شغل", r"کار ?آفرینی", r"یتیم", r"سرپرست خانوار", r"معلول", r"معلولیت", r"ویلچر",
        r"سمعک", r"نابینا", r"مستمری", r"کمیته امداد", r"امداد", r"بسته معیشتی", r"سبد", r"کمک هزینه",
        r"وام", r"قرض ?الحسنه", r"جهیزیه", r"اجاره", r"مسکن", r"بی ?سرپناه", r"حقوق", r"بیمه",
        r"شیرخشک", r"خرج", r"پول ندار", r"نان خالی", r"نون خالی",
        r"bikar", r"faghir", r"yatim", r"niazmand", r"ejare", r"darmad", r"kar nadaram", r"komak",
    ],
    "education": [
        r"مدرسه", r"مدارس", r"دبستان", r"دبیرستان", r"هنرستان", r"معلم", r"دبیر", r"مدیر مدرسه",
        r"کلاس درس", r"دانش ?آموز", r"ثبت ?نام", r"شهریه", r"کتاب درسی", r"سرویس مدرسه", r"مهد",
        r"مهدکودک", r"پیش ?دبستانی", r"سواد", r"سوادآموزی", r"آموزش و پرورش", r"کنکور", r"کارنامه",
        r"ترک تحصیل", r"استثنایی", r"زنگ ورزش", r"تحصیل",
        r"madrese", r"moalem", r"sabte?nam", r"savad", r"mahd", r"shahrie",
    ],
    "participation": [
        r"پیشنهاد", r"ایده", r"داوطلب", r"مشارکت", r"حاضرم", r"حاضریم", r"آماده ?ام", r"آماده ?ایم",
        r"آمادگی", r"تشکل", r"سمن", r"گروه", r"همکاری", r"رایگان", r"خیرین", r"جهادی", r"پویش",
        r"جلسه", r"هم ?اندیشی", r"شورایاری", r"بازارچه", r"پاکسازی", r"درختکاری", r"باغچه",
        r"میخوایم", r"می ?خواهیم", r"میتونم", r"می ?توانم", r"بیاین", r"بیایید",
        r"pishnahad", r"davtalab", r"goroh", r"tashakol", r"mitoonam", r"mikhaym", r"bia\b",
    ],
    "other": [
        r"سلام$", r"ربات", r"تست", r"امتحان", r"ممنون", r"مرسی", r"تشکر", r"خسته نباشید", r"دلار",
        r"انتخابات", r"یارانه", r"بنزین", r"تبلیغ", r"کانال", r"عضو", r"قیمت", r"سهام", r"ارز",
        r"کد پیگیری", r"اخبار", r"فال حافظ", r"شب بخیر", r"گواهینامه", r"گذرنامه",
        r"^salam$", r"robot", r"test", r"merci", r"hello", r"ok$",
    ],
}  # fmt: skip

# A domain's words may overlap another's ("زباله" and "زباله‌گرد"): each domain is its own pass.
_PATTERNS = {
    domain: re.compile(r"(?<!\w)(?:" + "|".join(entries) + ")", re.IGNORECASE)
    for domain, entries in LEXICON.items()
}


def lexicon_tokens(folded: str) -> str:
    """One pseudo-word per lexicon hit, e.g. "lexsecurity lexsecurity" for two police words."""
    return " ".join(
        f"lex{domain}" for domain, pattern in _PATTERNS.items() for _ in pattern.finditer(folded)
    )
