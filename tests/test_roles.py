"""Process roles: web receives only, workers send and run jobs, one worker leads the jobs."""

from __future__ import annotations

import asyncio

import pytest

from bot import cli
from bot.leader import Leadership
from models.db import create_engine
from tests.conftest import EXAMPLE_CONFIG, make_settings
from tests.fakebot import leading, start_bot, stop_bot

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
    assert runtime.tasks == [], "no outbox sender"
    assert app.job_queue is not None
    assert [job.name for job in app.job_queue.jobs()] == ["banned"], "only the block list refresh"
    await stop_bot(app)

    worker, _ = await start_bot(
        make_settings(database_url, telegram={"rate_limit": False}, outbox={"worker": True})
    )
    runtime = worker.bot_data["runtime"]
    assert [t.get_name() for t in runtime.tasks] == [f"outbox-{runtime.bot_key}"]
    jobs = leading(worker).job_queue  # with several bots, the first bot's application's
    assert jobs is not None
    scheduled = {job.name for job in jobs.jobs()}
    assert scheduled >= {"leadership", "deadlines", "campaigns", "digest", "weekly-report"}
    await stop_bot(worker)


async def test_a_block_on_one_process_holds_on_the_others_at_once(database_url: str) -> None:

    from tests.conftest import COORDINATOR
    from tests.fakebot import ChatUser, texts, wait_for

    if not database_url.startswith("postgresql"):
        pytest.skip("several web processes need PostgreSQL")
    settings = make_settings(database_url, telegram={"rate_limit": False})
    app_a, api_a = await start_bot(settings, role="web")
    app_b, api_b = await start_bot(settings, role="web")
    coordinator, abuser = ChatUser(app_a, api_a, COORDINATOR), ChatUser(app_b, api_b, 1001)
    assert texts(await abuser.send("/start"))
    assert "مسدود شد" in texts(await coordinator.send("/block 1001"))[0]
    banned_on_b = app_b.bot_data["runtime"].banned
    await wait_for(lambda: 1001 in banned_on_b, what="B to hear of the block", seconds=2)
    assert texts(await abuser.send("📝 گزارش جدید")) == []

    # The listening connection dies (a database restart); the minute's reload listens again.
    await _end_every_other_connection(database_url)
    runtime_b = app_b.bot_data["runtime"]
    listener = leading(app_b).bot_data["runtime"].listener  # the deployment's one
    await wait_for(lambda: not listener.listening, what="the closed socket", seconds=2)
    await listener.listen()
    assert "از مسدودی درآمد" in texts(await coordinator.send("/unblock 1001"))[0]
    await wait_for(lambda: 1001 not in runtime_b.banned, what="B to hear of it", seconds=2)
    assert texts(await abuser.send("/start"))
    await stop_bot(app_a)
    await stop_bot(app_b)


async def _end_every_other_connection(database_url: str) -> int:
    """Terminate every other client connection to the database and wait until their server
    processes are gone (pg_terminate_backend only asks): by then each has said its last words
    on its socket, as a restart's connections have before the next update comes. The count
    terminated."""
    from sqlalchemy import text

    others = (
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    killer = create_engine(database_url)
    async with killer.connect() as connection:
        pids = list(await connection.scalars(text(f"SELECT pid {others}")))
        for pid in pids:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    for _ in range(500):
        async with killer.connect() as connection:
            alive = await connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": pids},
            )
        if not alive:
            break
        await asyncio.sleep(0.01)
    await killer.dispose()
    return len(pids)


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
    assert await _end_every_other_connection(database_url) >= 1
    replies = texts(await resident.send("📝 گزارش جدید"))
    assert "گزارش جدید" in replies[0], "the next update works: the pool replaced its connections"
    leadership = app.bot_data["runtime"].leadership
    assert await leadership.try_lead(), "the jobs lock died with its connection and is taken back"
    killer = create_engine(database_url)
    async with killer.connect() as connection:
        held = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    await killer.dispose()
    assert held == 1
    await stop_bot(app)


async def test_the_first_update_after_a_database_restart_is_handled_in_full(
    database_url: str,
) -> None:
    """Connections the database closed while they sat in the pool are replaced as they are
    taken: the next update is handled as if nothing happened, not told to try again."""
    from tests.fakebot import ChatUser, texts

    if not database_url.startswith("postgresql"):
        pytest.skip("connection drops are a PostgreSQL matter")
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    resident = ChatUser(app, api, 1001)
    await resident.send("/start")
    assert "گزارش جدید" in texts(await resident.send("📝 گزارش جدید"))[0]
    assert await _end_every_other_connection(database_url) >= 1
    replies = texts(await resident.send("یوسف آباد"))
    assert replies == ["منظورتان کدام است؟"], "the report's step was read and answered"
    assert not any("یک دقیقهٔ دیگر" in reply for reply in texts(api.calls))
    await stop_bot(app)


