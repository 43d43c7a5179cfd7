"""`mahalle status`: what waits, and whether anything is stuck, for an operator or a monitor."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot import cli
from bot.config import Settings
from bot.jalali import utcnow
from bot.receiving import Receivers
from bot.services import outbox
from bot.services.health import Health, read_health
from models.db import create_engine, create_session_factory, process_name
from models.entities import Case, CaseStatus
from tests.conftest import EXAMPLE_CONFIG
from tests.fakebot import ChatUser, start_bot, stop_bot
from tests.test_agency import report


async def health_of(settings: Settings, now: datetime | None = None) -> Health:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        health = await read_health(session=session, now=now or utcnow())
    await engine.dispose()
    return health


async def status_command(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """`mahalle status` on the database at `url`: its exit code, what it printed and its errors
    (run in a thread: it runs its own event loop)."""
    monkeypatch.setenv("MAHALLE_DATABASE_URL", url)
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["status", "--config", str(EXAMPLE_CONFIG)])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


async def test_a_running_deployment_is_all_well(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, api = await start_bot(settings)
    receivers = Receivers(app.bot_data["runtime"].engine, settings.bot_keys)
    await receivers.step()  # as `mahalle run` does: this process receives the bot's updates
    await report(ChatUser(app, api, 1001))  # placed, its messages delivered
    code, printed, _ = await status_command(settings.database.url, monkeypatch, capsys)
    await receivers.release_all()
    await stop_bot(app)
    assert code == 0 and printed.splitlines()[-1] == "all well", printed
    assert "cases waiting to be placed: 0" in printed
    postgresql = settings.database.url.startswith("postgresql")
    assert ("run by: a worker" if postgresql else "the one process (SQLite)") in printed
    if postgresql:
        assert f"updates of bot main received by: {process_name()}" in printed, printed


async def test_what_waits_too_long_is_named_and_the_exit_code_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, api = await start_bot(settings)
    await report(ChatUser(app, api, 1001))
    await stop_bot(app)  # no worker now: its work piles up
    now = utcnow()
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        outbox.enqueue(session, chat_id=1001, purpose=outbox.REPORTER_NOTICE, payload={"text": "x"})
        await session.flush()
        await session.execute(
            update(Case).values(status=CaseStatus.SUBMITTED, created_at=now - timedelta(hours=1))
        )
        await session.commit()
    await engine.dispose()
    # The message fell due ten minutes ago: as if read then.
    health = await health_of(settings)
    later = now + timedelta(minutes=10)
    assert health.unplaced.count == 1
    postgresql = settings.database.url.startswith("postgresql")
    assert len(health.problems(later)) == 2 + 2 * postgresql  # jobs and receiving too

    code, printed, _ = await status_command(settings.database.url, monkeypatch, capsys)
    assert code == 1, printed
    assert "cases waiting to be placed: 1 (the oldest for 60 min)" in printed
    if postgresql:
        assert "needs a look: no process runs the scheduled jobs" in printed
        assert "needs a look: no process receives the updates of bot main" in printed


async def test_an_unreadable_database_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    code, _, errors = await status_command(url, monkeypatch, capsys)
    assert code == 2
    assert "mahalle db upgrade" in errors


async def test_a_busy_agency_group_waiting_its_turn_is_not_stuck(settings: Settings) -> None:
    """Telegram takes 20 messages a minute into a group: in a storm an agency's cards queue for
    many minutes behind the one put off to its turn. That is the pace, not a stopped worker."""
    now = utcnow()
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        cards = [
            outbox.enqueue(session, chat_id=-100500, purpose=outbox.AGENCY_CARD, payload={})
            for _ in range(3)
        ]
        for card in cards:
            card.created_at = card.next_attempt_at = now - timedelta(minutes=20)
        outbox.put_off(cards[0], until=now + timedelta(seconds=3))
        await session.commit()
    await engine.dispose()
    health = await health_of(settings, now)
    assert health.outbox.count == 3 and health.outbox.waited(now) >= timedelta(minutes=20)
    assert not [problem for problem in health.problems(now) if "messages" in problem]
    # Had no worker taken the card once its turn came, ten minutes on that would be named.
    later = now + timedelta(minutes=10)
    assert any(
        "messages" in problem for problem in (await health_of(settings, later)).problems(later)
    )
