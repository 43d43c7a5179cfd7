"""Several bots in one deployment ([[bots]]): each serves its counties with its own token,
flood budget and outbox sender; a person is reached through the bot they wrote to; one bot's
429s hold up none of the other's messages; a config without [[bots]] is unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot import cli, serving
from bot import receiving as receiving_module
from bot.config import ConfigError, Settings, TelegramSettings, load_settings
from bot.context import runtime_of
from bot.jalali import utcnow
from bot.services import outbox, users
from bot.services.health import read_health
from models.entities import OutboxMessage, OutboxStatus, User
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, EXAMPLE_CONFIG, agency_chat
from tests.fakebot import (
    BOT_USER,
    AnyApplication,
    ApiCall,
    ChatUser,
    FakeBotAPI,
    bot_side,
    deliver_outbox,
    start_bot,
    start_bots,
    stop_bot,
    texts,
    wait_for,
)
from tests.test_case_desk import scoped
from tests.test_counties import (
    REY_CHAT,
    REY_COORDINATOR,
    _config_with,
    _county_block,
    report_in,
    rey_agency_chat,
    two_counties,
)
from tests.test_platform import free_port, start_update

TOKENS = {
    "tehran": "111111111:AAHx7Qm2LpVw9Rt4Kz8Nc3Bd6Fg0Js5Yu",
    "rey": "222222222:AAQw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz",
}
TEHRAN_RESIDENT, REY_RESIDENT = 1001, 2002
# Municipal reports go to the first agency of each county.
TEHRAN_MUNICIPAL, REY_MUNICIPAL = agency_chat(0), rey_agency_chat(0)

__all__ = ["start_bot"]  # the module starts bots: conftest runs it in both messengers' ways


def two_bots(database_url: str) -> Settings:
    """Tehran (county "main") served by one bot, Rey by another, on the same database."""
    settings = two_counties(database_url)
    rey = settings.counties[1]
    agencies = [
        agency.model_copy(update={"chat_id": bot_side(rey_agency_chat(i))})
        for i, agency in enumerate(rey.agencies)
    ]
    rey = rey.model_copy(
        update={
            "agencies": agencies,
            "coordinator_chat_id": bot_side(rey.coordinator_chat_id or 0),
            "council_chat_id": bot_side(rey.council_chat_id or 0),
        }
    )
    base = settings.telegram.model_dump()
    bots = [
        {
            "key": key,
            "counties": counties,
            "token_env": f"MAHALLE_BOT_TOKEN_{key.upper()}",
            "telegram": TelegramSettings.model_validate({**base, "token": TOKENS[key]}),
        }
        for key, counties in (("tehran", ["main"]), ("rey", ["rey"]))
    ]
    return Settings.model_validate(
        {**settings.model_dump(), "counties": [settings.counties[0], rey], "bots": bots}
    )


class TwoBots:
    """Both bots running in one process, each on its own fake Bot API."""

    def __init__(self, apps: list[AnyApplication], apis: dict[str, FakeBotAPI]) -> None:
        self.apps = dict(zip(("tehran", "rey"), apps, strict=True))
        self.apis = apis

    def user(self, bot: str, user_id: int) -> ChatUser:
        """A person in their private chat with one of the bots."""
        return ChatUser(self.apps[bot], self.apis[bot], user_id)


@pytest.fixture
async def bots(database_url: str) -> AsyncIterator[TwoBots]:
    apis = {key: FakeBotAPI() for key in TOKENS}
    apis["rey"].bot_user = {**BOT_USER, "id": 222222222, "username": "mahalle_rey_bot"}
    apps = await start_bots(two_bots(database_url), apis, TOKENS)
    yield TwoBots(apps, apis)
    for app in reversed(apps):  # the first bot's closes the shared pool: last
        await stop_bot(app)


def sent_to(api: FakeBotAPI, chat_id: int) -> list[ApiCall]:
    """Messages one fake Bot API was asked to send into a chat."""
    return [c for c in api.to_chat(chat_id) if c.method.startswith("send")]


async def test_each_bot_serves_its_county_and_reaches_its_agencies(bots: TwoBots) -> None:
    tehran = bots.user("tehran", TEHRAN_RESIDENT)
    rey = bots.user("rey", REY_RESIDENT)
    assert "کد پیگیری" in " ".join(await report_in(tehran, "یوسف‌آباد"))
    assert "کد پیگیری" in " ".join(await report_in(rey, "دولت‌آباد"))

    # Each card went to its county's agency through that county's bot, and through no other.
    assert sent_to(bots.apis["tehran"], TEHRAN_MUNICIPAL)
    assert not sent_to(bots.apis["rey"], TEHRAN_MUNICIPAL)
    assert sent_to(bots.apis["rey"], REY_MUNICIPAL)
    assert not sent_to(bots.apis["tehran"], REY_MUNICIPAL)
    # Each resident heard only from the bot they wrote to.
    assert not bots.apis["rey"].to_chat(TEHRAN_RESIDENT)
    assert not bots.apis["tehran"].to_chat(REY_RESIDENT)
    async with runtime_of(bots.apps["tehran"]).session_factory() as session:
        belongs = dict((await session.execute(select(User.id, User.bot_key))).all())
    assert belongs == {TEHRAN_RESIDENT: "tehran", REY_RESIDENT: "rey"}


async def test_a_bot_offers_only_its_own_countys_places(bots: TwoBots) -> None:
    rey = bots.user("rey", REY_RESIDENT)
    await rey.send("📝 گزارش جدید")
    await rey.send("یوسف‌آباد")  # a neighbourhood of Tehran, served by the other bot
    offered = rey.button_labels()
    assert not any("یوسف‌آباد" in label for label in offered)
    assert any("دولت" in label or "ابن" in label or "ری" in label for label in offered)


async def test_the_same_update_number_from_two_bots_is_handled_by_each(bots: TwoBots) -> None:
    tehran = bots.user("tehran", TEHRAN_RESIDENT)
    rey = bots.user("rey", REY_RESIDENT)
    # Each bot numbers its updates from its own start: the same number from both is two updates.
    tehran._update_ids = itertools.count(777)
    rey._update_ids = itertools.count(777)
    assert texts(await tehran.send("/start"))
    assert texts(await rey.send("/start"))


async def test_a_person_is_reached_through_the_bot_they_last_wrote_to(bots: TwoBots) -> None:
    await bots.user("tehran", REY_RESIDENT).send("/start")
    await bots.user("rey", REY_RESIDENT).send("/start")
    runtime = runtime_of(bots.apps["tehran"])
    async with runtime.session_factory() as session, session.begin():
        outbox.enqueue(
            session, chat_id=REY_RESIDENT, purpose=outbox.REPORTER_NOTICE,
            payload={"text": "سلام"},
        )  # fmt: skip
    assert await deliver_outbox(bots.apps["tehran"]) == 0  # not the first bot's to send
    assert await deliver_outbox(bots.apps["rey"]) == 1
    assert [c.params["text"] for c in sent_to(bots.apis["rey"], REY_RESIDENT)][-1] == "سلام"


async def test_each_bot_sets_command_menus_only_in_its_own_countys_chats(bots: TwoBots) -> None:
    agencies = len(runtime_of(bots.apps["tehran"]).settings.counties[0].agencies)
    expected = {
        "tehran": {"default", COORDINATOR, *(agency_chat(i) for i in range(agencies))},
        "rey": {"default", REY_COORDINATOR, *(rey_agency_chat(i) for i in range(agencies))},
    }
    for key, api in bots.apis.items():
        if "setMyCommands" in api.dialect.missing:  # Bale: no menus, asked once and refused
            assert [c.method for c in api.calls].count("setMyCommands") == 1
        else:  # a group of the other county's is not this bot's: Telegram knows no such chat
            assert set(scoped(api.calls)) == expected[key]


async def test_one_bots_429s_hold_up_none_of_the_others_messages(bots: TwoBots) -> None:
    def flood(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.method.startswith("send") and call.chat_id != REY_RESIDENT:
            return 429, {
                "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 30",
                "parameters": {"retry_after": 30},
            }  # fmt: skip
        return None

    bots.apis["rey"].fail = flood
    rey = bots.user("rey", REY_RESIDENT)
    tehran = bots.user("tehran", TEHRAN_RESIDENT)
    await report_in(rey, "دولت‌آباد")
    started = time.monotonic()
    await report_in(tehran, "یوسف‌آباد")
    assert time.monotonic() - started < 10
    # Tehran's card went out at once; Rey's waits its 30 seconds, pending, not given up.
    assert [m for m in bots.apis["tehran"].delivered(TEHRAN_MUNICIPAL)]
    assert not bots.apis["rey"].delivered(REY_MUNICIPAL)
    async with runtime_of(bots.apps["tehran"]).session_factory() as session:
        waiting = (
            await session.scalars(
                select(OutboxMessage.status).where(OutboxMessage.chat_id == bot_side(REY_MUNICIPAL))
            )
        ).all()
    assert waiting and set(waiting) == {OutboxStatus.PENDING}


# --- configuration -----------------------------------------------------------------------------

WEBHOOKS = """
[telegram]
mode = "webhook"
webhook_url = "https://mahalle.example.ir/telegram"
"""


def _bots_block(*entries: tuple[str, str, str]) -> str:
    """[[bots]] entries: (key, counties as TOML, extra lines)."""
    return "".join(
        f'[[bots]]\nkey = "{key}"\ncounties = {counties}\n'
        f'token_env = "{key.upper()}_TOKEN"\nwebhook_secret_env = "{key.upper()}_SECRET"\n{extra}'
        for key, counties, extra in entries
    )


def _config(tmp_path: Path, bots_block: str, head: str = "") -> Path:
    return _config_with(
        tmp_path, head + _county_block("varamin") + _county_block("rey") + bots_block
    )


ENVIRON = {
    "VARAMIN_TOKEN": TOKENS["tehran"], "REY_TOKEN": TOKENS["rey"],
    "VARAMIN_SECRET": "v" * 40, "REY_SECRET": "r" * 40,
}  # fmt: skip


def test_each_bot_has_its_token_messenger_and_webhook_path(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        _bots_block(
            ("varamin", '["varamin"]', ""),
            ("rey", '["rey"]', 'base_url = "https://tapi.bale.ai/bot"\n'),
        ),
        WEBHOOKS,
    )
    settings = load_settings(path, environ=ENVIRON)
    assert settings.bot_keys == ["varamin", "rey"]
    varamin, rey = (settings.for_bot(key) for key in settings.bot_keys)
    assert varamin.require_token() == TOKENS["tehran"] and rey.require_token() == TOKENS["rey"]
    assert (varamin.telegram.platform, rey.telegram.platform) == ("telegram", "bale")
    assert rey.telegram.deep_link_base == "https://ble.ir/"
    route = varamin.telegram.webhook_route()
    assert (route.url_path, route.webhook_url, route.secret_token) == (
        "telegram/varamin", "https://mahalle.example.ir/telegram/varamin", "v" * 40,
    )  # fmt: skip
    route = rey.telegram.webhook_route()  # Bale: the secret is a path segment, no header
    assert route.url_path == f"telegram/rey/{'r' * 40}" and route.secret_token is None
    assert settings.bot_of_county("rey") == "rey" and settings.counties_of_bot("rey") == ["rey"]


def test_a_config_without_bots_is_one_bot_as_before() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_BOT_TOKEN": TOKENS["tehran"]})
    assert settings.bot_keys == ["main"] and settings.for_bot("main") is settings
    assert settings.require_token() == TOKENS["tehran"]
    assert settings.telegram.webhook_route().url_path == "telegram"
    assert settings.counties_of_bot("main") is None


@pytest.mark.parametrize(
    ("block", "environ", "error"),
    [
        (
            _bots_block(("varamin", '["varamin", "rey"]', ""), ("rey", '["rey"]', "")),
            ENVIRON, "a county is served by one bot only, repeated: rey",
        ),
        (_bots_block(("varamin", '["varamin"]', "")), ENVIRON, "no bot serves counties: rey"),
        (
            _bots_block(("varamin", '["varamin"]', ""), ("rey", '["rey", "shemiran"]', "")),
            ENVIRON, "bots serve unknown counties: shemiran",
        ),
        (
            _bots_block(("varamin", '["varamin"]', 'token = "1:x"\n'), ("rey", '["rey"]', "")),
            ENVIRON, "secrets must not be written in the config file",
        ),
        (
            _bots_block(("varamin", '["varamin"]', ""), ("rey", '["rey"]', "")),
            {**ENVIRON, "REY_TOKEN": "your-token-here"}, "REY_TOKEN: this is a placeholder",
        ),
    ],
)  # fmt: skip
def test_a_wrong_bots_section_is_refused_in_one_line(
    tmp_path: Path, block: str, environ: dict[str, str], error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings(_config(tmp_path, block), environ=environ)


def test_a_missing_token_names_the_variable_of_its_bot(tmp_path: Path) -> None:
    path = _config(tmp_path, _bots_block(("varamin", '["varamin"]', ""), ("rey", '["rey"]', "")))
    settings = load_settings(path, environ={"VARAMIN_TOKEN": TOKENS["tehran"]})
    with pytest.raises(ConfigError, match="REY_TOKEN is not set: it holds the token of bot 'rey'"):
        settings.require_token()


# --- webhooks ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving_both(settings: Settings) -> AsyncIterator[tuple[dict[str, FakeBotAPI], int]]:
    """Both bots started, each on its own fake Bot API, their webhooks served on one free port
    by a process that receives for both; the fakes and the port."""
    apis = {key: FakeBotAPI() for key in TOKENS}
    apps = await start_bots(settings, apis, TOKENS)
    for app in apps:
        await app.start()
    port = free_port()
    receiving = serving.Receiving(apps, settings, ["message"])
    await receiving.start(port)
    try:
        # One more bot a try (processes started together share them out): both, soon.
        await wait_for(
            lambda: receiving.receivers.leading == set(TOKENS), what="both bots", seconds=5
        )
        yield apis, port
    finally:
        await receiving.stop()
        for app in reversed(apps):
            await app.stop()
            await stop_bot(app)


def on_webhooks(settings: Settings, secrets: dict[str, str]) -> Settings:
    """The deployment's bots taking webhooks, each at its path with its secret."""
    bots = []
    for entry in settings.bots:
        webhook = {
            "mode": "webhook",
            "webhook_url": f"https://bot.example.ir/telegram/{entry.key}",
            "webhook_secret": SecretStr(secrets[entry.key]),
        }
        telegram = entry.telegram.model_copy(update=webhook)
        bots.append(entry.model_copy(update={"telegram": telegram}))
    return settings.model_copy(update={"bots": bots})


