"""After /forget_me nothing in the database names or points at the resident; the statistics
stay. And retention has no gaps: resolved cases close themselves, a case nobody handled loses
the phone number too, and abandoned drafts expire."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from telegram.ext import ConversationHandler

from bot.config import Settings
from bot.jobs import close_unanswered, expire_drafts
from bot.normalize import normalize
from bot.pipeline import drop_old_contacts
from bot.services import stats
from models.db import create_engine, create_session_factory
from models.entities import (
    Base,
    CaseEvent,
    ConversationState,
    Draft,
    GroupMember,
    LocalGroup,
)
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import ApiCall, ChatUser, alerts, deliver_outbox, texts
from tests.test_agency import add_staff, one_case, report
from tests.test_broadcast import compose, wait_for_campaigns
from tests.test_desk import apply_for_group, register_group
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary

MUNICIPALITY = agency_chat(0)
# Ids no one else in these tests has, so any occurrence of them is the resident's.
RESIDENT = 731_946_285
OTHER_MEMBER = 1102
PHONE = "+989135550147"
HOME = "پلاک ۴۷ کوچه یاس‌بنفش"
# Nothing an agency acts on: triage sends it to the coordinators whatever its confidence.
REPORT = f"سلام خسته نباشید، خانهٔ ما {HOME} است، ممنون از ربات خوبتان"
LATITUDE, LONGITUDE = 35.7219381, 51.4047623
PHOTO = "PHOTO-OF-THE-HOUSE-QX"
ANSWER = "زنگ واحد سوم را بزنید، آقای کاظمی‌نژاد"
GROUP_NAME = "انجمن باغچه‌بانان کوچه نسترن‌سپید"
GROUP_FIELD = "آبیاری باغچه‌های کوچه نسترن‌سپید"
DRAFT_TEXT = "چراغ برق تیر جلوی خانهٔ خانم فرهادپور خاموش است"
REDACTED = "[حذف‌شده به درخواست گزارش‌دهنده]"
REDACTED_GROUP = "[حذف‌شده به درخواست بنیان‌گذار]"


async def file_full_report(resident: ChatUser) -> None:
    """A report with the home address, a photo, a location and the phone number shared."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(REPORT)
    await resident.send_photo(PHOTO)
    await resident.send_location(LATITUDE, LONGITUDE)
    await resident.send("ادامه ⬅️")
    await resident.send_contact(PHONE)
    await resident.press("از طرف خودم")
    await resident.press("ثبت گزارش")


async def place_from_triage(bot: Bot) -> None:
    """Triage could not place the report: a coordinator places it (a correction is kept)."""
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await coordinator.press("خدمات شهری")


async def work_the_case(bot: Bot, resident: ChatUser) -> None:
    """The agency asks, the resident answers; resolved, reopened, resolved, fixed, rated."""
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply("دقیقاً کجای کوچه؟")
    await resident.press("پاسخ می‌دهم")
    await resident.send(ANSWER)
    await clerk.press("رسیدگی شد")
    await clerk.reply("تخلیه شد")
    await resident.press("نه، برطرف نشده")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("این بار شسته هم شد")
    await resident.press("بله، برطرف شد")
    await resident.press("۴⭐")


async def found_group(bot: Bot, founder: ChatUser) -> None:
    """The resident registers a group and a coordinator approves it."""
    await apply_for_group(founder, GROUP_NAME, "جهاد", purpose=GROUP_FIELD)
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    await coordinator.press("تأیید")
    assert "تأیید شد" in founder.last_text


async def use_everything(bot: Bot, settings: Settings) -> ChatUser:
    """One resident who used every feature, and left a report half-written with /forget_me's
    question open."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(RESIDENT)
    await resident.send("/start")
    await resident.send("🏘 محلهٔ من")
    await resident.send("جهاد")
    await resident.press("جهاد")
    members_link = await register_group(bot, founder_id=1101)
    assert "عضو" in texts(await resident.send(f"/start {members_link}"))[0]
    await found_group(bot, resident)
    await file_full_report(resident)  # nothing triage can place: the coordinators choose
    await place_from_triage(bot)
    await work_the_case(bot, resident)
    await walk_to_summary(resident, "دیشب دزد از پشت‌بام وارد خانه همسایه شد و طلاهایشان را برد")
    await resident.press("دوستداران محیط زیست")  # on behalf of the group they joined
    await resident.press("ثبت گزارش")
    await resident.send("/settings")
    await resident.press("قطع پیام‌های همگانی")
    await resident.press("دریافت پیام‌های همگانی")
    await compose(bot.user(COORDINATOR), "همهٔ مشترکان")
    await bot.user(COORDINATOR).press("ارسال")
    await wait_for_campaigns(bot)
    assert any("جلسه هم‌اندیشی" in m.text for m in bot.api.delivered(RESIDENT))
    await bot.user(COORDINATOR).send(f"/block {RESIDENT}")  # once blocked, then let back in
    await bot.user(COORDINATOR).send(f"/unblock {RESIDENT}")
    await resident.send("/forget_me")
    await resident.send("📝 گزارش جدید")
    await resident.press("✅ جهاد")
    await resident.send(DRAFT_TEXT)
    await resident.send_location(LATITUDE, LONGITUDE)
    return resident


def shown(value: Any) -> str:
    """A stored value as text, JSON written out (Persian unescaped) where it is structured."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False) + str(value)
    return str(value)


