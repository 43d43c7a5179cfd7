"""Telegram failures while replying, the error handler, and the command line."""

from __future__ import annotations

import gc
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import AIORateLimiter, ApplicationBuilder

from bot import cli
from bot.app import _post_init_then_freeze, build_application
from bot.config import Settings
from models.db import create_engine, create_session_factory
from models.entities import User
from tests.conftest import EXAMPLE_CONFIG, make_settings
from tests.fakebot import FAKE_TOKEN, ApiCall, ChatUser, FakeBotAPI, start_bot, stop_bot, texts
from tests.test_report_flow import DESCRIPTION, cases_in, walk_to_summary

ADMIN_CHAT = -100777


def fail_once(method: str, status: int, payload: dict[str, Any]) -> Any:
    """A fake-API hook that fails the first call of `method`, then lets calls through."""
    state = {"failed": False}

    def hook(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.method == method and not state["failed"]:
            state["failed"] = True
            return status, payload
        return None

    return hook


async def test_server_error_while_replying_is_reported_and_the_user_is_told(
    database_url: str,
) -> None:
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"admin_chat_id": ADMIN_CHAT}
    )
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 7007)
    api.fail = fail_once(
        "sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    )
    await resident.send("/start")
    admin_lines = [c.text for c in api.calls if c.chat_id == ADMIN_CHAT]
    assert len(admin_lines) == 1 and "NetworkError" in admin_lines[0]
    assert "دوباره امتحان کنید" in resident.last_text
    assert "Traceback" not in resident.last_text
    await stop_bot(app)


async def test_a_failed_reply_after_confirm_loses_no_case(database_url: str) -> None:
    settings = make_settings(database_url, telegram={"rate_limit": False})
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 7008)
    await walk_to_summary(resident)
    api.fail = fail_once(
        "sendMessage", 500, {"ok": False, "error_code": 500, "description": "Internal"}
    )
    confirm = resident.data_of("ثبت گزارش")
    await resident.press_data(confirm)
    [case] = await cases_in(settings)
    assert case.text_original == DESCRIPTION
    await stop_bot(app)


async def test_a_user_who_blocked_the_bot_is_marked(database_url: str) -> None:
    settings = make_settings(database_url, telegram={"rate_limit": False})
    app, api = await start_bot(settings)
    resident = ChatUser(app, api, 7009)
    await resident.send("/start")
    api.fail = fail_once(
        "sendMessage",
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    await resident.send("❓ راهنما")
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        user = await session.get(User, 7009)
        assert user is not None and user.blocked_bot
    await resident.send("/start")  # writing again means they unblocked us
    async with create_session_factory(engine)() as session:
        user = await session.get(User, 7009)
        assert user is not None and not user.blocked_bot
    await engine.dispose()
    await stop_bot(app)


async def test_flood_limit_with_retry_after_is_waited_out(database_url: str) -> None:
    settings = make_settings(database_url)
    api = FakeBotAPI()
    builder = (
        ApplicationBuilder()
        .token(FAKE_TOKEN)
        .request(api)
        .get_updates_request(api)
        .rate_limiter(AIORateLimiter(max_retries=3))
    )
    app = build_application(settings, builder)
    await app.initialize()
    api.fail = fail_once(
        "sendMessage",
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests",
            "parameters": {"retry_after": 1},
        },
    )
    replies = texts(await ChatUser(app, api, 7010).send("/start"))
    assert len(replies) == 2 and replies[0] == replies[1], (
        "the same welcome, sent again after waiting"
    )
    await stop_bot(app)


def test_help_texts_say_what_each_command_does() -> None:
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    assert "run" in run("--help") and "db" in run("--help")
    assert "webhook" in run("run", "--help") and "MAHALLE_BOT_TOKEN" in run("run", "--help")
    assert "migration" in run("db", "upgrade", "--help")


