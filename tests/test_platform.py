"""The platform setting: Bale's defaults where the operator set nothing, refusals of a Bale config
that cannot work, and webhooks on Bale at a secret path (Bale sends no secret header)."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import cli
from bot.app import ALLOWED_UPDATES
from bot.config import ConfigError, Settings, TelegramSettings, load_settings
from bot.serving import Receiving
from tests.conftest import COORDINATOR, EXAMPLE_CONFIG, make_settings
from tests.fakebot import ChatUser, start_bot, stop_bot, texts, wait_for
from tests.test_errors_and_cli import served

TOKEN = "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI"
SECRET = "Zq8vN3kLp0Xw7Rt2Yb5Hc9Md4Fg6Js1A"
TELEGRAM_URLS = 'base_url = "https://api.telegram.org/bot"\nbase_file_url = "https://api.telegram.org/file/bot"\n'


def config_with(tmp_path: Path, telegram: str = "", *, keep_urls: bool = False) -> Path:
    """The example config, its Telegram addresses left out (unless kept), with `telegram`'s
    lines in [telegram] instead of the example's lines of the same keys."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert TELEGRAM_URLS in text
    if not keep_urls:
        text = text.replace(TELEGRAM_URLS, "")
    for line in filter(None, telegram.splitlines()):
        key = re.escape(line.split("=")[0].strip())
        text = re.sub(rf"(?m)^{key} = .*\n", "", text, count=1)  # [telegram] comes first
    path = tmp_path / "config.toml"
    path.write_text(text.replace("[telegram]\n", f"[telegram]\n{telegram}\n", 1), encoding="utf-8")
    return path


def load(path: Path, **environ: str) -> Settings:
    return load_settings(path, environ={"MAHALLE_BOT_TOKEN": TOKEN, **environ})


BALE_WEBHOOK = (
    'platform = "bale"\nmode = "webhook"\nwebhook_url = "https://bot.example.ir/telegram"'
)


# --- the setting -----------------------------------------------------------------------------


def test_the_shipped_example_is_telegram_with_telegram_links() -> None:
    telegram = load(EXAMPLE_CONFIG).telegram
    assert telegram.platform == "telegram"
    assert (telegram.deep_link_base, telegram.mode) == ("https://t.me/", "polling")


def test_a_bale_base_url_alone_makes_a_bale_deployment(tmp_path: Path) -> None:
    telegram = load(config_with(tmp_path, 'base_url = "https://tapi.bale.ai/bot"')).telegram
    assert telegram.platform == "bale"
    assert telegram.deep_link_base == "https://ble.ir/"
    assert telegram.base_file_url == "https://tapi.bale.ai/file/bot"
    assert telegram.mode == "polling"


def test_platform_bale_alone_brings_every_bale_address(tmp_path: Path) -> None:
    telegram = load(config_with(tmp_path, 'platform = "bale"')).telegram
    assert (telegram.base_url, telegram.base_file_url, telegram.deep_link_base) == (
        "https://tapi.bale.ai/bot",
        "https://tapi.bale.ai/file/bot",
        "https://ble.ir/",
    )


def test_what_the_operator_set_wins_over_the_platform_defaults(tmp_path: Path) -> None:
    # A local stand-in for Bale's server, and links through the agency's own redirect.
    path = config_with(
        tmp_path,
        'platform = "bale"\nbase_url = "http://127.0.0.1:8081/bot"\n'
        'deep_link_base = "https://go.example.ir/"',
    )
    telegram = load(path).telegram
    assert telegram.platform == "bale"
    assert telegram.base_url == "http://127.0.0.1:8081/bot"
    assert telegram.deep_link_base == "https://go.example.ir/"
    assert telegram.base_file_url == "https://tapi.bale.ai/file/bot"


def test_an_unknown_platform_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"telegram\.platform") as error:
        load(config_with(tmp_path, 'platform = "eitaa"'))
    assert "\n" not in str(error.value)


def test_only_base_url_switched_to_bale_is_refused_naming_the_file_url(tmp_path: Path) -> None:
    path = config_with(tmp_path, keep_urls=True)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            'base_url = "https://api.telegram.org/bot"', 'base_url = "https://tapi.bale.ai/bot"'
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load(path)  # files would still be fetched from Telegram
    message = str(error.value)
    assert "base_file_url points at Telegram while platform is 'bale'" in message
    assert "https://tapi.bale.ai/file/bot" in message and "\n" not in message


def test_telegram_links_in_a_bale_config_are_refused(tmp_path: Path) -> None:
    path = config_with(tmp_path, 'platform = "bale"\ndeep_link_base = "https://t.me/"')
    with pytest.raises(ConfigError, match="deep_link_base points at Telegram") as error:
        load(path)
    assert "https://ble.ir/" in str(error.value)


def test_bale_webhooks_without_a_secret_path_are_refused(tmp_path: Path) -> None:
    path = config_with(tmp_path, BALE_WEBHOOK)
    with pytest.raises(ConfigError, match="webhook' on Bale needs a secret path") as error:
        load(path)
    assert "MAHALLE_WEBHOOK_SECRET" in str(error.value) and "\n" not in str(error.value)
    # A secret that cannot be one path segment is no secret path either.
    with pytest.raises(ConfigError, match="secret path"):
        load(path, MAHALLE_WEBHOOK_SECRET="half/" + SECRET)
    assert load(path, MAHALLE_WEBHOOK_SECRET=SECRET).telegram.mode == "webhook"