async def hits(settings: Settings, needles: Iterable[str], numbers: Iterable[float]) -> list[str]:
    """Every table.column, in every row of every table, holding one of `needles` in its text
    or equal to one of `numbers`."""
    needles, numbers = list(needles), list(numbers)
    found = []
    engine = create_engine(settings.database.url)
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    text = shown(value)
                    found += [
                        f"{table.name}.{column} has {needle!r}"
                        for needle in needles
                        if needle in text
                    ]
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found += [f"{table.name}.{column} = {value}" for n in numbers if value == n]
    await engine.dispose()
    return sorted(set(found))


async def figures(settings: Settings, now: datetime) -> stats.Stats:
    """The statistics of the day around `now`."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = await stats.collect(
            session, settings=settings, start=now - timedelta(days=1), end=now + timedelta(days=1),
            now=now,
        )  # fmt: skip
    await engine.dispose()
    return found


def card_edits(bot: Bot) -> list[ApiCall]:
    """The edits of messages in the municipality's group, oldest first."""
    return [c for c in bot.api.to_chat(MUNICIPALITY) if c.method.startswith("edit")]


async def test_forget_me_leaves_nothing_that_names_or_points_at_them(
    bot: Bot, settings: Settings
) -> None:
    resident = await use_everything(bot, settings)
    now = datetime.now(UTC)
    before = await figures(settings, now)
    assert before.total == 2 and before.ratings == 1
    edits_before = len(card_edits(bot))

    assert "۲ گزارش" in texts(await resident.press("بله، پاک شود"))[-1]

    unique = [HOME, normalize(HOME), ANSWER, GROUP_NAME, GROUP_FIELD, DRAFT_TEXT, PHOTO]
    needles = [*unique, PHONE, PHONE.lstrip("+"), str(RESIDENT), str(LATITUDE), str(LONGITUDE)]
    assert await hits(settings, needles, [RESIDENT, LATITUDE, LONGITUDE]) == []
    conversations = [
        key
        for handlers in bot.app.handlers.values()
        for handler in handlers
        if isinstance(handler, ConversationHandler)
        for key in handler._conversations
    ]
    assert not any(RESIDENT in key for key in conversations), "nor in the bot's memory"

    after = await figures(settings, now)
    assert after == before, "the statistics stay: counts, domains, places, timings, ratings"
    assert dict(after.by_domain) == {"خدمات شهری": 1, "انتظامی و امنیت": 1}
    assert dict(after.by_neighbourhood) == {"جهاد": 1, "یوسف‌آباد": 1}
    assert after.agencies[0].reopen_rate == 1.0 and after.rating == 4.0
    card, on_behalf = await cases_in(settings)
    assert on_behalf.group_id is not None, "the group they reported for keeps its case"
    assert (card.reopen_count, card.rating, card.status) == (1, 4, "closed")
    assert (card.latitude, card.longitude, card.photo_file_ids) == (None, None, [])
    assert card.text_original == REDACTED and card.group_id is None

    [edit] = card_edits(bot)[edits_before:]
    assert edit.params["message_id"] == card.card_message_id
    assert REDACTED in edit.text and PHONE not in edit.text and HOME not in edit.text
    assert card.card_message_id is not None
    shown_now = bot.api.messages[(MUNICIPALITY, card.card_message_id)].text
    assert REDACTED in shown_now and PHONE not in shown_now


async def test_a_group_with_other_members_keeps_its_name_and_members(
    bot: Bot, settings: Settings
) -> None:
    founder = bot.user(RESIDENT)
    await found_group(bot, founder)
    link = bot.api.delivered(RESIDENT)[-1].text.split("start=")[1].strip()
    await bot.user(OTHER_MEMBER).send(f"/start {link}")
    await founder.send("/forget_me")
    await founder.press("بله، پاک شود")
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        [group] = (await session.scalars(select(LocalGroup))).all()
        members = (await session.scalars(select(GroupMember.user_id))).all()
    await engine.dispose()
    assert (group.name, group.field, group.status) == (GROUP_NAME, GROUP_FIELD, "approved")
    assert group.created_by is None and group.decided_by == COORDINATOR
    assert list(members) == [OTHER_MEMBER]


async def test_a_group_left_with_no_one_loses_its_name(bot: Bot, settings: Settings) -> None:
    founder = bot.user(RESIDENT)
    await found_group(bot, founder)
    await founder.send("/forget_me")
    await founder.press("بله، پاک شود")
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        [group] = (await session.scalars(select(LocalGroup))).all()
    await engine.dispose()
    assert (group.name, group.field, group.status) == (REDACTED_GROUP, REDACTED_GROUP, "approved")
    assert group.created_by is None and group.decided_at is not None, "its approval stays"
    assert await hits(settings, [GROUP_NAME, GROUP_FIELD], []) == []


# --- retention ------------------------------------------------------------------------------


