"""The network's handbook, driven chat by chat: the secretariat publishes a version, agencies'
staff and council members are told what changed and confirm they have read it, those who have
not are reminded, strangers change nothing, and everyone browses the same text by agency or by
domain."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.cli import main, publish_handbook
from bot.config import CouncilMember, Settings
from bot.pipeline import check_deadlines
from models.db import create_engine, create_session_factory
from models.entities import HandbookReading, HandbookVersion, User
from tests.conftest import COORDINATOR, EXAMPLE_CONFIG, Bot, agency_chat, make_settings
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import MUNICIPALITY, add_staff

EXAMPLE = Path(__file__).resolve().parent.parent / "handbook.example"
WELFARE = agency_chat(3)
COUNCIL = 7001
STRANGER = 4242
CLERK, WELFARE_CLERK = 2001, 2101
BIDI = dict.fromkeys(range(0x2066, 0x206A))


@pytest.fixture
def settings(database_url: str, messenger: str, tmp_path: Path) -> Settings:
    """The test config with the example handbook in a folder of its own and a council member."""
    folder = tmp_path / "handbook"
    shutil.copytree(EXAMPLE, folder)
    base = make_settings(database_url, telegram={"rate_limit": False})
    county = base.counties[0].model_copy(update={"council_members": [CouncilMember(id=COUNCIL)]})
    book = base.handbook.model_copy(update={"path": folder})
    return base.model_copy(update={"counties": [county], "handbook": book})


def plain(text: str) -> str:
    """A text without the marks that keep names and numbers in their direction."""
    return text.translate(BIDI)


async def readings(settings: Settings) -> dict[int, bool]:
    """Whether each person asked to read the newest version has confirmed it."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        newest = select(func.max(HandbookVersion.id)).scalar_subquery()
        rows = await session.execute(
            select(HandbookReading.user_id, HandbookReading.confirmed_at).where(
                HandbookReading.version_id == newest
            )
        )
        found = {int(user): confirmed is not None for user, confirmed in rows}
    await engine.dispose()
    return found


async def staff_and_council(bot: Bot, settings: Settings) -> dict[int, ChatUser]:
    """Two agencies' clerks and a council member, each having opened the bot privately."""
    await add_staff(settings, CLERK, "municipality", "کارشناس رضایی")
    await add_staff(settings, WELFARE_CLERK, "welfare-org", "کارشناس کریمی")
    people = {user: bot.user(user) for user in (CLERK, WELFARE_CLERK, COUNCIL)}
    for person in people.values():
        await person.send("/start")
    return people


async def deliver(bot: Bot) -> None:
    """Any update runs the outbox."""
    await bot.user(9999).send("/help")