@pytest.mark.one_messenger
async def test_both_bots_webhooks_share_one_port_each_with_its_secret(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiving_module, "RETRY_SECONDS", 0.1)
    secrets = {"tehran": "t" * 40, "rey": "r" * 40}
    settings = on_webhooks(two_bots(database_url), secrets)
    async with serving_both(settings) as (apis, port):
        # Each bot registered its own address and secret.
        for key, api in apis.items():
            (call,) = [c for c in api.calls if c.method == "setWebhook"]
            assert call.params["url"] == f"https://bot.example.ir/telegram/{key}"
            assert call.params["secret_token"] == secrets[key]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            wrong = await client.post(
                "/telegram/rey", json=start_update(1, REY_RESIDENT),
                headers={serving.SECRET_HEADER: secrets["tehran"]},
            )  # fmt: skip
            right = await client.post(
                "/telegram/rey", json=start_update(2, REY_RESIDENT),
                headers={serving.SECRET_HEADER: secrets["rey"]},
            )  # fmt: skip
        assert (wrong.status_code, right.status_code) == (403, 200)
        # Answered once handled: the welcome went out before the answer.
        assert [c.method for c in apis["rey"].to_chat(REY_RESIDENT)] == ["sendMessage"]
        assert not apis["tehran"].to_chat(REY_RESIDENT)