def test_bale_webhooks_on_a_port_bale_does_not_post_to_are_refused(tmp_path: Path) -> None:
    path = config_with(tmp_path, BALE_WEBHOOK.replace("ir/telegram", "ir:8443/telegram"))
    with pytest.raises(ConfigError, match=r"webhook_url: Bale posts webhooks only to port 443"):
        load(path, MAHALLE_WEBHOOK_SECRET=SECRET)
    eighty_eight = config_with(tmp_path, BALE_WEBHOOK.replace("ir/telegram", "ir:88/telegram"))
    assert load(eighty_eight, MAHALLE_WEBHOOK_SECRET=SECRET).telegram.platform == "bale"


async def test_invite_links_on_bale_open_the_bot_in_bale(database_url: str) -> None:
    settings = make_settings(database_url)
    bale = TelegramSettings.model_validate({"platform": "bale", "rate_limit": False})
    app, api = await start_bot(settings.model_copy(update={"telegram": bale}))
    try:
        link = texts(await ChatUser(app, api, COORDINATOR).send("/invite police"))[0]
    finally:
        await stop_bot(app)
    assert "https://ble.ir/mahalle_bot?start=join_" in link and "t.me" not in link


# --- webhooks ---------------------------------------------------------------------------------


def run_webhook_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, lines: str
) -> dict[str, Any]:
    """Where `mahalle run`'s webhook server listens and what it registers, with these
    [telegram] lines."""
    monkeypatch.setenv("MAHALLE_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MAHALLE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MAHALLE_DATABASE_URL", database_url)
    seen = served(monkeypatch)
    assert cli.main(["run", "--config", str(config_with(tmp_path, lines))]) == 0
    route: dict[str, Any] = seen["settings"].telegram.webhook_route()._asdict()
    return route


def test_bale_webhooks_listen_at_the_secret_path_and_send_no_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = run_webhook_arguments(
        tmp_path, monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", BALE_WEBHOOK
    )
    assert seen["url_path"] == f"telegram/{SECRET}"
    assert seen["webhook_url"] == f"https://bot.example.ir/telegram/{SECRET}"
    assert seen["secret_token"] is None


def test_telegram_webhooks_keep_the_header_and_the_plain_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = BALE_WEBHOOK.replace('platform = "bale"\n', "")
    seen = run_webhook_arguments(
        tmp_path, monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", lines
    )
    assert (seen["url_path"], seen["secret_token"]) == ("telegram", SECRET)
    assert seen["webhook_url"] == "https://bot.example.ir/telegram"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    """A resident's /start as Bale posts it: JSON, no secret header."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "x"},
            "from": {"id": user_id, "is_bot": False, "first_name": "x"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_the_bale_webhook_server_answers_at_the_secret_path_alone(
    database_url: str,
) -> None:
    bale = TelegramSettings.model_validate(
        {
            "platform": "bale",
            "mode": "webhook",
            "webhook_url": "https://bot.example.ir/telegram",
            "webhook_secret": SECRET,
            "rate_limit": False,
        }
    )
    settings = make_settings(database_url).model_copy(update={"telegram": bale})
    app, api = await start_bot(settings)
    port = free_port()
    await app.start()
    receiving = Receiving([app], settings, list(ALLOWED_UPDATES))
    await receiving.start(port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            refused = [
                await client.post(f"{base}{path}", json=start_update(number, 6000 + number))
                for number, path in enumerate(
                    ["/telegram", "/telegram/", f"/telegram/{SECRET[:-1]}", f"/{SECRET}"], 1
                )
            ]
            accepted = await client.post(
                f"{base}/telegram/{SECRET}",
                content=json.dumps(start_update(9, 6100)),
                headers={"Content-Type": "application/json"},
            )
            await wait_for(lambda: bool(texts(api.to_chat(6100))), what="the welcome")
    finally:
        await receiving.stop()
        await app.stop()
        await stop_bot(app)
    assert [response.status_code for response in refused] == [404, 404, 404, 404]
    assert accepted.status_code == 200
    assert "سلام" in texts(api.to_chat(6100))[0]
    assert not any(api.to_chat(6000 + number) for number in range(1, 5)), "nothing else handled"
    # setWebhook was told the secret address, and no secret_token (Bale takes none).
    (registered,) = [call for call in api.calls if call.method == "setWebhook"]
    assert registered.params["url"] == f"https://bot.example.ir/telegram/{SECRET}"
    assert "secret_token" not in registered.params


async def test_the_telegram_webhook_server_still_wants_the_header(database_url: str) -> None:
    telegram = TelegramSettings.model_validate(
        {
            "mode": "webhook",
            "webhook_url": "https://bot.example.ir/telegram",
            "webhook_secret": SECRET,
            "rate_limit": False,
        }
    )
    settings = make_settings(database_url).model_copy(update={"telegram": telegram})
    app, api = await start_bot(settings)
    port = free_port()
    await app.start()
    receiving = Receiving([app], settings, list(ALLOWED_UPDATES))
    await receiving.start(port)
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/telegram"
            bare = await client.post(url, json=start_update(21, 6200))
            signed = await client.post(
                url,
                json=start_update(22, 6201),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
            await wait_for(lambda: bool(texts(api.to_chat(6201))), what="the welcome")
    finally:
        await receiving.stop()
        await app.stop()
        await stop_bot(app)
    assert (bare.status_code, signed.status_code) == (403, 200)
    assert not api.to_chat(6200)