async def test_a_pooled_connection_the_database_closed_is_replaced_as_it_is_taken(
    database_url: str,
) -> None:
    """No round trip probes a connection before use; one the server closed is still never
    handed out: the statement after a terminated backend runs on a new connection."""
    from sqlalchemy import text

    if not database_url.startswith("postgresql"):
        pytest.skip("connection drops are a PostgreSQL matter")
    engine, killer = create_engine(database_url), create_engine(database_url)
    async with engine.connect() as connection:
        first = await connection.scalar(text("SELECT pg_backend_pid()"))
    async with killer.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await killer.dispose()
    await asyncio.sleep(0.1)  # the server's goodbye reaches the idle connection
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT pg_backend_pid()")) not in (None, first)
    await engine.dispose()


async def _drop_connections_repeatedly(database_url: str, stop: asyncio.Event) -> int:
    """Terminate every other connection to the database every 50 ms until told to stop."""
    from sqlalchemy import text

    killer, dropped = create_engine(database_url), 0
    while not stop.is_set():
        async with killer.connect() as connection:
            dropped += int(
                await connection.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'"
                    )
                )
                or 0
            )
        await asyncio.sleep(0.05)
    await killer.dispose()
    return dropped


async def test_database_dropped_under_load_answers_politely_and_recovers(
    database_url: str,
) -> None:
    from tests.fakebot import ChatUser, texts
    from tests.test_agency import report
    from tests.test_report_flow import cases_in

    if not database_url.startswith("postgresql"):
        pytest.skip("connection drops are a PostgreSQL matter")
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"admin_chat_id": -100777}
    )
    app, api = await start_bot(settings)
    people = [ChatUser(app, api, 3000 + n, deliver=False) for n in range(30)]
    steps = ["/start", "📝 گزارش جدید", "/cancel"] * 4

    async def walk(person: ChatUser) -> list[list[str]]:
        return [texts(await person.send(step)) for step in steps]

    stop = asyncio.Event()
    storm = asyncio.create_task(_drop_connections_repeatedly(database_url, stop))
    answers = await asyncio.gather(*(walk(person) for person in people))
    stop.set()
    dropped = await storm

    replies = [reply for per_person in answers for reply in per_person]
    assert dropped > 0 and all(replies), "every update was answered, even mid-outage"
    sorry = [text for reply in replies for text in reply if "یک دقیقهٔ دیگر" in text]
    assert sorry, "updates that hit a dropped connection were told to try again in a minute"
    assert not any("Error" in text or "Traceback" in text for reply in replies for text in reply)
    admin_lines = [call.text for call in api.calls if call.chat_id == -100777]
    assert 1 <= len(admin_lines) <= 5, "the admin hears once per kind of error, not per update"

    for person in people:  # no restart: the same process serves everyone again
        await person.send("/cancel")
        await report(person)
    assert len(await cases_in(settings)) == len(people)
    await stop_bot(app)


async def test_a_card_queued_by_a_web_process_leaves_the_worker_at_once(database_url: str) -> None:
    from tests.conftest import agency_chat
    from tests.fakebot import ChatUser, texts, wait_for
    from tests.test_report_flow import confirm_report, walk_to_summary

    if not database_url.startswith("postgresql"):
        pytest.skip("a web and a worker process need PostgreSQL")
    # The worker looks for due messages by itself only every 60 seconds.
    outbox = {"worker": True, "poll_seconds": 60}
    web, web_api = await start_bot(
        make_settings(database_url, telegram={"rate_limit": False}), role="web"
    )
    worker, worker_api = await start_bot(
        make_settings(database_url, telegram={"rate_limit": False}, outbox=outbox), role="worker"
    )
    try:
        assert leading(worker).bot_data["runtime"].listener.listening
        await asyncio.sleep(0.5)  # the worker's first look at the outbox, on starting, is done
        # The test's resident delivers nothing itself: only the worker sends.
        resident = ChatUser(web, web_api, 1001, deliver=False)
        await walk_to_summary(resident)
        assert any("کد پیگیری" in text for text in texts(await confirm_report(resident)))
        municipality = agency_chat(0)

        def card_sent() -> bool:
            return any(c.method == "sendMessage" for c in worker_api.to_chat(municipality))

        await wait_for(card_sent, what="the worker to send the card", seconds=5)
        assert web_api.to_chat(municipality) == [], "the web process sends nothing itself"
    finally:
        await stop_bot(web)
        await stop_bot(worker)
