"""/forget_me for the people who work cases, not only those who report them: a clerk's id and
name leave the history of the requests between agencies and of the council's decisions they
worked, their handbook readings go (the coordinators' status no longer lists or counts them) and
the handbook deadline no longer writes to them. Every column that may hold a person is known,
so a new one is not left out of forgetting unnoticed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, String, update

from bot.cli import publish_handbook
from bot.config import CouncilMember, Settings
from bot.pipeline import check_deadlines
from models.db import create_engine, create_session_factory
from models.entities import Base, HandbookReading
from tests.conftest import COORDINATOR, Bot, make_settings
from tests.fakebot import ChatUser, deliver_outbox, start_bot, stop_bot, texts
from tests.test_agency import MUNICIPALITY, add_staff
from tests.test_cooperation import lead_asks_welfare
from tests.test_council import DECISION, SECRETARY, decision_rows, jalali_day, with_council
from tests.test_forget_everything import hits
from tests.test_handbook import EXAMPLE, WELFARE_CLERK, plain, staff_and_council

PROGRESS = "قرارداد پیمانکار امضا شد"
# Every column that is a Telegram-sized number or a name: True when it may hold a person
# (/forget_me clears or deletes it, bot/services/users.py), else why it never does.
PERSON_COLUMNS = {
    "agencies.chat_id": "an agency's group",
    "agencies.name": "an agency",
    "agenda_items.added_by": True,
    "ban_events.actor_id": True,
    "ban_events.user_id": True,
    "campaign_recipients.user_id": True,
    "campaigns.created_by": True,
    "campaigns.progress_chat_id": True,
    "campaigns.progress_message_id": "a message",
    "case_events.actor_id": True,
    "case_events.actor_name": True,
    "case_joins.user_id": True,
    "case_tasks.card_chat_id": "an agency's group",
    "case_tasks.card_message_id": "a message",
    "case_tasks.created_by": True,
    "cases.card_chat_id": "an agency's group",
    "cases.card_message_id": "a message",
    "cases.reporter_id": True,
    "conversation_states.name": "a conversation",
    "council_decisions.created_by": True,
    "council_steps.user_id": True,
    "decision_events.actor_id": True,
    "decision_events.actor_name": True,
    "districts.name": "a district",
    "drafts.user_id": True,
    "group_members.user_id": True,
    "group_pacing.chat_id": "a group",
    "handbook_files.name": "a file",
    "handbook_readings.name": True,
    "handbook_readings.user_id": True,
    "handbook_versions.published_by": True,
    "handled_updates.update_id": "an update",
    "help_offer_events.actor_id": True,
    "help_offer_events.actor_name": True,
    "help_offers.offered_by": True,
    "invites.created_by": True,
    "invites.used_by": True,
    "local_groups.created_by": True,
    "local_groups.decided_by": True,
    "local_groups.name": "a group (taken off when its founder goes alone)",
    "neighbourhoods.name": "a neighbourhood",
    "outbox.chat_id": True,
    "outbox.sent_message_id": "a message",
    "pending_inputs.chat_id": True,
    "pending_inputs.prompt_message_id": "a message",
    "pending_inputs.user_id": True,
    "staff.name": True,
    "staff.user_id": True,
    "task_events.actor_id": True,
    "task_events.actor_name": True,
    "triage_corrections.actor_id": True,
    "users.id": True,
}


def handbook_settings(database_url: str, tmp_path: Path) -> Settings:
    """The test config with the example handbook in a folder of its own and a council member
    (as tests/test_handbook.py has it)."""
    folder = tmp_path / "handbook"
    shutil.copytree(EXAMPLE, folder)
    base = make_settings(database_url, telegram={"rate_limit": False})
    county = base.counties[0].model_copy(update={"council_members": [CouncilMember(id=7001)]})
    book = base.handbook.model_copy(update={"path": folder})
    return base.model_copy(update={"counties": [county], "handbook": book})


async def forget(person: ChatUser) -> None:
    """The person asks, in private, to be forgotten, and confirms."""
    await person.send("/forget_me")
    assert "پاک شد" in texts(await person.press("بله، پاک شود"))[-1]


def test_every_column_that_may_hold_a_person_is_known() -> None:
    """A new id-sized or name column must be said to hold a person (and be forgotten) or not."""
    found = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, BigInteger)
        or (isinstance(column.type, String) and column.name.split("_")[-1] == "name")
    }
    assert found == set(PERSON_COLUMNS)


async def test_a_clerks_forget_me_takes_them_off_the_tasks_they_worked(
    bot: Bot, settings: Settings
) -> None:
    """A clerk who asks to be forgotten loses their name and id from the case history (it is
    done for case events), and just as much from the history of the requests between agencies
    they worked on: nothing in the database names or points at them afterwards."""
    _, _, welfare = await lead_asks_welfare(bot, settings)
    await welfare.press("می‌پذیریم")
    await forget(welfare.private())
    assert await hits(settings, ["کارشناس کریمی"], [2101]) == []


async def test_a_clerks_forget_me_takes_them_off_the_council_decisions_they_worked(
    database_url: str,
) -> None:
    """The clerk who accepted a council decision and reported its progress is forgotten: the
    decision and its history stay, naming no one; so for the secretary who recorded it."""
    settings = with_council(database_url)
    app, api = await start_bot(settings)
    try:
        bot = Bot(app, api)
        await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
        secretary = bot.user(SECRETARY)
        await secretary.send("/meeting")
        assert "ثبت شد" in texts(await secretary.send(jalali_day(1)))[0]
        await secretary.send("/decision")
        await secretary.send(DECISION)
        await secretary.press("شهرداری")
        assert "ثبت شد" in texts(await secretary.send(jalali_day(2)))[0]
        await deliver_outbox(app)
        clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
        await clerk.press("پذیرش مصوبه")
        await clerk.press("گزارش پیشرفت")
        assert "ثبت شد" in texts(await bot.user(2001).send(PROGRESS))[0]
        await forget(bot.user(2001))
        await forget(secretary)
        assert await hits(settings, ["کارشناس رضایی"], [2001, SECRETARY]) == []
        assert await decision_rows(settings) == ([("accepted", PROGRESS)], 3)
    finally:
        await stop_bot(app)


async def asked_to_read_then_forgotten(app: Any, api: Any, settings: Settings) -> Bot:
    """Staff and the council asked to read the handbook just published; then the welfare clerk
    asks to be forgotten."""
    bot = Bot(app, api)
    people = await staff_and_council(bot, settings)
    await publish_handbook(settings, by=COORDINATOR)
    await deliver_outbox(app)
    await forget(people[WELFARE_CLERK])
    return bot


async def test_a_forgotten_clerk_is_no_longer_named_in_the_handbook_status(
    database_url: str, tmp_path: Path
) -> None:
    """A clerk asked to read the handbook, then forgotten: the coordinators' /handbook_status
    neither names nor counts them, and no reading keeps their name or id."""
    settings = handbook_settings(database_url, tmp_path)
    app, api = await start_bot(settings)
    try:
        await asked_to_read_then_forgotten(app, api, settings)
        status = plain(texts(await ChatUser(app, api, COORDINATOR).send("/handbook_status"))[0])
        assert "کارشناس کریمی" not in status, status
        assert "از ۲ نفر" in status, status
        assert await hits(settings, ["کارشناس کریمی"], [WELFARE_CLERK]) == []
    finally:
        await stop_bot(app)


async def test_a_forgotten_clerk_is_not_chased_to_read_the_handbook(
    database_url: str, tmp_path: Path
) -> None:
    """/forget_me promises that the bot writes to them no more: two working days later the
    handbook's reminder goes to those still asked, not to the clerk forgotten meanwhile."""
    settings = handbook_settings(database_url, tmp_path)
    app, api = await start_bot(settings)
    try:
        bot = await asked_to_read_then_forgotten(app, api, settings)
        told_before = len(api.to_chat(WELFARE_CLERK))
        engine = create_engine(settings.database.url)
        asked_at = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)  # Saturday 08:00 in Tehran
        async with create_session_factory(engine)() as session:
            await session.execute(update(HandbookReading).values(asked_at=asked_at))
            await session.commit()
        await engine.dispose()
        await check_deadlines(bot.jobs_runtime, now=asked_at + timedelta(days=3, hours=6))
        await deliver_outbox(app)
        reminded = [c.text for c in api.to_chat(7001) if "یادآوری" in c.text]
        assert len(reminded) == 1, "the council member who has not read it is reminded"
        assert texts(api.to_chat(WELFARE_CLERK)[told_before:]) == [], "the forgotten clerk is not"
    finally:
        await stop_bot(app)
