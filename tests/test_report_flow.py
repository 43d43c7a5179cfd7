"""A resident files a report from /start to the tracking code, through the real application."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from bot.digits import persian_digits
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseEvent
from tests.conftest import Bot
from tests.fakebot import ChatUser, alerts, texts

DESCRIPTION = "سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد"


async def cases_in(settings: Settings) -> list[Case]:
    """Every case in the database, oldest first."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = list((await session.scalars(select(Case).order_by(Case.id))).all())
    await engine.dispose()
    return found


async def walk_to_summary(resident: ChatUser, description: str = DESCRIPTION) -> None:
    """New report → Yousefabad (typed) → description → skip media → anonymous."""
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(description)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")


async def test_start_shows_welcome_and_main_menu(resident: ChatUser) -> None:
    replies = texts(await resident.send("/start"))
    assert "محله" in replies[-1]
    assert resident.reply_keyboard() == ["📝 گزارش جدید", "📋 گزارش‌های من", "🏘 محلهٔ من", "❓ راهنما"]


async def test_full_report_gets_a_persian_tracking_code(resident: ChatUser, settings: Settings) -> None:
    await resident.send("/start")
    await walk_to_summary(resident)
    summary = resident.api.to_chat(resident.user_id)[-1].text
    assert "یوسف‌آباد" in summary and DESCRIPTION in summary
    assert await cases_in(settings) == [], "nothing is stored before the resident confirms"

    replies = texts(await resident.press("ثبت گزارش"))

    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION and case.status == "submitted"
    assert case.neighbourhood.name == "یوسف‌آباد" and case.reporter_phone is None
    assert persian_digits(case.code) in replies[-1]
    assert case.code.endswith("-00001")
    assert resident.reply_keyboard()[0] == "📝 گزارش جدید", "the main menu comes back"
