"""What changed meanwhile wins: an agency's request to another ends with its lead's reroute;
a case rejected before its card went is not announced as sent; a resident who turned
broadcasts off is not sent one scheduled before; a clerk's owed text is taken whatever it looks
like; and forgetting a reporter reaches the council's agenda already sent."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.digits import persian_digits
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import ChatUser, texts
from tests.test_agency import MUNICIPALITY, POLICE, add_staff, one_case, report
from tests.test_cooperation import lead_asks_welfare, task_rows
from tests.test_council import MEMBER, SECRETARY, with_council
from tests.test_outbox import Clock, deliver, queued_report
from tests.test_report_flow import cases_in


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council (`tests.test_council.with_council`)."""
    return with_council(database_url)


async def test_a_task_asked_by_the_former_lead_does_not_outlive_a_reroute(
    bot: Bot, settings: Settings
) -> None:
    """The municipality took the case on and asked the welfare office for a visit, then sent
    the case to the police: the municipality's request should end with its lead, and welfare
    pressing its old task card afterwards changes nothing, tells the reporter nothing and
    writes nothing into the police's chat."""
    resident, lead, welfare = await lead_asks_welfare(bot, settings)
    take_on = welfare.data_of("می‌پذیریم")  # kept: its card may lose the button
    await lead.press("ارجاع به دستگاه دیگر")
    await lead.press("انتظامی")
    case = await one_case(settings)
    assert case.agency_key == "police"
    police_before = len(bot.api.to_chat(POLICE))
    resident_before = len(bot.api.to_chat(resident.chat_id))
    await welfare.press_data(take_on)
    if "انجام شد" in str(welfare.button_labels()):
        await welfare.press("انجام شد")
    rows = await task_rows(settings)
    heard = texts(bot.api.to_chat(resident.chat_id)[resident_before:])
    to_police = texts(bot.api.to_chat(POLICE)[police_before:])
    assert rows[0][1] not in ("accepted", "done"), rows
    assert [t for t in heard if "بهزیستی" in t] == [], heard
    assert [t for t in to_police if "بهزیستی" in t] == [], to_police


async def test_forget_me_leaves_no_quote_in_the_council_agenda_already_sent(
    bot: Bot, settings: Settings
) -> None:
    """A case on the agenda, the agenda queued (and sent) to the members the day before the
    meeting: its messages quote the description's first 200 characters. The reporter then
    asks to be forgotten: no row anywhere, the outbox's included, still holds their words."""
    from datetime import timedelta

    import jdatetime

    from bot.cards import code_for_display
    from bot.jalali import TEHRAN, utcnow
    from bot.pipeline import send_council_agendas
    from tests.test_agenda import PRIVATE_WORDS
    from tests.test_forget_everything import hits

    resident = bot.user(1001)
    await report(resident, PRIVATE_WORDS)
    case = await one_case(settings)
    await bot.user(COORDINATOR).send(f"/agenda_add {code_for_display(case.code, 'fa')}")
    await bot.user(MEMBER).send("/start")
    secretary = bot.user(SECRETARY)
    await secretary.send("/meeting")
    tomorrow = (utcnow().astimezone(TEHRAN) + timedelta(days=1)).date()
    await secretary.send(str(jdatetime.date.fromgregorian(date=tomorrow).strftime("%Y/%m/%d")))
    assert await send_council_agendas(bot.jobs_runtime, now=utcnow()) == 2
    await bot.user(4242).send("/help")  # any update runs the outbox
    assert any(PRIVATE_WORDS[:40] in m.text for m in bot.api.delivered(MEMBER))
    await resident.send("/forget_me")
    assert "۱ گزارش" in texts(await resident.press("بله، پاک شود"))[-1]
    assert await hits(settings, [PRIVATE_WORDS[:40]], []) == []


async def test_a_resident_who_opts_out_after_a_broadcast_was_scheduled_does_not_get_it(
    bot: Bot, settings: Settings
) -> None:
    """A coordinator schedules a broadcast for tomorrow to every subscriber; a resident who
    was subscribed then turns broadcasts off in /settings. When the broadcast goes, they are
    not sent it: the choice they made is honoured whatever was scheduled before it."""
    from datetime import timedelta

    import jdatetime

    from bot.jalali import TEHRAN, utcnow
    from bot.pipeline import start_due_campaigns
    from tests.test_broadcast import compose, wait_for_campaigns

    resident = bot.user(1001)
    await report(resident)  # a first report subscribes them
    coordinator = bot.user(COORDINATOR)
    later = jdatetime.datetime.fromgregorian(
        datetime=(utcnow() + timedelta(days=1)).astimezone(TEHRAN).replace(tzinfo=None)
    )
    await compose(coordinator, "همهٔ مشترکان", when=persian_digits(later.strftime("%Y/%m/%d %H:%M")))
    await coordinator.press("ارسال")
    await resident.send("/settings")
    await resident.press("قطع پیام‌های همگانی")
    before = len(bot.api.delivered(resident.chat_id))
    assert len(await start_due_campaigns(bot.jobs_runtime, now=utcnow() + timedelta(days=2))) == 1
    await wait_for_campaigns(bot)
    got = [m.text for m in bot.api.delivered(resident.chat_id)[before:]]
    assert [t for t in got if "جلسه هم‌اندیشی" in t] == [], got


async def test_a_case_rejected_before_its_card_went_is_not_announced_as_sent(
    bot: Bot, settings: Settings
) -> None:
    """The municipality's card still waits in the outbox; a coordinator, from the card resent
    in the group, rejects the case. The reporter hears it was rejected, and never afterwards
    that it was sent to the municipality (a card of a case already rejected tells no one)."""
    resident = await queued_report(bot, 1001)
    case = await one_case(settings)
    coordinator = ChatUser(
        bot.app, bot.api, COORDINATOR, chat_id=MUNICIPALITY, name="دبیرخانه", deliver=False
    )
    await coordinator.send(persian_digits(case.code.replace("-", "")))
    await coordinator.press("کارت پرونده")
    await coordinator.press("رد")
    await coordinator.reply("این گزارش تکراری است و پیش‌تر رسیدگی شده")
    assert (await one_case(settings)).status == "rejected"
    clock = Clock()
    for _ in range(3):
        await deliver(bot, clock)
        clock.advance(5)
    heard = [m.text for m in bot.api.delivered(resident.chat_id)]
    assert any("رد" in t for t in heard), heard
    assert [t for t in heard if "فرستاده شد" in t] == [], heard[-3:]


async def test_a_clerks_owed_reason_that_looks_like_a_code_is_taken_as_the_reason(
    bot: Bot, settings: Settings
) -> None:
    """A clerk rejects a case as a duplicate and, asked for the reason in their private chat,
    types just the other case's code (as Bale's clients send it: not as a reply). Their next
    message there is the reason, whatever it looks like: the case is rejected with it, not
    answered with "no report of yours has that code"."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user(1001))
    await report(bot.user(1002), "چاله بزرگ وسط خیابان اصلی محله هنوز پر نشده است")
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("رد")
    said = texts(await clerk.private().send("کد ۱۴۰۵-۰۰۰۰۱"))
    statuses = sorted(c.status for c in await cases_in(settings))
    assert statuses == ["forwarded", "rejected"], (statuses, said)
