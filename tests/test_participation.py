"""People taking part: a neighbour joins an open case ("me too") and hears its progress; a
local group offers help and the agency accepts or declines; the weekly report counts both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.cards import code_for_display
from bot.config import Settings
from bot.digits import persian_digits
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseJoin, Draft, HelpOffer, HelpOfferEvent, OutboxMessage
from tests.conftest import COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import POLICE, THEFT, add_staff, one_case, report
from tests.test_desk import register_group
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary

MUNICIPALITY = agency_chat(0)
NEIGHBOUR = 1002
SAME = DESCRIPTION + " واقعا"  # reads the same: the agency card flags it as a likely duplicate
CLERK_NAME = "کارشناس رضایی"
ME_TOO = "من هم همین مشکل را دارم"
FOUNDER = 1101


async def rows(settings: Settings, entity: Any) -> list[Any]:
    """Every row of a table, oldest first."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = list((await session.scalars(select(entity).order_by(entity.id))).all())
    await engine.dispose()
    return found


async def count(settings: Settings, entity: Any) -> int:
    """How many rows a table has."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        number = await session.scalar(select(func.count()).select_from(entity))
    await engine.dispose()
    return int(number or 0)


def cards_of(bot: Bot, chat_id: int) -> list[str]:
    """Every text the agency chat's card showed, as sent and as edited, in order."""
    return [
        c.text
        for c in bot.api.to_chat(chat_id)
        if c.method in ("sendMessage", "editMessageText") and "پذیرش" in str(c.params)
    ]


async def neighbour_reaches_the_hint(bot: Bot, user_id: int = NEIGHBOUR) -> ChatUser:
    """A second resident writes the same problem and presses "send": the open case is shown."""
    neighbour = bot.user(user_id)
    await walk_to_summary(neighbour, SAME)
    hint = texts(await neighbour.press("ثبت گزارش"))
    assert ME_TOO in neighbour.button_labels()[-2] and "مشابه" in hint[-1]
    return neighbour


# --- "me too" -------------------------------------------------------------------------------