async def test_status_shows_each_bots_waiting_messages(bots: TwoBots) -> None:
    await bots.user("rey", REY_RESIDENT).send("/start")
    runtime = runtime_of(bots.apps["tehran"])
    async with runtime.session_factory() as session, session.begin():
        for chat in (REY_RESIDENT, bot_side(REY_MUNICIPAL), bot_side(TEHRAN_MUNICIPAL)):
            outbox.enqueue(
                session, chat_id=chat, purpose=outbox.COORDINATOR_NOTICE, payload={"text": "x"}
            )
    async with runtime.session_factory() as session:
        health = await read_health(session=session, now=utcnow(), settings=runtime.settings)
    assert {key: waiting.count for key, (waiting, _) in health.bots.items()} == {
        "tehran": 1, "rey": 2,
    }  # fmt: skip
    lines = health.lines(utcnow())
    assert any(line.startswith("bot rey: messages waiting 2") for line in lines)
    assert any(line.startswith("bot tehran: messages waiting 1") for line in lines)


# --- what a second look found ------------------------------------------------------------------


async def test_a_place_saved_through_one_bot_is_not_offered_by_the_other(bots: TwoBots) -> None:
    tehran = bots.user("tehran", 5005)
    await tehran.send("🏘 محلهٔ من")
    await tehran.send("یوسف‌آباد")
    await tehran.press("یوسف‌آباد")
    rey = bots.user("rey", 5005)
    await rey.send("📝 گزارش جدید")
    assert not any("یوسف" in label for label in rey.button_labels()), "not Tehran's place"
    assert "یوسف" not in texts(await rey.send("🏘 محلهٔ من"))[0]


