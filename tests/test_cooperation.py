"""Several agencies on one case: the lead asks another agency for a part of the work, the asked
agency works it on its own card, the reporter hears who joined, deadlines chase it, /stats
counts it; driven chat by chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from bot.config import Settings
from bot.digits import persian_digits
from bot.jalali import utcnow
from bot.pipeline import check_deadlines
from bot.services import tasks
from models.db import create_engine, create_session_factory
from models.entities import CaseTask, TaskEvent
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import MUNICIPALITY, add_staff, one_case, report

WELFARE = agency_chat(3)  # بهزیستی
VISIT = "لطفاً از خانوادهٔ ساکن پلاک ۱۲ بازدید کنید؛ مادر تنها و بیمار است"
CANNOT = "این محله در حوزهٔ ادارهٔ ما نیست"


async def task_rows(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(asked agency, status, reason) of every task."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(CaseTask.to_agency_key, CaseTask.status, CaseTask.reason).order_by(CaseTask.id)
        )
        found = [(str(a), str(s), r) for a, s, r in rows]
    await engine.dispose()
    return found


async def task_event_count(settings: Settings) -> int:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(TaskEvent))
    await engine.dispose()
    return int(count or 0)


async def lead_asks_welfare(bot: Bot, settings: Settings) -> tuple[ChatUser, ChatUser, ChatUser]:
    """A reported case taken on by the municipality, which asks the welfare office to visit;
    the resident, the lead's clerk and the welfare clerk."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    await add_staff(settings, 2101, "welfare-org", "کارشناس کریمی")
    resident = bot.user(1001)
    await report(resident)
    lead = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    await lead.press("پذیرش")
    await lead.press("درخواست همکاری از دستگاه دیگر")
    assert "بهزیستی" in lead.button_labels() and "شهرداری منطقه" not in lead.button_labels()
    pressed = await lead.press("بهزیستی")
    assert "گفت‌وگوی خصوصی" in alerts(pressed)[0], "the group is told where the bot asks"
    prompt = lead.private().last_text
    assert "بهزیستی" in prompt and "۱۵ دقیقه" in prompt
    # Not threaded as a reply (as on Bale): the clerk's next message there is the note.
    said = texts(await lead.private().send(VISIT))
    assert "درخواست همکاری به «بهزیستی» فرستاده شد" in said[0]
    return resident, lead, bot.in_group(2101, WELFARE, "کارشناس کریمی")


def newest_card(bot: Bot, chat_id: int, marker: str) -> str:
    """The newest text of the card with `marker` in a chat, edits included, without the marks
    that keep names and numbers in their direction."""
    found = [m.text for m in bot.api.delivered(chat_id) if marker in m.text][-1]
    return found.translate(dict.fromkeys(range(0x2066, 0x206A)))


async def test_lead_asks_welfare_to_visit_welfare_accepts_and_finishes_then_case_resolved(
    bot: Bot, settings: Settings
) -> None:
    resident, lead, welfare = await lead_asks_welfare(bot, settings)
    case = await one_case(settings)
    code = persian_digits(case.code)
    card = newest_card(bot, WELFARE, "درخواست همکاری")
    assert code in card and VISIT in card and "شهرداری منطقه" in card
    assert "در انتظار پذیرش" in card
    assert "در انتظار پذیرش" in newest_card(bot, MUNICIPALITY, "📌"), "the lead sees the task"
    assert await task_rows(settings) == [("welfare-org", "asked", None)]
    assert not [t for t in texts(bot.api.to_chat(resident.chat_id)) if "بهزیستی" in t], (
        "the reporter hears of the welfare office once it takes its part on"
    )

    await welfare.press("می‌پذیریم")
    assert "در دست انجام" in newest_card(bot, WELFARE, "درخواست همکاری")
    assert "«بهزیستی» هم برای رسیدگی به گزارش" in resident.last_text
    await welfare.press("انجام شد")
    assert "سهم خود" in resident.last_text and code in resident.last_text
    assert "بهزیستی" in resident.last_text
    assert "«بهزیستی» کار خود را" in lead.last_text
    assert "همکاری «بهزیستی»: انجام شد" in newest_card(bot, MUNICIPALITY, "📌")
    assert welfare.button_labels()[-1:] != ["✔️ انجام شد"], "a done task offers nothing more"

    await lead.press("رسیدگی شد")
    await lead.reply("سطل‌ها تخلیه و خانواده به بهزیستی معرفی شد")
    assert (await one_case(settings)).status == "resolved"
    assert await task_rows(settings) == [("welfare-org", "done", None)]
    assert await task_event_count(settings) == 3  # asked, accepted, done
    to_reporter = texts(bot.api.to_chat(resident.chat_id))
    assert not [t for t in to_reporter if "کریمی" in t or "رضایی" in t], "never which clerk"


