"""A worker process killed with SIGKILL mid-outbox and mid-broadcast, another started: nothing
is lost, and nothing is sent twice except, at most, the messages in flight at the kill (the Bot
API has no idempotency key, so a send it answered but we never recorded is repeated rather than
dropped): `[outbox] sends_at_once` and `[broadcast] sends_at_once` at most."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.jalali import utcnow
from bot.services import broadcasts, outbox
from bot.services.reference import sync_reference_data
from models.db import create_engine, create_session_factory
from models.entities import CampaignRecipient, OutboxMessage, OutboxStatus, RecipientStatus
from tests.conftest import COORDINATOR, EXAMPLE_CONFIG, make_settings
from tests.fakebot import wait_for
from tests.httpapi import RecordingAPI, serve
from tests.test_broadcast import add_residents
from tests.test_roles import TOKEN

OUTBOX_ROWS, RESIDENTS = 300, 80
OUTBOX_FIRST_CHAT, RESIDENT_FIRST_ID = 700_000, 800_000
ROOT = Path(__file__).resolve().parent.parent


def _worker_config(tmp_path: Path, base_url: str) -> Path:
    """The example config pointed at the fake Bot API, with a broadcast slow enough to kill."""
    config = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    replacements = {
        r'(?m)^base_url = ".*"$': f'base_url = "{base_url}"',
        r"(?m)^rate_limit = true$": "rate_limit = false",
        r"(?m)^rate_per_second = \d+$": "rate_per_second = 20",
        r'(?m)^model_path = ".*"$': f'model_path = "{tmp_path / "model.pkl"}"',
    }
    for pattern, replacement in replacements.items():
        config, found = re.subn(pattern, replacement, config)
        assert found == 1, pattern
    path = tmp_path / "config.toml"
    path.write_text(config, encoding="utf-8")
    return path


def _start_worker(config: Path, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "MAHALLE_BOT_TOKEN": TOKEN,
        "MAHALLE_DATABASE_URL": database_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--role", "worker", "--config", str(config)],
        cwd=ROOT,
        env=environment,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _seed(database_url: str) -> None:
    """Outbox rows to many chats and a launched broadcast to many residents."""
    settings = make_settings(database_url)
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    async with factory() as session:
        await sync_reference_data(session=session, settings=settings)
        for number in range(OUTBOX_ROWS):
            outbox.enqueue(
                session, chat_id=OUTBOX_FIRST_CHAT + number, purpose=outbox.REPORTER_NOTICE,
                payload={"text": f"پیام {number}"},
            )  # fmt: skip
        await session.commit()
    await add_residents(settings, RESIDENTS, first_id=RESIDENT_FIRST_ID)
    async with factory() as session:
        campaign = await broadcasts.start_draft(session, created_by=COORDINATOR)
        campaign.content, campaign.audience = {"text": "اطلاعیه", "entities": []}, {"kind": "all"}
        await broadcasts.launch(
            session, campaign=campaign, scheduled_at=utcnow(), progress_chat_id=COORDINATOR
        )
        await session.commit()
    await engine.dispose()


def _sent_to(recorder: RecordingAPI, first: int, count: int) -> collections.Counter[int]:
    """How many sendMessage calls reached each chat of the range."""
    return collections.Counter(
        call.chat_id
        for call in recorder.calls
        if call.method == "sendMessage" and call.chat_id and first <= call.chat_id < first + count
    )


async def _pending(database_url: str) -> tuple[int, int]:
    """(outbox rows, broadcast recipients) not yet delivered."""
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING)
        )
        recipients = await session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.status == RecipientStatus.PENDING)
        )
    await engine.dispose()
    return int(rows or 0), int(recipients or 0)


async def _jobs_lock_released(database_url: str) -> None:
    """PostgreSQL notices the dead process's connection closed and frees its advisory lock."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + 20
    async with engine.connect() as connection:
        while await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ):
            assert time.monotonic() < deadline, "the killed worker's lock was never released"
            await asyncio.sleep(0.1)
            await connection.commit()
    await engine.dispose()


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes started by a test; none outlives it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def test_sigkilled_worker_loses_nothing_and_repeats_at_most_the_messages_in_flight(
    database_url: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several worker processes need PostgreSQL (SQLite is one process)")
    base_url, recorder, server = serve(delay=0.02)
    config, log = _worker_config(tmp_path, base_url), tmp_path / "workers.log"
    await _seed(database_url)

    def outbox_sends() -> collections.Counter[int]:
        return _sent_to(recorder, OUTBOX_FIRST_CHAT, OUTBOX_ROWS)

    def broadcast_sends() -> collections.Counter[int]:
        return _sent_to(recorder, RESIDENT_FIRST_ID, RESIDENTS)

    try:
        workers.append(_start_worker(config, database_url, log))
        await wait_for(
            lambda: len(outbox_sends()) >= 60 and len(broadcast_sends()) >= 10,
            seconds=60, what="the first worker to be half-way",
        )  # fmt: skip
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        left_over = await _pending(database_url)
        assert left_over[0] > 0 and left_over[1] > 0, "the kill came before the work was done"

        await _jobs_lock_released(database_url)
        workers.append(_start_worker(config, database_url, log))
        deadline = time.monotonic() + 90
        while await _pending(database_url) != (0, 0):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            assert workers[1].poll() is None, log.read_text(errors="replace")[-3000:]
            await asyncio.sleep(0.2)
    finally:
        server.shutdown()

    settings = make_settings(database_url)
    for counts, first, total, at_most in (
        (outbox_sends(), OUTBOX_FIRST_CHAT, OUTBOX_ROWS, settings.outbox.sends_at_once),
        (broadcast_sends(), RESIDENT_FIRST_ID, RESIDENTS, settings.broadcast.sends_at_once),
    ):
        assert set(counts) == set(range(first, first + total)), "every message arrived"
        repeated = [chat for chat, times in counts.items() if times > 1]
        print(f"{total} messages, repeated after the kill: {len(repeated)}")
        assert len(repeated) <= at_most and max(counts.values()) <= 2, f"repeated: {repeated}"
