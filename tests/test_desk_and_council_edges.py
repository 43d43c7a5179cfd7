"""What a coordinator, a council secretary and a local group's founder read when things go
off the usual path: a decision's agency typed instead of pressed, a scheduled broadcast
stopped, a neighbourhood's broadcast, a case placed from another copy of its triage card, a
group registered twice."""

from __future__ import annotations

from datetime import timedelta

import jdatetime
import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.digits import persian_digits
from bot.jalali import TEHRAN, utcnow
from models.db import create_engine, create_session_factory
from models.entities import CouncilDecision, GroupStatus, LocalGroup
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import report
from tests.test_broadcast import add_residents, compose
from tests.test_case_desk import UNSURE
from tests.test_council import SECRETARY, jalali_day, with_council
from tests.test_desk import apply_for_group
from tests.test_report_flow import cases_in

DECISION = "ساماندهی جمع‌آوری زباله در یوسف‌آباد تا پایان ماه"
GROUP = "دوستداران محیط زیست جهاد"


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council (`tests.test_council.with_council`)."""
    return with_council(database_url)


async def scalar(settings: Settings, query: object) -> int:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = await session.scalar(query)  # type: ignore[call-overload]
    await engine.dispose()
    return int(found or 0)


# --- 1. the council secretary's decision ----------------------------------------------------


async def test_typing_while_a_decision_waits_for_its_agency_keeps_the_decision(
    bot: Bot, settings: Settings
) -> None:
    """The secretary writes the decision, then types the agency's name instead of pressing
    its button: they are told to pick with the buttons above, the decision's text is kept, and
    the buttons still record it."""
    secretary = bot.user(SECRETARY)
    await secretary.send("/decision")
    await secretary.send(DECISION)
    assert "کدام دستگاه" in secretary.last_text
    answered = texts(await secretary.send("شهرداری"))
    assert answered, "a typed message in the agency step is answered, not met with silence"
    pressed = await secretary.press("شهرداری منطقه")
    assert not [a for a in alerts(pressed) if "فعال نیست" in a], "the agency buttons still work"
    assert "مهلت" in secretary.last_text
    recorded = texts(await secretary.send(jalali_day(5)))
    assert recorded and "ثبت شد" in recorded[0]
    assert await scalar(
        settings, select(func.count()).select_from(CouncilDecision).where(
            CouncilDecision.text == DECISION
        )
    ) == 1  # fmt: skip


# --- 2. a broadcast stopped before its time -------------------------------------------------


async def test_a_stopped_scheduled_broadcast_no_longer_says_it_is_queued(
    bot: Bot, settings: Settings
) -> None:
    """A broadcast scheduled for tomorrow, stopped: its message itself says it was stopped,
    no longer that it is queued."""
    await add_residents(settings, 2)
    coordinator = bot.user(COORDINATOR)
    later = jdatetime.datetime.fromgregorian(
        datetime=(utcnow() + timedelta(days=1)).astimezone(TEHRAN).replace(tzinfo=None)
    )
    await compose(coordinator, "همهٔ مشترکان", when=persian_digits(later.strftime("%Y/%m/%d %H:%M")))
    await coordinator.press("ارسال")
    [progress] = [
        m for m in bot.api.delivered(COORDINATOR)
        if any("توقف ارسال" in b["text"] for b in m.buttons())
    ]  # fmt: skip
    assert "در صف ارسال" in progress.text
    await coordinator.press("توقف ارسال")
    shown = bot.api.messages[(progress.chat_id, progress.message_id)].text
    assert "در صف ارسال" not in shown and "متوقف" in shown, shown


# --- 3. a broadcast to a neighbourhood ------------------------------------------------------


async def neighbourhood_preview(coordinator: ChatUser, neighbourhood: str) -> list[str]:
    """A water-cut notice to one neighbourhood's residents, composed up to its preview."""
    await coordinator.send("/broadcast")
    await coordinator.send(f"اطلاعیه: فردا از ساعت ۹ تا ۱۲ آب {neighbourhood} قطع است")
    await coordinator.press("ساکنان محله‌های انتخابی")
    await coordinator.send(neighbourhood)
    return texts(await coordinator.press("همین حالا"))


async def test_a_neighbourhood_broadcast_reaches_an_opted_in_resident_who_reported_there(
    bot: Bot, settings: Settings
) -> None:
    """A resident who reported in Yousefabad (their first report opted them in) and never
    saved a neighbourhood is among Yousefabad's residents for a broadcast, as for the county's."""
    await report(bot.user(1001))  # Yousefabad, opted in
    preview = await neighbourhood_preview(bot.user(COORDINATOR), "یوسف آباد")
    assert "گیرندگان: ۱ نفر" in preview[-1], preview[-1]


# --- 4. the coordinators' group card after a case was placed from /cases ---------------------


async def test_the_groups_triage_card_stops_offering_domains_once_placed_from_cases(
    bot: Bot, settings: Settings
) -> None:
    """A case placed from a coordinator's /cases copy of its triage card: the coordinators'
    group's copy says so too and offers no domain any more."""
    await report(bot.user(1002), UNSURE)
    [queued] = [c for c in await cases_in(settings) if c.status == "triage"]
    [group_card] = [
        m for m in bot.api.delivered(COORDINATOR_CHAT) if "نیاز به تعیین حوزه" in m.text
    ]
    coordinator = bot.user(COORDINATOR)
    await coordinator.send("/cases")
    await coordinator.press("صف تعیین حوزه")
    await coordinator.press(persian_digits(queued.code))
    await coordinator.press("مشارکت و پیشنهاد")
    [placed] = [c for c in await cases_in(settings) if c.id == queued.id]
    assert placed.status == "forwarded"
    shown = bot.api.messages[(group_card.chat_id, group_card.message_id)]
    assert not shown.buttons(), f"still offers {[b['text'] for b in shown.buttons()]}"


# --- 5. a local group registered twice ------------------------------------------------------


async def test_registering_the_same_group_again_while_it_waits_sends_no_second_request(
    bot: Bot, settings: Settings
) -> None:
    """A founder whose request still waits sends /group again: they are told it waits, and
    the coordinators get one request, not two."""
    founder = bot.user(1101)
    await apply_for_group(founder, GROUP, "جهاد")
    await founder.send("/group")
    if "نام تشکل" in founder.last_text:  # asked again: the founder fills it in again
        await founder.send(GROUP)
        await founder.send("پاکسازی پارک‌ها و کاشت درخت")
        await founder.send("جهاد")
        if any("جهاد" in label for label in founder.button_labels()):
            await founder.press("جهاد")
    requests = [m for m in bot.api.delivered(COORDINATOR_CHAT) if GROUP in m.text]
    assert len(requests) == 1, f"{len(requests)} requests for one group"
    assert await scalar(
        settings, select(func.count()).select_from(LocalGroup).where(
            LocalGroup.created_by == 1101, LocalGroup.status == GroupStatus.PENDING
        )
    ) == 1  # fmt: skip


async def test_a_broadcast_that_would_reach_no_one_cannot_be_sent(
    bot: Bot, settings: Settings
) -> None:
    """A neighbourhood where no one lives or reported: the preview says the message would
    reach no one and offers only to cancel."""
    preview = await neighbourhood_preview(bot.user(COORDINATOR), "جهاد")
    assert "گیرندگان: ۰ نفر" in preview[-1] and "به هیچ‌کس نمی‌رسد" in preview[-1]
    summary = [m for m in bot.api.delivered(COORDINATOR) if "گیرندگان" in m.text][-1]
    labels = [button["text"] for button in summary.buttons()]
    assert len(labels) == 1 and "ارسال" not in labels[0]