def test_run_without_token_explains_how_to_get_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAHALLE_BOT_TOKEN", raising=False)
    assert cli.main(["run", "--config", str(EXAMPLE_CONFIG)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "@BotFather" in error


def test_db_upgrade_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fresh.db"
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade", "--config", str(EXAMPLE_CONFIG)],
        capture_output=True, text=True, check=False, cwd=tmp_path,  # where the model file goes
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {
        "cases",
        "case_events",
        "users",
        "neighbourhoods",
        "drafts",
        "alembic_version",
    } <= tables


def test_webhook_mode_takes_the_secret_and_the_chats_at_once_from_the_config(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8")
        .replace('mode = "polling"', 'mode = "webhook"')
        .replace('webhook_url = ""', 'webhook_url = "https://bot.example.ir/telegram"')
        .replace("concurrent_updates = 16", "concurrent_updates = 24")
        .replace('model_path = "triage-model.npz"', f'model_path = "{tmp_path / "model.npz"}"'),
        encoding="utf-8",
    )
    monkeypatch.setenv("MAHALLE_BOT_TOKEN", "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI")
    monkeypatch.setenv("MAHALLE_WEBHOOK_SECRET", "a-long-random-secret-of-forty-characters")
    monkeypatch.setenv("MAHALLE_DATABASE_URL", database_url)
    seen = served(monkeypatch)
    caplog.set_level(logging.INFO)
    assert cli.main(["run", "--config", str(config)]) == 0
    route = seen["settings"].telegram.webhook_route()
    assert route.secret_token == "a-long-random-secret-of-forty-characters"
    assert route.webhook_url == "https://bot.example.ir/telegram"
    # Asked by name: Telegram would otherwise keep what the token was last set to.
    assert {"message", "callback_query"} <= set(seen["allowed_updates"])
    assert "channel_post" not in seen["allowed_updates"]
    # The configured number of chats at once on PostgreSQL; SQLite takes one writer at a time.
    at_once = 24 if database_url.startswith("postgresql") else 1
    [app] = seen["applications"]
    assert app.update_processor.handled_at_once == at_once
    assert f"updates of different chats handled at once: {at_once}" in caplog.text
    assert app.post_init is _post_init_then_freeze, "a server freezes what it loaded"


def served(monkeypatch: pytest.MonkeyPatch, error: Exception | None = None) -> dict[str, Any]:
    """What `mahalle run` hands to bot.serving.serve (which then returns at once, or raises
    `error` as starting the bots would)."""
    from bot import serving

    seen: dict[str, Any] = {}

    async def serve(applications: list[Any], settings: Any, **kwargs: Any) -> None:
        seen.update(kwargs, applications=applications, settings=settings)
        if error is not None:
            raise error

    monkeypatch.setattr(serving, "serve", serve)
    return seen


async def test_what_start_up_loaded_is_out_of_the_collectors_full_passes(
    settings: Settings,
) -> None:
    """A full garbage collection walks every object it tracks while every update in flight
    waits: 130–160 ms with the triage model, reference data and modules among them."""
    app, _ = await start_bot(settings, freeze_startup=True)
    try:
        model = app.bot_data["runtime"].triage.model
        assert gc.is_tracked(model) and gc.get_freeze_count() > 0
        assert all(tracked is not model for tracked in gc.get_objects()), "frozen, not walked"
    finally:
        gc.unfreeze()  # this test process goes on starting and stopping bots
        await stop_bot(app)


def test_an_unreachable_bot_api_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from telegram.error import InvalidToken, NetworkError

    monkeypatch.setenv("MAHALLE_BOT_TOKEN", "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI")
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.chdir(tmp_path)  # the triage model file is written here
    for failure, expected in (
        (NetworkError("connect failed"), "cannot reach the Bot API"),
        (InvalidToken("Unauthorized"), "refused the token"),
    ):
        served(monkeypatch, failure)
        assert cli.main(["run", "--config", str(EXAMPLE_CONFIG)]) == 2
        assert expected in capsys.readouterr().err


def test_without_network_the_first_run_says_one_line_and_no_traceback(tmp_path: Path) -> None:
    """A Bot API nobody answers at (here a closed local port): the clear line alone."""
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(
            'base_url = "https://api.telegram.org/bot"', 'base_url = "http://127.0.0.1:9/bot"', 1
        ),
        encoding="utf-8",
    )
    assert "127.0.0.1:9" in config.read_text(encoding="utf-8")
    environment = {
        "PATH": "/usr/bin:/bin",
        "MAHALLE_BOT_TOKEN": "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI",
        "MAHALLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        env=environment, cwd=EXAMPLE_CONFIG.parent, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    problems = [
        line
        for line in done.stderr.splitlines()
        if " INFO " not in line and "not configured" not in line
    ]
    assert problems == [problems[0]] and problems[0].startswith("mahalle: cannot reach")


def test_start_up_says_what_is_not_configured_and_where_reports_go(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The shipped example has no coordinators and no agency chats: start-up says so plainly."""
    monkeypatch.setenv("MAHALLE_BOT_TOKEN", "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI")
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    served(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["run", "--config", str(EXAMPLE_CONFIG)]) == 0
    gaps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not configured")]
    assert len(gaps) == 2
    assert "no chat_id for 11 of 11 agencies" in gaps[0] and "triage queue" in gaps[0]
    assert "no coordinators" in gaps[1] and "unseen" in gaps[1]


async def test_a_server_without_set_my_commands_still_starts_and_answers(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bale, for one, may answer 404 to setMyCommands: the bot starts and answers anyway."""
    from tests.conftest import make_settings
    from tests.fakebot import ChatUser, FakeBotAPI, start_bot, stop_bot, texts

    def no_commands(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.method == "setMyCommands":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return None

    api = FakeBotAPI(fail=no_commands)
    with caplog.at_level(logging.WARNING):
        app, _ = await start_bot(make_settings(database_url, telegram={"rate_limit": False}), api)
    assert any("setMyCommands" in r.getMessage() for r in caplog.records)
    assert "محله" in texts(await ChatUser(app, api, 1001).send("/start"))[-1]
    await stop_bot(app)


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "is not set"),
        ("YOUR_TOKEN_HERE", "placeholder"),
        ("123456:ABCdefGhIJKlmNoPQRsTUVwxyZ", "placeholder"),
        ("12345", "does not look like"),
    ],
)
def test_run_sh_refuses_a_missing_or_placeholder_token_before_installing(
    token: str, says: str, tmp_path: Path
) -> None:
    """The first of the two commands answers at once, before any install."""
    done = subprocess.run(
        ["bash", str(EXAMPLE_CONFIG.parent / "scripts" / "run.sh")],
        env={"PATH": "/usr/bin:/bin", "MAHALLE_BOT_TOKEN": token, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and says in done.stderr.splitlines()[0]
