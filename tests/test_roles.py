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
