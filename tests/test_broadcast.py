"""Broadcasts: composing, previewing, scheduling, stopping, and exactly-once delivery."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import jdatetime
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.error import TimedOut

from bot.app import broadcast_sends_at_once as sends_at_once
from bot.broadcasting import CampaignSender
from bot.config import Settings
from bot.digits import persian_digits
from bot.jalali import TEHRAN, utcnow
from bot.pipeline import start_due_campaigns
from bot.services import broadcasts
from bot.services.reference import sync_reference_data
from models.db import create_engine, create_session_factory
from models.entities import Campaign, CampaignRecipient, Neighbourhood, RecipientStatus, User
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import (
    TESTS_BOT,
    ApiCall,
    ChatUser,
    FakeBotAPI,
    bots_in_deployment,
    first_neighbourhood,
    leading,
    start_bot,
    stop_bot,
    texts,
    wait_for,
)
from tests.test_agency import report

BOLD = [{"type": "bold", "offset": 0, "length": 5}]


async def add_residents(
    settings: Settings,
    count: int,
    *,
    first_id: int = 100_000,
    neighbourhood_key: str | None = None,
    **values: Any,
) -> None:
    """Opted-in residents, inserted in bulk. With MAHALLE_TEST_BOTS=2 the deployment has a
    county more, and a resident whose county nothing tells (no place saved, no report) is in
    none: there they live in the test's county and talk to its bot, unless told otherwise."""
    if bots_in_deployment() == 2:
        values = {"bot_key": TESTS_BOT, **values}
        neighbourhood_key = neighbourhood_key or first_neighbourhood(settings)
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        place = None
        if neighbourhood_key:
            where = select(Neighbourhood.id).where(Neighbourhood.key == neighbourhood_key)
            place = await session.scalar(where)
            if place is None and bots_in_deployment() == 2:  # before the bot loaded the places
                await sync_reference_data(session=session, settings=settings)
                place = await session.scalar(where)
        defaults = {
            "language": "fa", "neighbourhood_id": place, "broadcasts_opt_in": True,
            "broadcasts_chosen": False, "broadcast_intro_sent": False, "blocked_bot": False,
        }  # fmt: skip
        rows = [
            {**defaults, "id": first_id + n, "created_at": utcnow(), **values} for n in range(count)
        ]
        await session.execute(insert(User), rows)
        await session.commit()
    await engine.dispose()


async def launch_to_everyone(factory: async_sessionmaker[AsyncSession], *, expected: int) -> int:
    """A text campaign to every opted-in resident, due now; its id."""
    async with factory() as session:
        campaign = await broadcasts.start_draft(session, created_by=COORDINATOR)
        campaign.content, campaign.audience = {"text": "اطلاعیه", "entities": []}, {"kind": "all"}
        recipients = await broadcasts.launch(
            session, campaign=campaign, scheduled_at=utcnow(), progress_chat_id=COORDINATOR
        )
        assert recipients == expected
        await session.commit()
        return campaign.id


async def compose(
    coordinator: ChatUser, audience: str, *, when: str | None = None, picks: list[str] | None = None
) -> list[ApiCall]:
    """Walk the /broadcast conversation up to the preview."""
    await coordinator.send("/broadcast")
    await coordinator.send_content(
        text="جلسه هم‌اندیشی اهالی جمعه ساعت ۱۰ در سرای محله", entities=BOLD
    )
    await coordinator.press(audience)
    for pick in picks or []:
        await coordinator.press(pick)
    if picks:
        await coordinator.press("تأیید")
    if when is None:
        return await coordinator.press("همین حالا")
    return await coordinator.send(when)


async def wait_for_campaigns(bot: Bot) -> None:
    tasks = list(bot.app.bot_data["runtime"].campaign_tasks.values())
    await asyncio.gather(*tasks)


async def count_rows(settings: Settings, model: Any, *where: Any) -> int:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = await session.scalar(select(func.count()).select_from(model).where(*where))
    await engine.dispose()
    return int(found or 0)