async def test_a_neighbour_joins_an_open_case_and_hears_its_progress(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    reporter = bot.user(1001)
    await report(reporter)
    case = await one_case(settings)
    neighbour = await neighbour_reaches_the_hint(bot)
    hint = neighbour.last_text
    assert persian_digits(case.code) in hint and DESCRIPTION not in hint, "not the reporter's words"

    joined = texts(await neighbour.press(ME_TOO))

    assert "پیوستید" in joined[0] and persian_digits(case.code) in joined[0]
    assert neighbour.reply_keyboard()[0] == "📝 گزارش جدید", "the main menu comes back"
    assert len(await cases_in(settings)) == 1, "no new case"
    assert await count(settings, Draft) == 0, "the draft is closed"
    [join] = await rows(settings, CaseJoin)
    assert (join.case_id, join.user_id) == (case.id, NEIGHBOUR)
    assert "۱ شهروند دیگر" in cards_of(bot, MUNICIPALITY)[-1], "the card counts them"

    before = len(bot.api.to_chat(NEIGHBOUR))
    clerk = bot.in_group(2001, MUNICIPALITY, CLERK_NAME)
    await clerk.press("پذیرش")
    assert "پذیرفت" in neighbour.last_text and persian_digits(case.code) in neighbour.last_text
    assert "۱ شهروند دیگر" in cards_of(bot, MUNICIPALITY)[-1]
    await clerk.press("رسیدگی شد")
    await clerk.reply("سطل را خالی کردیم؛ با آقای محمدی هماهنگ شد")
    heard = [c.text for c in bot.api.to_chat(NEIGHBOUR)[before:] if c.method == "sendMessage"]
    assert len(heard) == 2 and "رسیدگی شد" in heard[-1]
    for said in heard:
        assert CLERK_NAME not in said and "محمدی" not in said, "no clerk, no note"
        assert DESCRIPTION not in said
    assert "محمدی" in reporter.last_text, "the reporter hears the note, as before"
    assert ME_TOO not in str(bot.api.to_chat(1001)), "the reporter was never offered to join"


async def test_joining_ones_own_a_closed_case_or_twice_is_refused_and_adds_nothing(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    reporter = bot.user(1001)
    await report(reporter)
    case = await one_case(settings)
    signer = bot.app.bot_data["runtime"].card_renderer.signer

    # Twice: a double tap, then a forged press from a new draft of one who joined already.
    neighbour = await neighbour_reaches_the_hint(bot)
    me_too = neighbour.data_of(ME_TOO)
    await neighbour.press_data(me_too)
    assert "دیگر فعال نیست" in alerts(await neighbour.press_data(me_too))[0]
    await walk_to_summary(neighbour, SAME)
    assert ME_TOO not in neighbour.last_text, "no hint of a case they joined"
    [draft] = await rows_of_drafts(settings, NEIGHBOUR)
    twice = alerts(await neighbour.press_data(signer.sign("pj", "j", case.id, draft[:8])))
    assert "پیش‌تر به گزارش" in twice[0]

    # One's own: the reporter writes it again; no hint, and a forged press is refused.
    await walk_to_summary(reporter, SAME)
    assert ME_TOO not in reporter.last_text
    [own_draft] = await rows_of_drafts(settings, 1001)
    own = alerts(await reporter.press_data(signer.sign("pj", "j", case.id, own_draft[:8])))
    assert "خودتان ثبت کرده‌اید" in own[0]

    # Closed: a third resident sees the hint, the agency rejects the case meanwhile.
    third = await neighbour_reaches_the_hint(bot, 1003)
    clerk = bot.in_group(2001, MUNICIPALITY, CLERK_NAME)
    await clerk.press("رد")
    await clerk.reply("در حوزهٔ ما نیست")
    closed = alerts(await third.press(ME_TOO))
    assert "دیگر باز نیست" in closed[0]

    [join] = await rows(settings, CaseJoin)
    assert (join.case_id, join.user_id) == (case.id, NEIGHBOUR), "exactly one join"
    assert len(await cases_in(settings)) == 1
    assert await count(settings, Draft) == 3, "the refused keep their drafts"
    replies = texts(await third.press("ثبت گزارش خودم"))
    assert any("ثبت شد" in reply for reply in replies), "and may file their own"
    assert len(await cases_in(settings)) == 2


async def rows_of_drafts(settings: Settings, user_id: int) -> list[str]:
    """The token of the user's draft, if any."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        data = await session.scalar(select(Draft.data).where(Draft.user_id == user_id))
    await engine.dispose()
    return [data["token"]] if data else []


async def test_mine_lists_joined_cases_and_leaving_stops_the_news(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    await report(bot.user(1001))
    case = await one_case(settings)
    neighbour = await neighbour_reaches_the_hint(bot)
    await neighbour.press(ME_TOO)

    mine = texts(await neighbour.send("/mine"))
    assert "هنوز گزارشی ثبت نکرده‌اید" in mine[0] and persian_digits(case.code) in mine[1]
    leave = neighbour.data_of("کنار کشیدن")
    done = await neighbour.press_data(leave)
    [closed] = [c for c in done if c.method == "editMessageText"]
    assert "کنار کشیدید" in closed.text
    assert await count(settings, CaseJoin) == 0
    assert "شهروند دیگر" not in cards_of(bot, MUNICIPALITY)[-1], "the count drops"
    again = alerts(await neighbour.press_data(leave))
    assert "نپیوسته‌اید" in again[0]
    heard = len(bot.api.to_chat(NEIGHBOUR))
    await bot.in_group(2001, MUNICIPALITY, CLERK_NAME).press("پذیرش")
    assert len(bot.api.to_chat(NEIGHBOUR)) == heard, "no news after leaving"


async def test_forget_me_of_a_joined_resident_keeps_the_count_not_them(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    await report(bot.user(1001))
    neighbour = await neighbour_reaches_the_hint(bot)
    await neighbour.press(ME_TOO)

    await neighbour.send("/forget_me")
    await neighbour.press("بله، پاک شود")

    [join] = await rows(settings, CaseJoin)
    assert join.user_id is None, "the link to them is gone; the count stays"
    heard = len(bot.api.to_chat(NEIGHBOUR))
    await bot.in_group(2001, MUNICIPALITY, CLERK_NAME).press("پذیرش")
    assert len(bot.api.to_chat(NEIGHBOUR)) == heard, "no news to a forgotten resident"
    assert "۱ شهروند دیگر" in cards_of(bot, MUNICIPALITY)[-1]
    outbox = await rows(settings, OutboxMessage)
    assert not [row for row in outbox if row.chat_id == NEIGHBOUR]
    assert not texts(await neighbour.send("/mine"))[1:], "no joined cases listed"


# --- local groups' offers -------------------------------------------------------------------


async def report_in_jahad(resident: ChatUser, text: str) -> None:
    """A report in Jahad (the neighbourhood of the test group)."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(text)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    await resident.press("ثبت گزارش")


async def offer(founder: ChatUser, case: Case, kind: str) -> list[str]:
    """The founder lists the open cases of the group's neighbourhood and offers `kind`."""
    code = code_for_display(case.code, "fa")
    listed = texts(await founder.send("/help_offer"))
    assert code in listed[-1]
    await founder.press(f"کمک به {code}")
    return texts(await founder.press(kind)) or [founder.api.calls[-1].text]


async def test_a_local_groups_offers_accepted_declined_and_a_strangers_press_refused(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    await add_staff(settings, 2002, "police", "احمدی")
    await register_group(bot, FOUNDER)
    await report_in_jahad(bot.user(1001), DESCRIPTION)
    await report_in_jahad(bot.user(1003), THEFT)
    rubbish, theft = await cases_in(settings)
    founder = bot.user(FOUNDER)
    outsider = bot.user(1004)
    assert "تشکل" in texts(await outsider.send("/help_offer"))[0], "no group, no list"

    await offer(founder, rubbish, "پاک‌سازی محله")
    [to_agency] = [m for m in bot.api.delivered(MUNICIPALITY) if "پیشنهاد کمک" in m.text]
    assert "دوستداران محیط زیست جهاد" in to_agency.text and "پاک‌سازی" in to_agency.text

    # Staff of another agency, and a coordinator's chat member who is no one: refused.
    for stranger in (
        bot.in_group(2002, MUNICIPALITY, "احمدی"),
        bot.in_group(4444, MUNICIPALITY, "x"),
    ):
        refused = alerts(await stranger.press("می‌پذیریم"))
        assert "دستگاه شما نیست" in refused[0]
    [pending] = await rows(settings, HelpOffer)
    assert pending.status == "pending" and await count(settings, HelpOfferEvent) == 1

    clerk = bot.in_group(2001, MUNICIPALITY, CLERK_NAME)
    decline = clerk.data_of("فعلاً نه")
    closed = [c for c in await clerk.press("می‌پذیریم") if c.method == "editMessageText"]
    assert any("پذیرفته شد" in c.text and CLERK_NAME in c.text for c in closed)
    assert "پذیرفت" in founder.last_text and CLERK_NAME not in founder.last_text
    assert "کمک پذیرفته‌شدهٔ تشکل" in cards_of(bot, MUNICIPALITY)[-1], "the card shows it"
    replay = alerts(await clerk.press_data(decline, to_agency))
    assert "پیش‌تر" in replay[0] and CLERK_NAME in replay[0]
    twice = alerts(
        await founder.press_data(
            bot.app.bot_data["runtime"].card_renderer.signer.sign("ho", "k", 1, rubbish.id, "class")
        )
    )
    assert "پیش‌تر" in twice[0]

    await offer(founder, theft, "کلاس آموزشی")
    await bot.in_group(2002, POLICE, "احمدی").press("فعلاً نه")
    assert "نپذیرفت" in founder.last_text and "احمدی" not in founder.last_text
    accepted, declined = await rows(settings, HelpOffer)
    assert (accepted.status, declined.status) == ("accepted", "declined")
    events = [(e.from_status, e.to_status) for e in await rows(settings, HelpOfferEvent)]
    assert events == [
        (None, "pending"), ("pending", "accepted"), (None, "pending"), ("pending", "declined")
    ]  # fmt: skip


# --- the weekly report ----------------------------------------------------------------------


async def test_the_weekly_report_counts_joins_and_offers(bot: Bot, settings: Settings) -> None:
    from bot.pipeline import send_weekly_report
    from bot.services import stats

    await add_staff(settings, 2001, "municipality", CLERK_NAME)
    await add_staff(settings, 2002, "police", "احمدی")
    await register_group(bot, FOUNDER)
    await report_in_jahad(bot.user(1001), DESCRIPTION)
    await report_in_jahad(bot.user(1003), THEFT)
    rubbish, theft = await cases_in(settings)
    joiner = bot.user(NEIGHBOUR)
    await report_in_jahad(joiner, SAME)
    await joiner.press(ME_TOO)
    founder = bot.user(FOUNDER)
    await offer(founder, rubbish, "پاک‌سازی محله")
    await offer(founder, theft, "سر زدن به سالمندان")
    await bot.in_group(2001, MUNICIPALITY, CLERK_NAME).press("می‌پذیریم")

    # On the Saturday morning after the week all this happened in.
    saturday = stats.week_start(datetime.now(UTC)) + timedelta(days=7, hours=8)
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=saturday)
    figures = [c.text for c in bot.api.to_chat(COORDINATOR_CHAT) if c.method == "sendMessage"][-1]
    assert "مشارکت مردم: ۱ بار" in figures
    assert "۲ پیشنهاد کمک از تشکل‌ها، ۱ پذیرفته" in figures