async def test_publish_confirm_remind_and_a_strangers_press(bot: Bot, settings: Settings) -> None:
    people = await staff_and_council(bot, settings)
    outcome = await publish_handbook(settings, by=COORDINATOR)
    assert "version 1 published" in outcome and "3 people" in outcome
    await deliver(bot)
    for person in people.values():
        notice = plain(person.last_text)
        assert "نسخهٔ ۱ شرح وظایف" in notice and "municipality.md" in notice
        assert "✅ خواندم" in person.button_labels()

    # Two agencies' staff confirm; the municipality's clerk at once.
    said = texts(await people[CLERK].press("✅ خواندم"))
    assert "تأیید شما برای خواندن نسخهٔ ۱" in said[0]
    assert await readings(settings) == {CLERK: True, WELFARE_CLERK: False, COUNCIL: False}

    # A stranger's forged press changes nothing, and a second press by the clerk neither.
    stranger = bot.user(STRANGER)
    said = texts(await stranger.send("/handbook"))
    assert "برای کارشناسان دستگاه‌ها، هماهنگ‌کنندگان و اعضای شورا" in said[0]
    refused = alerts(await stranger.press_data("hb:ok:1"))
    assert "این تأیید برای شما نیست" in refused[0]
    again = alerts(await people[CLERK].press("✅ خواندم"))
    assert "پیش‌تر تأیید کرده‌اید" in again[0]
    assert await readings(settings) == {CLERK: True, WELFARE_CLERK: False, COUNCIL: False}

    # The coordinator sees who has and has not confirmed, per agency.
    status = plain(texts(await bot.user(COORDINATOR).send("/handbook_status"))[0])
    assert "۱ نفر از ۳ نفر" in status
    municipality, welfare = status.split("🏛 شهرداری منطقه")[1], status.split("🏛 بهزیستی")[1]
    assert "تأیید کرده: کارشناس رضایی" in municipality
    assert "هنوز نه: کارشناس کریمی" in welfare

    # Not yet two working days: no reminder; past them, one reminder each, once.
    engine = create_engine(settings.database.url)
    asked_at = datetime(2026, 12, 5, 4, 30, tzinfo=UTC)  # Saturday 08:00 in Tehran
    async with create_session_factory(engine)() as session:
        await session.execute(update(HandbookReading).values(asked_at=asked_at))
        await session.commit()
    await engine.dispose()
    runtime = bot.jobs_runtime
    await check_deadlines(runtime, now=asked_at + timedelta(hours=3))
    await deliver(bot)
    assert not any("یادآوری" in t for t in texts(bot.api.to_chat(WELFARE_CLERK)))
    await check_deadlines(runtime, now=asked_at + timedelta(days=3, hours=6))
    await check_deadlines(runtime, now=asked_at + timedelta(days=3, hours=6, minutes=10))
    await deliver(bot)

    def reminders(user: int) -> list[str]:
        return [t for t in texts(bot.api.to_chat(user)) if "یادآوری" in t]

    assert len(reminders(WELFARE_CLERK)) == 1 and len(reminders(COUNCIL)) == 1
    assert reminders(CLERK) == [], "who confirmed is not reminded"
    said = texts(await people[WELFARE_CLERK].press("✅ خواندم"))
    assert "تأیید شما برای خواندن نسخهٔ ۱" in said[0]
    await people[COUNCIL].press("✅ خواندم")
    assert await readings(settings) == {CLERK: True, WELFARE_CLERK: True, COUNCIL: True}
    stats = plain(texts(await bot.user(COORDINATOR).send("/stats"))[0])
    assert "تأیید خواندن آخرین نسخهٔ شرح وظایف: ۳ از ۳ نفر (۱۰۰٪)" in stats

    # Nothing changed: nothing published. One file changed: version 2 says which.
    assert "nothing published" in await publish_handbook(settings)
    duties = settings.handbook.path / "municipality.md"
    duties.write_text(duties.read_text() + "- پاسخ به گزارش‌های روشنایی معابر در یک روز کاری.\n")
    assert "version 2 published" in await publish_handbook(settings)
    await deliver(bot)
    notice = plain(people[WELFARE_CLERK].last_text)
    assert "نسخهٔ ۲" in notice and "تغییر در municipality.md: ۱ سطر افزوده" in notice
    assert "welfare-org.md" not in notice
    assert await readings(settings) == {CLERK: False, WELFARE_CLERK: False, COUNCIL: False}