async def test_a_second_bots_group_that_became_a_supergroup_is_still_its_own(
    bots: TwoBots,
) -> None:
    new_chat = -1009999

    def migrate(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.method.startswith("send") and call.chat_id == REY_MUNICIPAL:
            return 400, {
                "ok": False, "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": bot_side(new_chat)},
            }  # fmt: skip
        return None

    bots.apis["rey"].fail = migrate
    await report_in(bots.user("rey", REY_RESIDENT), "دولت‌آباد")
    for _ in range(3):
        await deliver_outbox(bots.apps["rey"])
        await deliver_outbox(bots.apps["tehran"])
    assert not bots.apis["tehran"].to_chat(new_chat), "not through the other bot"
    assert sent_to(bots.apis["rey"], new_chat), "the card followed its group, through its bot"
    bots.apis["rey"].refused.clear()  # the one refusal was the migration itself


async def test_a_conversation_begun_in_one_bot_is_not_taken_up_by_the_other(
    database_url: str,
) -> None:
    settings = two_bots(database_url)

    async def start() -> TwoBots:
        apis = {key: FakeBotAPI() for key in TOKENS}
        return TwoBots(await start_bots(settings, apis, TOKENS), apis)

    first = await start()
    tehran = first.user("tehran", 6006)
    await tehran.send("📝 گزارش جدید")
    await tehran.send("یوسف‌آباد")
    await tehran.press("یوسف‌آباد")  # asked for the description now
    for app in reversed(list(first.apps.values())):
        await stop_bot(app)
    second = await start()  # a restart reads every state again
    answer = texts(await second.user("rey", 6006).send("سلام، این ربات چطوری کار میکنه؟"))
    for app in reversed(list(second.apps.values())):
        await stop_bot(app)
    assert not any("عکس" in text or "ادامه" in text for text in answer), answer