async def test_cannot_with_a_reason_reaches_the_lead_and_coordinators(
    bot: Bot, settings: Settings
) -> None:
    resident, lead, welfare = await lead_asks_welfare(bot, settings)
    await welfare.press("از ما برنمی‌آید")
    assert "چرا" in welfare.private().last_text
    await welfare.reply("!")  # too short: asked again, nothing changes
    assert await task_rows(settings) == [("welfare-org", "asked", None)]
    await welfare.reply(CANNOT)
    assert "ثبت شد" in welfare.private().last_text
    assert await task_rows(settings) == [("welfare-org", "cannot", CANNOT)]
    assert CANNOT in lead.last_text and "بهزیستی" in lead.last_text
    coordinators = [m.text for m in bot.api.delivered(COORDINATOR_CHAT)]
    assert any(CANNOT in t for t in coordinators)
    assert "انجام‌شدنی نیست" in newest_card(bot, MUNICIPALITY, "📌")
    assert "«بهزیستی» هم" not in resident.last_text, "an agency that cannot has not joined"
    # The lead may ask the welfare office again.
    await lead.press("درخواست همکاری از دستگاه دیگر")
    assert "بهزیستی" in lead.button_labels()


async def test_third_agency_pressing_task_buttons_is_refused_with_nothing_changed(
    bot: Bot, settings: Settings
) -> None:
    await lead_asks_welfare(bot, settings)
    await add_staff(settings, 2002, "police", "سرکار احمدی")
    events = await task_event_count(settings)
    outsider = bot.in_group(2002, WELFARE, "سرکار احمدی")
    for label in ("می‌پذیریم", "از ما برنمی‌آید"):
        assert "دستگاه دیگری است" in alerts(await outsider.press(label))[0]
    lead_in_welfare = bot.in_group(2001, WELFARE, "کارشناس رضایی")
    assert "دستگاه دیگری است" in alerts(await lead_in_welfare.press("می‌پذیریم"))[0]
    coordinator = bot.in_group(COORDINATOR, WELFARE, "دبیرخانه")
    assert "دستگاه دیگری است" in alerts(await coordinator.press("می‌پذیریم"))[0]
    # Nor may the police clerk ask for help on the municipality's card, or withdraw it.
    in_lead_chat = bot.in_group(2002, MUNICIPALITY, "سرکار احمدی")
    assert (
        "مربوط به دستگاه شما نیست"
        in alerts(await in_lead_chat.press("درخواست همکاری از دستگاه دیگر"))[0]
    )
    task_id = (await one_case(settings)).id  # the first task of the first case: id 1
    forged = texts(await outsider.press_data(f"task:t-done:{task_id}:forgedsig0"))
    assert forged == []
    assert await task_rows(settings) == [("welfare-org", "asked", None)]
    assert await task_event_count(settings) == events


async def test_lead_withdraws_a_request_and_the_asked_agency_is_told(
    bot: Bot, settings: Settings
) -> None:
    _, lead, welfare = await lead_asks_welfare(bot, settings)
    await lead.press("درخواست همکاری از دستگاه دیگر")
    assert "بهزیستی" not in lead.button_labels()[-8:-1], "not asked twice while open"
    await lead.press("لغو درخواست از «بهزیستی»")
    assert await task_rows(settings) == [("welfare-org", "cancelled", None)]
    assert "لغو شد" in welfare.last_text
    assert "لغو شد" in newest_card(bot, WELFARE, "درخواست همکاری")
    assert welfare.button_labels() == [], "a withdrawn request offers nothing to press"


async def test_resolving_with_a_task_open_lists_it_and_closes_it(
    bot: Bot, settings: Settings
) -> None:
    _, lead, welfare = await lead_asks_welfare(bot, settings)
    await welfare.press("می‌پذیریم")
    await lead.press("رسیدگی شد")
    said = texts(await lead.reply("مشکل برطرف شد"))
    assert any("هنوز باز بودند" in t and "بهزیستی" in t for t in said)
    assert await task_rows(settings) == [("welfare-org", "cancelled", "دستگاه مسئول گزارش را بست")]
    assert "به پایان رسید" in welfare.last_text
    assert welfare.button_labels()[-2:] != ["✔️ انجام شد", "⛔️ از ما برنمی‌آید"]


