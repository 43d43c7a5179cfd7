"""The desk of agency staff and coordinators, chat by chat: a code read out on the phone, lists
with overdue cases first, the triage queue, search, map links, and each role's commands."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from bot.config import Settings
from bot.digits import LRI, PDI, isolate, persian_digits
from bot.jalali import TrackingCode, format_date, spoken_codes, utcnow
from models.db import create_engine, create_session_factory
from models.entities import Case
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat, make_settings
from tests.fakebot import ApiCall, FakeBotAPI, alerts, start_bot, stop_bot, texts
from tests.test_agency import MUNICIPALITY, POLICE, add_staff, one_case, report, sent_to
from tests.test_report_flow import cases_in

UNSURE = "سلام، یه سوال داشتم درباره این ربات و اینکه چطوری کار میکنه"
ANSWER = "جلوی پلاک ۱۲، کنار نانوایی"
QUESTION = "دقیقاً جلوی کدام پلاک است؟"


def read_out(code: str) -> str:
    """A code as a clerk types it from a call: Persian digits, no dash."""
    return persian_digits(code.replace("-", ""))


async def backdate(settings: Settings, case_ids: list[int], days: int) -> None:
    """The cases reached their agency `days` days ago."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        await session.execute(
            update(Case)
            .where(Case.id.in_(case_ids))
            .values(handed_over_at=utcnow() - timedelta(days=days))
        )
        await session.commit()
    await engine.dispose()


def test_codes_read_out_on_the_phone_are_understood() -> None:
    expected = TrackingCode(1405, 123)
    for typed in ("۱۴۰۵-۰۰۱۲۳", "۱۴۰۵۰۰۱۲۳", "1405 123", "١٤٠٥/١٢٣", "کد ۱۴۰۵۰۰۱۲۳", "#1405-00123"):
        assert spoken_codes(typed, this_year=1405)[0] == expected, typed
    assert spoken_codes("۱۲۳", this_year=1405) == [expected, TrackingCode(1404, 123)]
    for not_a_code in ("آب قطع است", "09121234567", "0", "1405-0", ""):
        assert spoken_codes(not_a_code, this_year=1405) == [], not_a_code


async def test_clerk_finds_a_case_read_out_on_the_phone_with_its_history(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1007)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply(QUESTION)
    await resident.press("پاسخ می‌دهم")
    await resident.send(ANSWER)
    case = await one_case(settings)

    [answer] = texts(await clerk.send(f"/find {read_out(case.code)}"))
    assert f"{LRI}{persian_digits(case.code)}{PDI}" in answer, "the code, isolated"
    assert format_date(case.created_at) in answer, "Jalali date, Persian digits"
    assert QUESTION in answer and ANSWER in answer
    history = answer[answer.index("سابقه") :]
    assert history.index(QUESTION) < history.index(ANSWER)
    assert "گزارش‌دهنده" in history and "رضایی" in history
    assert str(1007) not in answer, "the reporter is never identified"
    # The same case, typed on its own in the group with the dash.
    assert texts(await clerk.send(persian_digits(case.code)))[0] == answer
    # In a private chat with the bot the clerk sees it too, without a card to act on.
    [private] = [c for c in await bot.user(2001).send(f"/find {case.code}") if c.text]
    assert ANSWER in private.text and "reply_markup" not in private.params


async def test_clerk_of_another_agency_is_refused_without_learning_the_case_exists(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2002, "police", "احمدی")
    await report(bot.user(1001))
    case = await one_case(settings)
    other = bot.in_group(2002, POLICE, "احمدی")
    [refusal] = texts(await other.send(f"/find {read_out(case.code)}"))
    [nothing] = texts(await other.send("/find ۱۴۰۵۹۹۹۹۹"))
    code = persian_digits(case.code)
    assert refusal == nothing.replace(persian_digits("1405-99999"), code), "the same words"
    assert "پیدا نشد" in refusal and "سطل زباله" not in refusal
    assert texts(await other.send("/find سطل زباله"))[0].startswith("پرونده‌ای با")
    # A coordinator asking in one agency's group sees that agency's cases only.
    coordinator = bot.in_group(COORDINATOR, POLICE, "دبیرخانه")
    assert texts(await coordinator.send(f"/find {read_out(case.code)}"))[0] == refusal
    # Not staff of the group it asks in: the municipality's group gives them nothing either.
    intruder = bot.in_group(2002, MUNICIPALITY, "احمدی")
    assert "کارکنان" in texts(await intruder.send(f"/find {read_out(case.code)}"))[0]
    assert texts(await intruder.send(read_out(case.code))) == [], "a bare code: no answer"
    # A resident, even the reporter, has no desk: an unknown command.
    assert "سطل" not in texts(await bot.user(1001).send(f"/find {read_out(case.code)}"))[0]


