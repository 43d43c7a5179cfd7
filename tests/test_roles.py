"""Process roles: web receives only, workers send and run jobs, one worker leads the jobs."""

from __future__ import annotations

import pytest

from bot import cli
from bot.leader import Leadership
from models.db import create_engine
from tests.conftest import EXAMPLE_CONFIG, make_settings
from tests.fakebot import start_bot, stop_bot

TOKEN = "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI"


def test_sqlite_allows_only_one_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAHALLE_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MAHALLE_DATABASE_URL", "sqlite+aiosqlite:///unused.db")
    for role in ("web", "worker"):
        assert cli.main(["run", "--role", role, "--config", str(EXAMPLE_CONFIG)]) == 2
        assert "needs PostgreSQL" in capsys.readouterr().err


async def test_exactly_one_process_leads_and_another_takes_over(database_url: str) -> None:
    first, second = create_engine(database_url), create_engine(database_url)
    one, other = Leadership(first), Leadership(second)
    if first.dialect.name != "postgresql":
        assert one.leading and other.leading, "SQLite is one process, which always leads"
    else:
        assert await one.try_lead()
        assert not await other.try_lead(), "the lock is taken"
        await one.step_down()  # the leader stops (or dies: its connection closes)
        assert await other.try_lead()
        assert not await one.try_lead()
        await other.step_down()
    await first.dispose()
    await second.dispose()


async def test_web_processes_neither_send_nor_run_jobs(database_url: str) -> None:
    settings = make_settings(database_url, telegram={"rate_limit": False}, outbox={"worker": True})
    from telegram.ext import ApplicationBuilder

    from bot.app import build_application
    from tests.fakebot import FAKE_TOKEN, FakeBotAPI

    api = FakeBotAPI()
    app = build_application(
        settings,
        ApplicationBuilder().token(FAKE_TOKEN).request(api).get_updates_request(api),
        role="web",
    )
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    runtime = app.bot_data["runtime"]
    assert runtime.tasks == [] and app.job_queue is not None
    assert [job.name for job in app.job_queue.jobs()] == ["banned"], "only the block list refresh"
    await stop_bot(app)

    worker, _ = await start_bot(
        make_settings(database_url, telegram={"rate_limit": False}, outbox={"worker": True})
    )
    assert [t.get_name() for t in worker.bot_data["runtime"].tasks] == ["outbox"]
    assert worker.job_queue is not None
    scheduled = {job.name for job in worker.job_queue.jobs()}
    assert scheduled >= {"leadership", "deadlines", "campaigns", "digest", "weekly-report"}
    await stop_bot(worker)


async def test_consecutive_updates_of_one_chat_on_different_web_processes(
    database_url: str,
) -> None:
    from tests.fakebot import ChatUser
    from tests.test_report_flow import DESCRIPTION, cases_in

    settings = make_settings(database_url, telegram={"rate_limit": False})
    app_a, api_a = await start_bot(settings, role="web")
    app_b, api_b = await start_bot(settings, role="web")
    on_a, on_b = ChatUser(app_a, api_a, 1001), ChatUser(app_b, api_b, 1001)
    await on_a.send("📝 گزارش جدید")
    await on_b.send("جهاد")  # typed on the picker process A showed
    await on_b.press("جهاد")
    await on_a.send(DESCRIPTION)
    await on_b.send("ادامه ⬅️")
    await on_a.send("🙈 ناشناس بمانم")
    await on_a.press("ثبت گزارش")
    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION and case.neighbourhood.name == "جهاد"
    await stop_bot(app_a)
    await stop_bot(app_b)


async def test_dropped_database_connections_are_replaced_without_a_restart(
    database_url: str,
) -> None:
    from sqlalchemy import text

    from tests.fakebot import ChatUser, texts

    if not database_url.startswith("postgresql"):
        pytest.skip("connection drops are a PostgreSQL matter")
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    resident = ChatUser(app, api, 1001)
    await resident.send("/start")
    killer = create_engine(database_url)
    async with killer.connect() as connection:
        dropped = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await killer.dispose()
    assert dropped >= 1
    replies = texts(await resident.send("📝 گزارش جدید"))
    assert "گزارش جدید" in replies[0], "the next update works: the pool replaced its connections"
    await stop_bot(app)