async def test_compose_preview_send_and_report(bot: Bot, settings: Settings) -> None:
    await add_residents(settings, 12)
    await add_residents(settings, 3, first_id=200_000, broadcasts_opt_in=False)
    coordinator = bot.user(COORDINATOR)
    preview = await compose(coordinator, "همهٔ مشترکان")
    shown = [c for c in preview if c.method == "sendMessage"]
    assert shown[1].text == "جلسه هم‌اندیشی اهالی جمعه ساعت ۱۰ در سرای محله"
    assert shown[1].params["entities"] == BOLD, "formatting kept exactly"
    assert "۱۲ نفر" in shown[2].text
    await coordinator.press("ارسال")
    await wait_for_campaigns(bot)

    for resident in range(100_000, 100_012):
        [message] = bot.api.delivered(resident)
        assert message.text.startswith("جلسه هم‌اندیشی") and "/settings" in message.text
    assert all(bot.api.delivered(200_000 + n) == [] for n in range(3)), (
        "opted-out residents skipped"
    )
    final = bot.api.delivered(COORDINATOR)[-1].text
    assert "تمام شد" in final and "۱۲ از ۱۲" in final


async def test_the_how_to_stop_line_comes_only_the_first_time(bot: Bot, settings: Settings) -> None:
    await add_residents(settings, 2)
    coordinator = bot.user(COORDINATOR)
    for _ in range(2):
        await compose(coordinator, "همهٔ مشترکان")
        await coordinator.press("ارسال")
        await wait_for_campaigns(bot)
    first, second = bot.api.delivered(100_000)
    assert "/settings" in first.text and "/settings" not in second.text


async def test_district_audience_counts_only_that_district(bot: Bot, settings: Settings) -> None:
    await add_residents(settings, 4, neighbourhood_key="d06-jahad")
    await add_residents(settings, 6, first_id=300_000, neighbourhood_key="d07-ghasr")
    preview = await compose(bot.user(COORDINATOR), "ساکنان منطقه‌های انتخابی", picks=["منطقه ۷"])
    assert "۶ نفر" in texts(preview)[-1]


async def test_past_or_malformed_times_are_refused_with_an_example(bot: Bot) -> None:
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/broadcast")
    await coordinator.send("اطلاعیه قطعی آب فردا")
    await coordinator.press("همهٔ مشترکان")
    assert "۱۴۰۵/۰۹/۱۲ ۱۸:۳۰" in texts(await coordinator.send("فردا ساعت ۶"))[0]
    assert "گذشته" in texts(await coordinator.send("۱۴۰۰/۰۱/۰۱ ۱۰:۰۰"))[0]


async def test_scheduled_broadcast_waits_for_its_time(bot: Bot, settings: Settings) -> None:
    await add_residents(settings, 3)
    later = (utcnow() + timedelta(days=2)).astimezone(TEHRAN)
    jalali = jdatetime.datetime.fromgregorian(datetime=later.replace(tzinfo=None))
    typed = persian_digits(jalali.strftime("%Y/%m/%d %H:%M"))
    coordinator = bot.user(COORDINATOR)
    preview = await compose(coordinator, "همهٔ مشترکان", when=typed)
    assert "ارسال شود؟" in texts(preview)[-1]
    await coordinator.press("ارسال")
    runtime = bot.app.bot_data["runtime"]
    assert runtime.campaign_tasks == {}, "not started before its time"
    assert bot.api.delivered(100_000) == []
    started = await start_due_campaigns(bot.jobs_runtime, now=utcnow() + timedelta(days=3))
    assert len(started) == 1
    await wait_for_campaigns(bot)
    assert len(bot.api.delivered(100_000)) == 1


async def test_stop_button_halts_a_scheduled_campaign(bot: Bot, settings: Settings) -> None:
    await add_residents(settings, 3)
    coordinator = bot.user(COORDINATOR)
    later = jdatetime.datetime.fromgregorian(
        datetime=(utcnow() + timedelta(days=1)).astimezone(TEHRAN).replace(tzinfo=None)
    )
    await compose(coordinator, "همهٔ مشترکان", when=later.strftime("%Y/%m/%d %H:%M"))
    await coordinator.press("ارسال")
    assert "متوقف" in (await coordinator.press("توقف ارسال"))[0].text
    assert await start_due_campaigns(bot.jobs_runtime, now=utcnow() + timedelta(days=2)) == []
    assert bot.api.delivered(100_000) == []


async def test_only_coordinators_can_broadcast(bot: Bot) -> None:
    replies = texts(await bot.user(1001).send("/broadcast"))
    assert "فرمان" in replies[0]


async def test_first_report_opts_in_and_settings_opt_out(bot: Bot, settings: Settings) -> None:
    resident = bot.user(1001)
    await report(resident)
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        assert (await session.get(User, 1001)).broadcasts_opt_in  # type: ignore[union-attr]
    await resident.send("/settings")
    await resident.press("قطع پیام‌های همگانی")
    async with create_session_factory(engine)() as session:
        user = await session.get(User, 1001)
        assert user is not None and not user.broadcasts_opt_in
        assert await broadcasts.count_audience(session, {"kind": "all"}) == 0
    await engine.dispose()
    await report(resident, "چاله بزرگ وسط خیابان اصلی محله هنوز پر نشده است")
    async with create_session_factory(engine)() as session:
        assert not (await session.get(User, 1001)).broadcasts_opt_in, "a choice made stays made"  # type: ignore[union-attr]
    await engine.dispose()