async def test_staff_see_a_case_their_agency_held_before_it_was_rerouted(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user(1001))
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("ارجاع به دستگاه دیگر")
    await clerk.press("انتظامی")
    case = await one_case(settings)
    assert case.agency_key == "police"
    [found] = [c for c in await clerk.send(f"/find {read_out(case.code)}") if c.text]
    assert "ارجاع" in found.text and "کلانتری" in found.text and "رضایی" in found.text
    assert "reply_markup" not in found.params, "no card to act on: it is not theirs now"
    await add_staff(settings, 2002, "police", "احمدی")
    police = bot.in_group(2002, POLICE, "احمدی")
    await police.send(f"/find {read_out(case.code)}")
    await police.press("کارت پرونده")
    assert "پذیرش" in str(police.button_labels())


async def test_cases_lists_overdue_first_pages_and_resends_a_card(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    for n in range(8):
        await report(
            bot.user(1100 + n), f"سطل زباله کوچه شماره {n} سه روز است خالی نشده و بوی بدی می‌دهد"
        )
    cases = await cases_in(settings)
    late = [cases[5].id, cases[6].id]
    await backdate(settings, late, days=20)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")

    [page] = await clerk.send("/cases")
    lines = page.text.split("\n\n")
    assert persian_digits(8) in lines[0] and "دیرکرد" in lines[0]
    assert lines[1].startswith("🔴") and persian_digits(cases[5].code) in lines[1]
    assert lines[2].startswith("🔴") and persian_digits(cases[6].code) in lines[2]
    assert persian_digits(cases[0].code) in lines[3] and "🔴" not in lines[3]
    assert len(lines) == 1 + 6
    await clerk.press("بعدی")
    shown = bot.api.messages[(MUNICIPALITY, page_id(bot, page))].text
    assert persian_digits(cases[7].code) in shown and "صفحهٔ ۲ از ۲" in shown
    await clerk.press("قبلی")

    old_card = cases[5].card_message_id
    calls = await clerk.press(persian_digits(cases[5].code))
    [card] = [c for c in calls if c.method == "sendMessage"]
    assert persian_digits(cases[5].code) in card.text and "پذیرش" in str(card.params)
    stripped = [c for c in calls if c.method == "editMessageReplyMarkup"]
    assert [c.params["message_id"] for c in stripped] == [old_card], "the old card is quiet"
    await clerk.press("پذیرش")  # on the card just sent
    [refreshed] = [c for c in await cases_in(settings) if c.id == cases[5].id]
    assert refreshed.status == "accepted" and refreshed.card_message_id != old_card


def page_id(bot: Bot, call: ApiCall) -> int:
    """The message id of a sent list page."""
    return next(
        key[1]
        for key, message in bot.api.messages.items()
        if key[0] == call.chat_id and message.text.startswith("📋")
    )


async def test_coordinator_lists_per_agency_and_the_triage_queue(
    bot: Bot, settings: Settings
) -> None:
    await report(bot.user(1001))
    await report(bot.user(1002), UNSURE)
    queued = next(c for c in await cases_in(settings) if c.status == "triage")
    coordinator = bot.user(COORDINATOR)
    [menu] = texts(await coordinator.send("/cases"))
    assert "دستگاه" in menu
    labels = coordinator.button_labels()
    assert any("شهرداری" in label and "۱ باز" in label for label in labels)
    assert any("صف تعیین حوزه" in label and "۱" in label for label in labels)

    await coordinator.press("شهرداری")
    listed = bot.api.messages[
        (COORDINATOR, max(k[1] for k in bot.api.messages if k[0] == COORDINATOR))
    ]
    assert "سطل زباله" in listed.text
    await coordinator.press("فهرست دستگاه‌ها")
    await coordinator.press("صف تعیین حوزه")
    await coordinator.press(persian_digits(queued.code))
    assert "مشارکت و پیشنهاد" in coordinator.button_labels()
    await coordinator.press("مشارکت و پیشنهاد")
    placed = next(c for c in await cases_in(settings) if c.id == queued.id)
    assert (placed.status, placed.domain_key) == ("forwarded", "participation")
    # A coordinator's own county: they find a case by code in their private chat.
    answer = texts(await coordinator.send(read_out(queued.code)))[0]
    assert "مشارکت" in answer and UNSURE in answer


async def test_search_by_words_and_filters_by_neighbourhood_and_status(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user(1001))
    await report(bot.user(1002), "آسفالت کوچه پر از چاله شده و ماشین‌ها آسیب می‌بینند")
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    [found] = texts(await clerk.send("/find اسفالت ماشينها"))  # spelling-blind
    cases = await cases_in(settings)
    assert persian_digits(cases[1].code) in found and persian_digits(cases[0].code) not in found

    await clerk.send("/cases")
    await clerk.press("وضعیت")
    assert any("فرستاده" in label and "(۲)" in label for label in clerk.button_labels())
    await clerk.press("بازگشت")
    await clerk.press("محله")
    await clerk.press("یوسف‌آباد (۲)")
    shown = [m for m in bot.api.delivered(MUNICIPALITY) if m.text.startswith("📋")][-1]
    assert "فیلتر: " in shown.text and "یوسف‌آباد" in shown.text
    await clerk.press("حوزه")
    await clerk.press("خدمات شهری (۲)")
    shown = [m for m in bot.api.delivered(MUNICIPALITY) if m.text.startswith("📋")][-1]
    assert f"فیلتر: {isolate('یوسف‌آباد')} · {isolate('خدمات شهری')}" in shown.text
    # Someone in the group who is not its agency's staff: every button refuses them.
    passer_by = bot.in_group(3333, MUNICIPALITY, "رهگذر")
    before = len(sent_to(bot, MUNICIPALITY))
    for label in ("حذف فیلترها", persian_digits(cases[1].code)):
        assert "کارکنان" in alerts(await passer_by.press(label))[0]
    assert len(sent_to(bot, MUNICIPALITY)) == before, "no card, no list"
    assert "فعال نیست" in alerts(await clerk.press_data("dl:police:0:::"))[0], "unsigned"


async def test_map_link_on_the_card_and_coordinates_in_the_export(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user()
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send("سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد")
    await resident.send_location(35.73, 51.41)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")
    [card] = sent_to(bot, MUNICIPALITY)
    assert "https://www.openstreetmap.org/?mlat=35.73000&mlon=51.41000" in card.text
    assert "https://neshan.org/maps/@35.73000,51.41000" in card.text

    calls = await bot.user(COORDINATOR).send("/export")
    [document] = [c for c in calls if c.method == "sendDocument"]
    rows = list(csv.reader(io.StringIO(document.files["document"][1].decode("utf-8-sig"))))
    header, row = rows[0], rows[1]
    assert row[header.index("عرض جغرافیایی")] == "35.73"
    assert row[header.index("طول جغرافیایی")] == "51.41"


def scoped(calls: list[ApiCall]) -> dict[Any, list[str]]:
    """setMyCommands calls as {chat id or "default": command names}."""
    import json

    found: dict[Any, list[str]] = {}
    for call in calls:
        if call.method != "setMyCommands":
            continue
        scope = call.params.get("scope")
        scope = json.loads(scope) if isinstance(scope, str) else scope or {"type": "default"}
        commands = call.params["commands"]
        commands = json.loads(commands) if isinstance(commands, str) else commands
        key = scope.get("chat_id", scope["type"])
        found[key] = [c["command"] for c in commands]
    return found


async def test_each_role_gets_its_own_commands_and_help(bot: Bot, settings: Settings) -> None:
    menus = scoped(bot.api.calls)
    if "setMyCommands" in bot.api.dialect.missing:  # Bale: no menus; /help says it all
        assert [c.method for c in bot.api.calls].count("setMyCommands") == 1, "asked once"
    else:
        assert menus["default"][:2] == ["new", "mine"] and "cases" not in menus["default"]
        assert {"cases", "find", "stats", "broadcast", "help"} <= set(menus[COORDINATOR])
        agencies = settings.counties[0].agencies
        for index in range(len(agencies)):
            assert menus[agency_chat(index)] == ["cases", "find", "help", "chatid", "handbook"]
        assert len(menus) == 1 + 1 + len(agencies)

    await add_staff(settings, 2001, "municipality", "رضایی")
    staff_help = texts(await bot.in_group(2001, MUNICIPALITY, "رضایی").send("/help"))[0]
    assert "/cases" in staff_help and "/find" in staff_help and "شهرداری" in staff_help
    coordinator_help = texts(await bot.user(COORDINATOR).send("/help"))[0]
    assert "/cases" in coordinator_help and "/stats" in coordinator_help
    resident_help = texts(await bot.user(1001).send("/help"))[0]
    assert "/cases" not in resident_help and "۱۲۵" in resident_help
    assert texts(await bot.in_group(3333, MUNICIPALITY, "رهگذر").send("/help")) == []
    assert texts(await bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه").send("/help"))


async def test_a_server_without_set_my_commands_is_asked_once(database_url: str) -> None:
    def missing(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.method == "setMyCommands":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return None

    api = FakeBotAPI(fail=missing)
    app, _ = await start_bot(make_settings(database_url, telegram={"rate_limit": False}), api)
    assert [c.method for c in api.calls].count("setMyCommands") == 1
    await stop_bot(app)


async def test_the_desk_in_english(database_url: str) -> None:
    settings = make_settings(database_url, telegram={"rate_limit": False}, bot={"language": "en"})
    app, api = await start_bot(settings)
    bot = Bot(app, api)
    await add_staff(settings, 2001, "municipality", "Rezaei")
    resident = bot.user(1001)
    for typed in ("📝 New report", "یوسف آباد"):
        await resident.send(typed)
    await resident.press("یوسف‌آباد")
    for typed in ("سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد", "Continue ➡️"):
        await resident.send(typed)
    await resident.send("🙈 Stay anonymous")
    await resident.press("Submit report")
    case = await one_case(settings)
    clerk = bot.in_group(2001, MUNICIPALITY, "Rezaei")
    [answer] = texts(await clerk.send(f"/find {case.code.replace('-', '')}"))
    assert answer.startswith("🗂 Case") and "History:" in answer
    [page] = texts(await clerk.send("/cases"))
    assert "1 cases, 0 overdue — page 1 of 1" in page
    assert texts(await clerk.send("/help"))[0].startswith("For the staff of")
    await stop_bot(app)
