"""The council's agenda: it quotes its cases' descriptions, so forgetting a reporter removes
their words from it too; and a long agenda reaches the members whole, in several messages."""

from __future__ import annotations

import pytest

from bot.config import Settings
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import texts
from tests.test_agency import report
from tests.test_council import MEMBER, SECRETARY, with_council
from tests.test_forget_everything import hits

# A description no other text of the bot shares.
PRIVATE_WORDS = "کوچه یاس‌بنفش پلاک ۴۷ آقای کاظمی‌نژاد سطل زباله را آتش زده است"


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config with a council (`tests.test_council.with_council`)."""
    return with_council(database_url)


async def test_forget_me_also_removes_the_description_from_the_council_agenda(
    bot: Bot, settings: Settings
) -> None:
    """A coordinator puts a case on the council's agenda (it quotes the description's first 200
    characters); the reporter then asks to be forgotten. Neither the database nor the agenda
    the council's members read keeps their words."""
    from bot.cards import code_for_display
    from tests.test_agency import one_case

    resident = bot.user(1001)
    await report(resident, PRIVATE_WORDS)
    case = await one_case(settings)
    added = texts(
        await bot.user(COORDINATOR).send(f"/agenda_add {code_for_display(case.code, 'fa')}")
    )
    assert "در دستور جلسهٔ بعدی شورا گذاشته شد" in added[0]
    await resident.send("/forget_me")
    assert "۱ گزارش" in texts(await resident.press("بله، پاک شود"))[-1]

    assert await hits(settings, [PRIVATE_WORDS[:40]], []) == []
    await bot.user(MEMBER).send("/start")
    agenda = texts(await bot.user(MEMBER).send("/agenda"))[0]
    assert PRIVATE_WORDS[:40] not in agenda


LONG_WASTE = (
    "سطل زبالهٔ سر کوچهٔ شهید رضایی سه روز است خالی نشده و بوی بدی در کل محله پیچیده؛ "
    "گربه‌ها کیسه‌ها را پاره کرده‌اند و زباله تا وسط کوچه پخش شده، بچه‌ها از کنارش به مدرسه "
    "می‌روند و همسایه‌ها چند بار با شهرداری منطقه تماس گرفته‌اند ولی هنوز کسی نیامده است."
)


async def _clone_cases(settings: Settings, how_many: int) -> list[str]:
    """Copies of the one case in the database, each with a code of its own (as if that many
    residents had reported the same street); their codes."""
    from uuid import uuid4

    from sqlalchemy import func, select

    from bot.jalali import TrackingCode
    from models.db import create_engine, create_session_factory
    from models.entities import Case

    engine = create_engine(settings.database.url)
    codes = []
    async with create_session_factory(engine)() as session:
        [case] = (await session.scalars(select(Case))).all()
        top = int(await session.scalar(select(func.max(Case.sequence))) or 0)
        skip = {"id", "code", "sequence", "draft_token", "card_chat_id", "card_message_id"}
        values = {c.key: getattr(case, c.key) for c in Case.__table__.columns if c.key not in skip}
        for n in range(1, how_many + 1):
            code = TrackingCode(case.year, top + n).canonical
            session.add(Case(**values, code=code, sequence=top + n, draft_token=str(uuid4())))
            codes.append(code)
        await session.commit()
    await engine.dispose()
    return codes


async def twenty_cases_on_the_agenda(bot: Bot, settings: Settings) -> list[str]:
    """Twenty cases of one long description, each put on the next agenda; their codes as
    people read them."""
    from bot.cards import code_for_display
    from tests.test_agency import one_case

    await report(bot.user(1001), LONG_WASTE)
    first = (await one_case(settings)).code
    codes = [first, *await _clone_cases(settings, 19)]
    coordinator = bot.user(COORDINATOR)
    shown = []
    for code in codes:
        shown.append(code_for_display(code, "fa"))
        added = texts(await coordinator.send(f"/agenda_add {shown[-1]}"))
        assert "در دستور جلسهٔ بعدی شورا گذاشته شد" in added[0]
    return shown


@pytest.mark.telegram_refuses  # asserted below, with what the member receives
async def test_a_long_agenda_still_reaches_the_member_who_asks_for_it(
    bot: Bot, settings: Settings
) -> None:
    """Twenty cases on the next meeting's agenda, each line quoting up to 200 characters of its
    description (some 5,000 characters in all, over a message's 4,096): a member asking for
    the agenda gets every item, in order, in messages Telegram takes."""
    shown = await twenty_cases_on_the_agenda(bot, settings)
    member = bot.user(MEMBER)
    await member.send("/start")
    before = len(bot.api.delivered(MEMBER))
    await member.send("/agenda")
    got = [m.text for m in bot.api.delivered(MEMBER)[before:]]
    assert len(got) == 2 and "دستور جلسهٔ بعدی" in got[0]
    whole = "\n".join(got)
    assert [whole.index(code) for code in shown] == sorted(whole.index(code) for code in shown)
    refused = [(c.method, c.chat_id, why) for c, why in bot.api.unmeant_refusals()]
    assert refused == []


async def test_the_agenda_sent_the_day_before_lists_every_item(
    bot: Bot, settings: Settings
) -> None:
    """The same twenty items, sent by the job the day before the meeting: every item reaches
    each member (in two messages), none cut off by the outbox's last guard at 4,096."""
    from datetime import timedelta

    import jdatetime

    from bot.jalali import TEHRAN, utcnow
    from bot.pipeline import send_council_agendas

    shown = await twenty_cases_on_the_agenda(bot, settings)
    member, secretary = bot.user(MEMBER), bot.user(SECRETARY)
    await member.send("/start")
    await secretary.send("/meeting")
    tomorrow = (utcnow().astimezone(TEHRAN) + timedelta(days=1)).date()
    typed = str(jdatetime.date.fromgregorian(date=tomorrow).strftime("%Y/%m/%d"))
    assert "ثبت شد" in texts(await secretary.send(typed))[0]
    before = len(bot.api.delivered(MEMBER))
    assert await send_council_agendas(bot.jobs_runtime, now=utcnow()) == 2
    await bot.user(4242).send("/help")  # any update runs the outbox
    got = "\n".join(m.text for m in bot.api.delivered(MEMBER)[before:])
    missing = [code for code in shown if code not in got]
    assert missing == []