async def test_blocking_one_bot_leaves_the_person_reachable_through_the_other(
    bots: TwoBots,
) -> None:
    person = 8008
    await bots.user("tehran", person).send("/start")
    await bots.user("rey", person).send("/start")  # now reached through Rey's bot
    runtime = runtime_of(bots.apps["tehran"])
    async with runtime.session_factory() as session:
        await users.mark_blocked(session=session, user_id=person, bot_key="tehran")
        assert (await session.get(User, person)).blocked_bot is False  # type: ignore[union-attr]
        await users.mark_blocked(session=session, user_id=person, bot_key="rey")
    async with runtime.session_factory() as session:
        assert (await session.get(User, person)).blocked_bot is True  # type: ignore[union-attr]


async def test_a_second_bots_errors_reach_its_own_countys_coordinators(bots: TwoBots) -> None:
    def broken(call: ApiCall) -> tuple[int, dict[str, object]] | None:
        if call.method == "sendMessage" and call.chat_id == REY_RESIDENT:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: odd"}
        return None

    bots.apis["rey"].fail = broken
    await bots.user("rey", REY_RESIDENT).send("/start")
    bots.apis["rey"].fail = None
    bots.apis["rey"].refused.clear()
    assert sent_to(bots.apis["rey"], REY_CHAT), "Rey's coordinators hear of it"
    assert not sent_to(bots.apis["rey"], COORDINATOR_CHAT), "not Tehran's, where it is no member"


def test_two_bots_on_one_token_are_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, _bots_block(("varamin", '["varamin"]', ""), ("rey", '["rey"]', "")))
    same = {"VARAMIN_TOKEN": TOKENS["tehran"], "REY_TOKEN": TOKENS["tehran"]}
    with pytest.raises(ConfigError, match="VARAMIN_TOKEN, REY_TOKEN hold the same"):
        load_settings(path, environ=same)


def test_a_webhook_bot_without_its_secret_names_its_variable(tmp_path: Path) -> None:
    path = _config(
        tmp_path, _bots_block(("varamin", '["varamin"]', ""), ("rey", '["rey"]', "")), WEBHOOKS
    )
    with pytest.raises(ConfigError, match=r"bots\.rey: webhook mode needs a secret.*REY_SECRET"):
        load_settings(path, environ={k: v for k, v in ENVIRON.items() if k != "REY_SECRET"})