async def test_thousands_of_recipients_exactly_once_through_faults_and_a_kill(
    bot: Bot, settings: Settings
) -> None:
    total = 3000
    await add_residents(settings, total)
    blocked = {100_000 + n for n in range(0, total, 50)}
    timed_out_once: set[int] = {100_000 + n for n in range(7, total, 97)}
    sends: list[int] = []
    floods = [1500]
    halfway = asyncio.Event()

    def transport(call: ApiCall) -> tuple[int, dict[str, Any]] | Exception | None:
        chat = call.chat_id or 0
        if call.method != "sendMessage" or chat < 100_000:
            return None
        if chat in blocked:
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        if chat in timed_out_once:
            timed_out_once.discard(chat)
            return TimedOut("timed out")
        if floods and len(sends) == floods[0]:
            floods.pop()
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests",
                "parameters": {"retry_after": 3},
            }
        sends.append(chat)
        if len(sends) == total // 2:
            halfway.set()
        return None

    bot.api.fail = transport
    engine = create_engine(settings.database.url)
    factory = create_session_factory(engine)
    campaign_id = await launch_to_everyone(factory, expected=total)
    paused: list[float] = []

    async def no_wait(seconds: float) -> None:
        paused.append(seconds)

    def sender() -> CampaignSender:
        return CampaignSender(
            bot.app.bot, factory, settings.broadcast, intro="", sleep=no_wait,
            rate_per_second=1e9, sends_at_once=sends_at_once(settings),
        )  # fmt: skip

    first = asyncio.create_task(sender().run(campaign_id))
    await halfway.wait()
    first.cancel()  # the process is stopped half-way
    await asyncio.gather(first, return_exceptions=True)
    sent_before_restart = len(sends)
    await sender().run(campaign_id)  # a new process picks it up

    assert total // 2 <= sent_before_restart < total
    assert len(sends) == len(set(sends)) == total - len(blocked), "everyone reachable, exactly once"
    assert any(2 < seconds <= 3 for seconds in paused), "retry_after honoured"
    async with factory() as session:
        counts = await broadcasts.progress(session, campaign_id)
        blocked_users = await session.scalar(
            select(func.count()).select_from(User).where(User.blocked_bot.is_(True))
        )
        status = (await session.get(Campaign, campaign_id)).status  # type: ignore[union-attr]
    await engine.dispose()
    assert (counts.sent, counts.blocked, counts.failed, counts.pending) == (
        total - len(blocked),
        len(blocked),
        0,
        0,
    )
    assert blocked_users == len(blocked) and status == "done"
    assert await count_rows(settings, CampaignRecipient) == total