async def test_chatter_after_the_note_is_left_alone(bot: Bot, settings: Settings) -> None:
    _, lead, _ = await lead_asks_welfare(bot, settings)
    assert texts(await lead.send("همکاران عزیز، جلسه ساعت ده است")) == []
    assert await task_rows(settings) == [("welfare-org", "asked", None)]


async def test_a_task_not_taken_on_in_time_is_chased_then_escalated(
    bot: Bot, settings: Settings
) -> None:
    await lead_asks_welfare(bot, settings)
    runtime = bot.jobs_runtime
    engine = create_engine(settings.database.url)
    # Asked on a Saturday 08:00 Tehran (04:30 UTC), 1405/09/14; municipal: 24 working hours
    # to a reminder, 48 to an escalation.
    asked_at = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)
    async with create_session_factory(engine)() as session:
        await session.execute(update(CaseTask).values(created_at=asked_at))
        await session.commit()
    await engine.dispose()

    def marked(chat_id: int, marker: str) -> list[str]:
        return [m.text for m in bot.api.delivered(chat_id) if marker in m.text]

    await check_deadlines(runtime, now=asked_at + timedelta(hours=3))
    await bot.user(4242).send("/help")  # any update runs the outbox
    assert marked(WELFARE, "یادآوری: درخواست همکاری") == []
    # Four working days later (Sat 6h30 + Sun–Tue 7 h each) the reminder is due, not yet
    # the escalation.
    await check_deadlines(runtime, now=asked_at + timedelta(days=3, hours=6))
    await bot.user(4242).send("/help")
    [reminder] = marked(WELFARE, "یادآوری: درخواست همکاری")
    assert "بهزیستی" in reminder
    await check_deadlines(runtime, now=asked_at + timedelta(days=9, hours=6))
    await check_deadlines(runtime, now=asked_at + timedelta(days=9, hours=7))  # once only
    await bot.user(4242).send("/help")
    [escalation] = marked(COORDINATOR_CHAT, "هنوز پذیرفته نشده")
    assert "درخواست همکاری" in escalation and VISIT in escalation
    assert len(marked(WELFARE, "یادآوری: درخواست همکاری")) == 1


async def test_stats_count_shared_cases_and_pairs(bot: Bot, settings: Settings) -> None:
    _, _, welfare = await lead_asks_welfare(bot, settings)
    before = texts(await bot.user(COORDINATOR).send("/stats"))[0]
    assert "چند دستگاه" not in before, "a request not taken on is no work together yet"
    await welfare.press("می‌پذیریم")
    figures = texts(await bot.user(COORDINATOR).send("/stats"))[0]
    assert "گزارش‌هایی که چند دستگاه با هم رسیدگی کردند: ۱" in figures
    assert "• بهزیستی + شهرداری منطقه: ۱" in figures


async def test_ask_agency_api_for_a_one_press_request(bot: Bot, settings: Settings) -> None:
    """The service a one-press «ask <agency>» calls: refused for the lead itself, for a case
    not yet taken on, and twice to the same agency; else the card goes out."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    await report(bot.user(1001))
    case = await one_case(settings)
    runtime = bot.app.bot_data["runtime"]

    async def ask(to: str) -> str:
        async with runtime.session_factory() as session:
            try:
                await tasks.ask_agency(
                    session=session, case_id=case.id, from_agency_key="municipality",
                    to_agency_key=to, note=VISIT, by_user_id=2001, by_name="کارشناس رضایی",
                    cards=runtime.card_renderer, settings=settings, now=utcnow(),
                )  # fmt: skip
            except tasks.TaskRefusedError as error:
                return error.reason
            await session.commit()
        return "asked"

    assert await ask("welfare-org") == "task-case-not-open"
    await bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی").press("پذیرش")
    assert await ask("municipality") == "task-agency-not-offered"
    assert await ask("welfare-org") == "asked"
    assert await ask("welfare-org") == "task-agency-not-offered"
    await bot.user(4242).send("/help")  # any update runs the outbox
    assert VISIT in newest_card(bot, WELFARE, "درخواست همکاری")


async def test_a_forgotten_reporter_leaves_the_task_card_too(bot: Bot, settings: Settings) -> None:
    resident, _, _ = await lead_asks_welfare(bot, settings)
    description = (await one_case(settings)).text_original
    assert description in newest_card(bot, WELFARE, "درخواست همکاری")
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    await bot.user(4242).send("/help")  # any update runs the outbox
    card = newest_card(bot, WELFARE, "درخواست همکاری")
    assert description not in card and VISIT in card, "the agencies' own words stay"