@pytest.mark.one_messenger
async def test_the_webhook_server_logs_no_path_and_refuses_odd_bodies(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiving_module, "RETRY_SECONDS", 0.1)
    caplog.set_level(logging.DEBUG)
    settings = two_bots(database_url)
    secret = "r" * 40
    bale = {
        "platform": "bale", "mode": "webhook", "webhook_secret": SecretStr(secret),
        "webhook_url": "https://bot.example.ir/telegram/rey",
        "base_url": "https://tapi.bale.ai/bot", "base_file_url": "https://tapi.bale.ai/file/bot",
        "deep_link_base": "https://ble.ir/",
    }  # fmt: skip
    entries = [
        entry.model_copy(update={"telegram": entry.telegram.model_copy(update={**bale})})
        if entry.key == "rey"
        else entry.model_copy(
            update={"telegram": entry.telegram.model_copy(update={"mode": "webhook"})}
        )
        for entry in settings.bots
    ]
    settings = settings.model_copy(update={"bots": entries})
    path = f"/telegram/rey/{secret}"
    async with (
        serving_both(settings) as (_, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        odd = [
            (await client.post(path, json=body)).status_code
            for body in ([1, 2], "x", None, {}, {"update_id": "abc"})
        ]
        fine = await client.post(f"{path}/", json=start_update(3, REY_RESIDENT))
        try:  # refused unread: an answer, or the connection closed
            huge: int | str = (
                await client.post(path, content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
            ).status_code
        except httpx.HTTPError as error:
            huge = type(error).__name__
    assert (
        odd == [400] * 5
        and fine.status_code == 200
        and huge in (400, 413, "ReadError", "RemoteProtocolError")
    )
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert all(secret not in r.getMessage() for r in served), "Bale's secret: never in the log"
    assert "Uncaught exception" not in caplog.text


async def test_mahalle_stats_counts_in_all_by_bot_and_by_county(bots: TwoBots) -> None:
    await report_in(bots.user("tehran", TEHRAN_RESIDENT), "یوسف‌آباد")
    await report_in(bots.user("rey", REY_RESIDENT), "دولت‌آباد")
    await report_in(bots.user("rey", REY_RESIDENT + 1), "ابن‌بابویه")
    lines = await cli._stats_lines(runtime_of(bots.apps["tehran"]).settings, days=1)
    assert lines[0].startswith("all, the last 1 days: 3 reports")
    assert lines[1:3] == ["bot tehran: 1 reports", "  county main: 1 reports (forwarded 1)"]
    assert lines[3] == "bot rey: 2 reports"
    assert lines[4].startswith("  county rey: 2 reports")


class InFlightAPI(FakeBotAPI):
    """The fake Bot API, answering each message after `seconds`, counting the calls it holds
    at once over every bot that uses one (`shared`)."""

    def __init__(self, shared: dict[str, int], seconds: float) -> None:
        super().__init__()
        self.shared, self.seconds = shared, seconds

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        if not url.endswith("/sendMessage"):
            return await super().do_request(url, method, *args, **kwargs)
        self.shared["now"] += 1
        self.shared["most"] = max(self.shared["most"], self.shared["now"])
        try:
            await asyncio.sleep(self.seconds)
            return await super().do_request(url, method, *args, **kwargs)
        finally:
            self.shared["now"] -= 1


@pytest.mark.one_messenger
async def test_a_process_handles_at_most_concurrent_updates_over_all_its_bots(
    database_url: str,
) -> None:
    """Each update handled holds a database connection, and the pool is sized for
    `concurrent_updates` in all: two bots must not handle twice as many."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite handles one update at a time")
    counted = {"now": 0, "most": 0}
    apis: dict[str, FakeBotAPI] = {key: InFlightAPI(counted, 0.3) for key in TOKENS}
    apis["rey"].bot_user = {**BOT_USER, "id": 222222222, "username": "mahalle_rey_bot"}
    settings = two_bots(database_url).model_copy(
        update={"bot": two_bots(database_url).bot.model_copy(update={"concurrent_updates": 2})}
    )
    apps = await start_bots(settings, apis, TOKENS)
    for app in apps:
        await app.start()
    people = [
        ChatUser(app, apis[key], 3000 + n)
        for key, app in zip(TOKENS, apps, strict=True)
        for n in range(3)
    ]
    for person in people:
        await person.app.update_queue.put(person.text_update("/start"))
    await wait_for(
        lambda: all(person.api.to_chat(person.chat_id) for person in people),
        what="every welcome",
        seconds=20,
    )
    for app in reversed(apps):
        await app.stop()
        await stop_bot(app)
    assert counted["most"] == 2, f"{counted['most']} updates handled at once, over both bots"
