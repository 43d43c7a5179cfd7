"""My reports, one case, help and deep links."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from bot.app import build_application, default_builder
from bot.jalali import format_date, utcnow
from tests.conftest import Bot, make_settings
from tests.fakebot import FakeBotAPI, start_bot, stop_bot, texts
from tests.test_report_flow import DESCRIPTION, walk_to_summary

BALE_TOKEN = "1234567890:BaleStyleTokenForOfflineTests_abcd"


async def test_my_reports_pages_newest_first_and_opens_history(database_url: str) -> None:
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"reports_per_hour": 20}
    )
    app, api = await start_bot(settings)
    resident = Bot(app, api).user(6006)
    assert "هنوز گزارشی" in texts(await resident.send("📋 گزارش‌های من"))[0]
    for n in range(1, 8):
        await walk_to_summary(resident, f"{DESCRIPTION} شماره {n}")
        await resident.press("ثبت گزارش")

    first_page = texts(await resident.send("📋 گزارش‌های من"))[0]
    assert "۷ گزارش، صفحهٔ ۱ از ۲" in first_page
    assert first_page.index("۱۴۰۵-۰۰۰۰۷") < first_page.index("۱۴۰۵-۰۰۰۰۳")
    assert "۱۴۰۵-۰۰۰۰۲" not in first_page
    assert "فرستاده‌شده به دستگاه مسئول" in first_page and format_date(utcnow()) in first_page

    await resident.press("قدیمی‌تر")
    edited = [c for c in api.calls if c.method == "editMessageText"][-1].text
    assert "صفحهٔ ۲ از ۲" in edited and "۱۴۰۵-۰۰۰۰۱" in edited

    await resident.press("۱۴۰۵-۰۰۰۰۱")
    detail = [c for c in api.calls if c.method == "editMessageText"][-1].text
    assert "شماره 1" in detail and "سابقه" in detail
    history = detail.split("سابقه")[1]
    oldest_first = history.index("ثبت‌شده") < history.index("فرستاده‌شده به دستگاه مسئول")
    assert oldest_first, "history oldest first"
    await stop_bot(app)


async def test_help_names_the_emergency_numbers(bot: Bot) -> None:
    reply = texts(await bot.user().send("❓ راهنما"))[0]
    for number in ("۱۱۰", "۱۱۵", "۱۲۵", "۱۲۳"):
        assert number in reply


async def test_join_deep_link_without_an_invite_is_refused_politely(bot: Bot) -> None:
    replies = texts(await bot.user().send("/start join_abc123"))
    assert "لینک دعوت معتبر نیست" in replies[0]
    assert "محله" in replies[1]


async def test_unknown_deep_link_is_a_plain_start(bot: Bot) -> None:
    replies = texts(await bot.user().send("/start promo-2025"))
    assert len(replies) == 1 and "سلام" in replies[0]


async def test_bale_base_url_from_the_config_is_used_for_every_call(database_url: str) -> None:
    settings = make_settings(
        database_url,
        telegram={
            "base_url": "https://tapi.bale.ai/bot",
            "base_file_url": "https://tapi.bale.ai/file/bot",
            "token": SecretStr(BALE_TOKEN),
        },
    )
    seen: list[str] = []
    api = FakeBotAPI()
    original = api.do_request

    async def record(url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        seen.append(url)
        return await original(url, method, *args, **kwargs)

    api.do_request = record  # type: ignore[method-assign]
    builder = default_builder(settings).request(api).get_updates_request(api)
    app = build_application(settings, builder)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    await stop_bot(app)
    assert {url.rsplit("/", 1)[-1] for url in seen} >= {"getMe", "setMyCommands"}
    assert all(url.startswith(f"https://tapi.bale.ai/bot{BALE_TOKEN}/") for url in seen)