async def test_browse_by_agency_and_by_domain(bot: Bot, settings: Settings) -> None:
    framework = settings.handbook.path / "framework.md"
    paragraph = "هر دستگاه گزارش‌های حوزهٔ خود را در مهلت مصوب پیگیری می‌کند و نتیجه را ثبت می‌کند. "
    framework.write_text(framework.read_text() + ("\n\n" + paragraph * 6) * 12)
    await staff_and_council(bot, settings)
    clerk = bot.in_group(CLERK, MUNICIPALITY, "کارشناس رضایی")
    said = texts(await clerk.send("/handbook"))
    assert "هنوز نسخه‌ای" in said[0], "nothing to read before the first version"
    await publish_handbook(settings)
    said = texts(await clerk.send("/handbook"))
    assert "نسخهٔ ۱" in plain(said[0]) and "بر اساس دستگاه" in clerk.button_labels()

    # The framework, in pages within a message's length.
    await clerk.press("چارچوب اجرایی")
    first = clerk._messages()[-1].text
    assert "اصول کار" in first and "صفحهٔ ۱ از" in first and len(first) <= 4096
    await clerk.press("صفحهٔ بعد")
    assert "صفحهٔ ۲ از" in clerk._messages()[-1].text

    # By agency: the welfare office's card, then its duties for one domain.
    await clerk.press("بازگشت")
    await clerk.press("بر اساس دستگاه")
    assert {"شهرداری منطقه", "بهزیستی", "شبکه بهداشت"} <= set(clerk.button_labels())
    await clerk.press("بهزیستی")
    card = plain(clerk._messages()[-1].text)
    assert "شناسایی و حمایت از افراد" in card and "آسیب‌های اجتماعی" in clerk.button_labels()
    await clerk.press("آسیب‌های اجتماعی")
    duties = plain(clerk._messages()[-1].text)
    assert "وظایف «بهزیستی» در حوزهٔ «آسیب‌های اجتماعی»" in duties and "کودک کار" in duties
    # From there, the other agencies with duties in the same domain.
    await clerk.press("دستگاه‌های دیگر این حوزه")
    assert {"شهرداری منطقه", "بهزیستی"} <= set(clerk.button_labels())

    # By domain: back to the domains, to the first screen, then health and the health
    # network's duties in it.
    await clerk.press("بازگشت")
    assert "حوزه را انتخاب کنید" in clerk._messages()[-1].text
    await clerk.press("بازگشت")
    await clerk.press("بر اساس حوزه")
    await clerk.press("بهداشت و درمان")
    await clerk.press("شبکه بهداشت")
    duties = plain(clerk._messages()[-1].text)
    assert "«شبکه بهداشت» در حوزهٔ «بهداشت و درمان»" in duties and "بازرسی بهداشتی" in duties
    await clerk.press("همهٔ وظایف این دستگاه")
    assert "پایگاه‌های سلامت" in clerk._messages()[-1].text

    # Someone who is neither staff nor coordinator nor council gets no screen from a button.
    outsider = bot.user(STRANGER)
    await outsider.send("/start")
    refused = alerts(await outsider.press_data("hb:g:welfare-org:0"))
    assert "برای کارشناسان دستگاه‌ها" in refused[0]


async def test_english_reader_and_notice(bot: Bot, settings: Settings) -> None:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        session.add(User(id=COUNCIL, language="en"))  # a council member who reads English
        await session.commit()
    await engine.dispose()
    people = await staff_and_council(bot, settings)
    await publish_handbook(settings)
    await deliver(bot)
    council = people[COUNCIL]
    assert "Version 1 of the network's duties" in council.last_text
    assert "✅ I have read it" in council.button_labels()
    said = texts(await council.send("/handbook"))
    assert "You have not confirmed reading this version yet." in said[0]
    await council.press("By domain")
    await council.press("آسیب‌های اجتماعی")
    assert "pick an agency to see its duties" in council._messages()[-1].text
    said = texts(await council.press("I have read it"))
    assert "Your confirmation of reading version 1" in plain(said[0])
    assert (await readings(settings))[COUNCIL] is True


def test_publish_without_a_handbook_folder_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["handbook", "publish", "--config", str(EXAMPLE_CONFIG), "--folder", str(missing)])
    said = capsys.readouterr().err
    assert "is not a folder" in said and "nowhere" in said
    (tmp_path / "empty").mkdir()
    assert main(
        [
            "handbook",
            "publish",
            "--config",
            str(EXAMPLE_CONFIG),
            "--folder",
            str(tmp_path / "empty"),
        ]
    )
    assert "framework.md is missing" in capsys.readouterr().err


async def test_coordinator_publishes_from_the_chat(bot: Bot, settings: Settings) -> None:
    people = await staff_and_council(bot, settings)
    said = texts(await people[CLERK].send("/handbook_publish"))
    assert "فقط دبیرخانه" in said[0] and await readings(settings) == {}, "staff cannot publish"
    coordinator = bot.user(COORDINATOR)
    published = plain(texts(await coordinator.send("/handbook_publish"))[0])
    assert "نسخهٔ ۱ منتشر شد" in published and "از ۳ نفر" in published
    await deliver(bot)
    assert "نسخهٔ ۱ شرح وظایف" in plain(people[WELFARE_CLERK].last_text)
    said = texts(await coordinator.send("/handbook_publish"))
    assert "نسخهٔ تازه‌ای منتشر نشد" in said[0]
    assert len(await readings(settings)) == 3
