"""Logs that keep no one: a failed statement, at every level of logging, shows neither what a
resident wrote nor their phone number nor their id; an update that cannot be parsed is logged by
its kind and id, never its content."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import traceback
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from bot.config import Settings
from bot.pipeline import settle
from models.db import create_engine, create_session_factory
from models.entities import Case, OutboxMessage
from tests.conftest import Bot
from tests.fakebot import ApiCall, ChatUser, texts

REPORTER = 7340918265
DESCRIPTION = "آب‌گرفتگی کوچهٔ شقایق از دیروز ادامه دارد و کسی برای تخلیه نیامده است"
PHONE = "+989351234987"
SECRET = "a-long-random-secret"


def leaked(caplog: pytest.LogCaptureFixture, *private: str) -> list[str]:
    """Which private strings appear in what was logged: the formatted text (messages and
    tracebacks) and each record's exception as Python itself would print it."""
    logged = [caplog.text]
    for record in caplog.records:
        logged.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            logged += traceback.format_exception(record.exc_info[1])
    everything = "\n".join(logged)
    return [word for word in private if word in everything]


async def refuse(settings: Settings, table: str, operation: str) -> None:
    """Make every `operation` (INSERT or UPDATE) on `table` fail from now on, as a constraint
    would: on PostgreSQL a CHECK constraint, whose error quotes the failing row; on SQLite a
    trigger."""
    engine = create_engine(settings.database.url)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text(f"ALTER TABLE {table} ADD CONSTRAINT refused CHECK (false) NOT VALID")
            )
        else:
            await connection.execute(
                text(
                    f"CREATE TRIGGER refused BEFORE {operation} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    await engine.dispose()


async def file_a_report(resident: ChatUser) -> list[ApiCall]:
    """A report with the resident's phone number shared; the confirm's answer."""
    await resident.send("📝 گزارش جدید")
    await resident.send("جهاد")
    await resident.press("جهاد")
    await resident.send(DESCRIPTION)
    await resident.send("ادامه ⬅️")
    await resident.send_contact(PHONE)
    return await resident.press("ثبت گزارش")


async def count(settings: Settings, entity: type[Case] | type[OutboxMessage]) -> int:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = await session.scalar(select(func.count()).select_from(entity))
    await engine.dispose()
    return int(found or 0)


@pytest.mark.parametrize("where", ["error handler", "placing", "outbox worker"])
async def test_a_failed_statement_logs_no_text_phone_or_id(
    bot: Bot, settings: Settings, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    caplog.set_level(logging.DEBUG)
    resident = ChatUser(bot.app, bot.api, REPORTER, deliver=False)  # the worker sends, below
    runtime = bot.app.bot_data["runtime"]
    if where == "error handler":  # the case itself cannot be written
        await refuse(settings, "cases", "INSERT")
        answer = await file_a_report(resident)
        assert "خطا" in texts(answer)[-1] or "دوباره" in texts(answer)[-1], texts(answer)
        assert await count(settings, Case) == 0
        logger = "handlers.common"
    elif where == "placing":  # the case is kept; its card cannot be queued
        await refuse(settings, "outbox", "INSERT")
        await file_a_report(resident)
        await settle(runtime)
        assert (await count(settings, Case), await count(settings, OutboxMessage)) == (1, 0)
        logger = "bot.pipeline"
    else:  # the cards are queued; the worker cannot mark one sent
        await file_a_report(resident)
        await settle(runtime)
        assert await count(settings, OutboxMessage) > 0
        await refuse(settings, "outbox", "UPDATE")
        worker = asyncio.create_task(runtime.sender.run_forever(0.05))
        for _ in range(100):  # until the worker reports its failure
            await asyncio.sleep(0.05)
            if any(r.name == "bot.delivery" and r.exc_info for r in caplog.records):
                break
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        logger = "bot.delivery"
    failures = [r for r in caplog.records if r.name == logger and r.exc_info]
    assert failures and failures[0].levelno >= logging.ERROR, "the failure itself is logged"
    assert "refused" in caplog.text, "with the constraint it broke"
    escaped = json.dumps(DESCRIPTION)[1:40]  # as a JSON payload (a card) holds it
    # SQLAlchemy cuts a long parameter in the middle: a card's text can hide there, its head not.
    private = [DESCRIPTION, DESCRIPTION[:20], escaped, PHONE, PHONE[3:], str(REPORTER)]
    private += ["[parameters:", "Failing row contains"]
    assert leaked(caplog, *private) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unparsable(update_id: int) -> dict[str, object]:
    """A message update whose date is not a time: the library cannot build it."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 7, "date": "yesterday", "text": DESCRIPTION,
            "chat": {"id": REPORTER, "type": "private"},
            "from": {"id": REPORTER, "is_bot": False, "first_name": "مریم"},
            "contact": {"phone_number": PHONE, "first_name": "مریم", "user_id": REPORTER},
        },
    }  # fmt: skip


async def test_an_unparsable_update_is_logged_by_kind_and_id_only(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    updater = bot.app.updater
    assert updater is not None
    port = free_port()
    await updater.start_webhook(
        listen="127.0.0.1", port=port, url_path="telegram", secret_token=SECRET,
        webhook_url="https://bot.example.ir/telegram",
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/telegram",
                json=unparsable(424242),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
    finally:
        await updater.stop()
    assert answer.status_code == 400, "refused, so Telegram does not send it again and again"

    bot.api.fail = lambda call: (
        (200, {"ok": True, "result": [unparsable(434343)]}) if call.method == "getUpdates" else None
    )
    with pytest.raises(TypeError):  # polling: the library's own parse of getUpdates
        await bot.app.bot.get_updates()

    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any("424242" in line and "message" in line for line in critical), critical
    assert any("434343" in line and "message" in line for line in critical), critical
    assert leaked(caplog, DESCRIPTION, DESCRIPTION[:20], PHONE, PHONE[3:], str(REPORTER)) == []


def _nginx_locations() -> list[tuple[str, str]]:
    """The shipped nginx config's regex locations, in order: (pattern, the block's text)."""
    config = (Path(__file__).parent.parent / "deploy" / "nginx-mahalle.conf").read_text()
    found = re.finditer(r'location ~ "([^"]+)" \{(.*?)\n    \}', config, re.DOTALL)
    return [(match.group(1), match.group(2)) for match in found]


def test_the_nginx_config_keeps_a_webhook_secret_path_out_of_its_logs() -> None:
    """Bale's secret is a path segment: the location that takes it (nginx takes the first
    regex that matches) logs no request and no upstream error, which names the request line;
    a bot's own path without a secret is still logged."""
    secret = "a1B2" * 16
    located = _nginx_locations()

    def block_of(path: str) -> str:
        return next(block for pattern, block in located if re.search(pattern, path))

    for path in (f"/telegram/{secret}", f"/telegram/rey/{secret}", f"/telegram/rey/{secret}/"):
        block = block_of(path)
        assert "access_log off;" in block and re.search(r"error_log \S+ crit;", block), path
    assert "crit" not in block_of("/telegram/tehran") and "off" not in block_of("/telegram/tehran")