async def test_a_flood_pause_leaves_the_recipient_to_other_workers(
    bot: Bot, settings: Settings
) -> None:
    """The sender used to wait out a 429 inside the recipient's transaction, holding its row
    lock (and a connection idle in transaction) as long as Telegram asked."""
    if not settings.database.url.startswith("postgresql"):
        pytest.skip("SQLite has no row locks")
    await add_residents(settings, 2)
    floods = [(429, {"ok": False, "error_code": 429, "description": "Too Many Requests",
                     "parameters": {"retry_after": 5}})]  # fmt: skip

    def transport(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.method == "sendMessage" and (call.chat_id or 0) >= 100_000 and floods:
            return floods.pop()
        return None

    bot.api.fail = transport
    engine = create_engine(settings.database.url)
    factory = create_session_factory(engine)
    campaign_id = await launch_to_everyone(factory, expected=2)
    free_during_pause: list[bool] = []
    now = [0.0]  # the sender's clock, moved on by its pauses

    async def pause(seconds: float) -> None:
        now[0] += seconds
        async with factory() as other:
            try:
                pending = await other.scalars(
                    select(CampaignRecipient.user_id)
                    .where(CampaignRecipient.status == RecipientStatus.PENDING)
                    .with_for_update(nowait=True)
                )
                free_during_pause.append(len(pending.all()) == 2)
            except DBAPIError:  # another transaction holds a recipient
                free_during_pause.append(False)

    sender = CampaignSender(
        bot.app.bot, factory, settings.broadcast, intro="", sleep=pause, rate_per_second=1e9,
        clock=lambda: now[0],
    )  # fmt: skip
    await sender.run(campaign_id)
    await engine.dispose()
    assert free_during_pause == [True], "one pause, with both recipients free to take"
    assert [len(bot.api.delivered(user_id)) for user_id in (100_000, 100_001)] == [1, 1]


class SlowSendsAPI(FakeBotAPI):
    """The fake Bot API, taking `seconds` for each message to a resident; counts how many such
    sends were in flight at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.in_flight, self.most_in_flight = seconds, 0, 0
        self.started: list[float] = []

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if not url.endswith("/sendMessage"):
            return await super().do_request(url, method, *args, **kwargs)
        self.started.append(time.monotonic())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            return await super().do_request(url, method, *args, **kwargs)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("at_once", [1, 4])
async def test_several_recipients_at_once_each_once_at_the_configured_rate(
    settings: Settings, at_once: int
) -> None:
    if at_once > 1 and not settings.database.url.startswith("postgresql"):
        pytest.skip("SQLite sends one at a time (no row locks to keep two sends apart)")
    await add_residents(settings, 24)
    api = SlowSendsAPI(0.1)  # Telegram a network away
    app, _ = await start_bot(settings, api, role="worker")
    factory = app.bot_data["runtime"].session_factory
    campaign_id = await launch_to_everyone(factory, expected=24)
    rate = 40.0
    sender = CampaignSender(
        app.bot, factory, settings.broadcast, intro="", rate_per_second=rate,
        sends_at_once=at_once,
    )  # fmt: skip
    began = time.monotonic()
    await sender.run(campaign_id)
    await stop_bot(app)
    assert [len(api.delivered(100_000 + n)) for n in range(24)] == [1] * 24, "everyone, once"
    assert api.most_in_flight == at_once
    # Each send takes the next slot, 1/rate after the one before: the 24th is not sent before
    # its slot, however many are sent at once.
    assert max(api.started) - began >= 23 / rate - 0.002, "the configured rate kept"


async def test_a_broadcast_launched_in_a_web_process_is_sent_by_the_worker(
    settings: Settings,
) -> None:
    """One runner for each campaign: the web process that took the coordinator's press used to
    run it too, beside the worker's job, at twice the configured rate."""
    if not settings.database.url.startswith("postgresql"):
        pytest.skip("web processes need PostgreSQL")
    await add_residents(settings, 5)
    web, api = await start_bot(settings, role="web")
    coordinator = ChatUser(web, api, COORDINATOR)
    await compose(coordinator, "همهٔ مشترکان")
    await coordinator.press("ارسال")
    assert web.bot_data["runtime"].campaign_tasks == {}
    assert all(api.delivered(100_000 + n) == [] for n in range(5)), "not sent by the web process"
    worker, _ = await start_bot(settings, api, role="worker")
    runtime = worker.bot_data["runtime"]
    assert await start_due_campaigns(leading(worker).bot_data["runtime"]), "the job finds it due"
    await asyncio.gather(*runtime.campaign_tasks.values())
    await stop_bot(worker)
    await stop_bot(web)
    assert [len(api.delivered(100_000 + n)) for n in range(5)] == [1] * 5
    assert "تمام شد" in api.delivered(COORDINATOR)[-1].text, "the coordinator hears it is done"


async def test_a_sender_stopped_while_it_waits_for_its_slot_sends_nothing_more(
    bot: Bot, settings: Settings
) -> None:
    """A worker's restart (or a 429's long hold-back) must not wait out the slot and then send:
    only a send already under way is finished before the sender stops."""
    await add_residents(settings, 3)
    factory = bot.app.bot_data["runtime"].session_factory
    campaign_id = await launch_to_everyone(factory, expected=3)
    sender = CampaignSender(
        bot.app.bot, factory, settings.broadcast, intro="", rate_per_second=0.2,
        sends_at_once=sends_at_once(settings),
    )  # fmt: skip
    running = asyncio.create_task(sender.run(campaign_id))
    residents = [100_000 + n for n in range(3)]
    await wait_for(lambda: any(bot.api.delivered(r) for r in residents), what="the first send")
    running.cancel()
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=2)
    assert sum(len(bot.api.delivered(r)) for r in residents) == 1, "the next slot was 5 s away"
    async with factory() as session:
        counts = await broadcasts.progress(session, campaign_id)
    assert (counts.sent, counts.pending) == (1, 2), "the one sent is on record, the rest wait"