async def resolved_case(bot: Bot, settings: Settings, resident: ChatUser) -> None:
    """A case the agency resolved, the reporter asked "was it fixed?"."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("تخلیه شد")
    assert "برطرف شد" in resident.last_text


async def test_a_resolved_case_nobody_answers_closes_itself(bot: Bot, settings: Settings) -> None:
    resident = bot.user(1001)
    await resolved_case(bot, settings, resident)
    runtime = bot.jobs_runtime
    now = datetime.now(UTC)
    assert await close_unanswered(runtime, now=now + timedelta(days=6)) == 0
    assert (await one_case(settings)).status == "resolved"
    assert await close_unanswered(runtime, now=now + timedelta(days=8)) == 1
    assert await close_unanswered(runtime, now=now + timedelta(days=9)) == 0, "once"
    case = await one_case(settings)
    assert case.status == "closed" and case.rating is None
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        last = await session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id.desc())
        )
    await engine.dispose()
    assert last is not None
    assert (last.from_status, last.to_status, last.actor_id) == ("resolved", "closed", None)
    assert last.actor_name == "سامانه"
    await resident.send("/start")  # delivers the outbox
    told = [m.text for m in bot.api.delivered(1001) if "در ۷ روز" in m.text]
    assert len(told) == 1 and "بسته شد" in told[0]
    assert case.card_message_id is not None
    card = bot.api.messages[(MUNICIPALITY, case.card_message_id)].text
    assert "بسته" in card and "سامانه" in card
    assert alerts(await resident.press("بله، برطرف شد")), "a late answer changes nothing"
    assert (await one_case(settings)).status == "closed"


async def test_a_case_nobody_handled_loses_the_phone_number_after_the_period(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user(1001)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send_contact(PHONE)
    await resident.press("ثبت گزارش")
    case = await one_case(settings)
    assert case.status == "forwarded" and case.reporter_phone == PHONE, "never accepted"
    runtime = bot.jobs_runtime
    now = datetime.now(UTC)
    assert await drop_old_contacts(runtime, now=now + timedelta(days=89)) == 0
    assert await drop_old_contacts(runtime, now=now + timedelta(days=91)) == 1
    case = await one_case(settings)
    assert case.reporter_phone is None and case.status == "forwarded"


async def test_an_abandoned_draft_expires_with_its_conversation(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user(1001)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DRAFT_TEXT)
    await bot.user(1003).send("/group")
    await bot.user(1003).send("گروهی که ثبتش نیمه‌کاره ماند")
    writer = bot.user(1002)
    await writer.send("📝 گزارش جدید")  # someone still writing is left alone
    now = datetime.now(UTC)
    assert await expire_drafts(bot.jobs, now=now + timedelta(days=6)) == 0
    await bump_draft_and_state(settings, 1002, now + timedelta(days=5))
    assert await expire_drafts(bot.jobs, now=now + timedelta(days=8)) == 1
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        drafts = (await session.scalars(select(Draft.user_id))).all()
        states = (await session.scalars(select(ConversationState.key))).all()
        registrations = (await session.scalars(select(LocalGroup))).all()
    await engine.dispose()
    assert list(drafts) == [1002] and list(states) == ["[1002, 1002]"]
    assert registrations == [], "nor a group registration left half-way"
    [reply] = texts(await resident.send_photo("LATE-PHOTO"))
    assert "دریافت شد" not in reply, "the old report is not taken up"
    assert "پاک شده" in reply and "گزارش جدید" in reply, "the draft is said gone, a new one offered"
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید", "the menu again"
    assert await cases_in(settings) == []


async def bump_draft_and_state(settings: Settings, user_id: int, when: datetime) -> None:
    """The resident last wrote at `when`."""
    from sqlalchemy import update

    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        await session.execute(update(Draft).where(Draft.user_id == user_id).values(updated_at=when))
        await session.execute(
            update(ConversationState)
            .where(ConversationState.key == json.dumps([user_id, user_id]))
            .values(updated_at=when)
        )
        await session.commit()
    await engine.dispose()


async def test_photos_and_place_still_waiting_in_the_outbox_never_go(
    bot: Bot, settings: Settings
) -> None:
    """The agency's group was held back (Telegram's limit, a worker down) when the reporter
    asked to be forgotten: the card goes, redacted; their photo and location do not."""
    resident = ChatUser(bot.app, bot.api, RESIDENT, deliver=False)
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send_photo(PHOTO)
    await resident.send_location(LATITUDE, LONGITUDE)
    await resident.send("ادامه ⬅️")
    await resident.send_contact(PHONE)
    await resident.press("ثبت گزارش")
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    assert bot.api.to_chat(MUNICIPALITY) == [], "nothing went to the agency yet"
    await deliver_outbox(bot.app)
    sent = bot.api.to_chat(MUNICIPALITY)
    assert [call.method for call in sent] == ["sendMessage"], "the card alone"
    assert REDACTED in sent[0].text and PHONE not in sent[0].text
    assert await hits(settings, [PHOTO, PHONE, str(LATITUDE)], [LATITUDE, RESIDENT]) == []
