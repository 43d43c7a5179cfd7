"""One deployment on Telegram and on Bale: the two messengers number people and chats in the
same range, so a Telegram resident and a Bale resident with the same number are two people
(bot/ids.py), each messenger is called with its own numbers, and neither bot ever sends to the
other messenger's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from telegram.error import BadRequest

from bot import cli, serving
from bot import receiving as receiving_module
from bot.config import ConfigError, Settings, TelegramSettings
from bot.context import runtime_of
from bot.digits import persian_digits
from bot.ids import (
    APART,
    ForeignIdError,
    answer_moved_in,
    as_written,
    calls_moved_out,
    moved_in,
    update_moved_in,
)
from bot.services import outbox
from models.db import create_engine, create_session_factory
from models.entities import Case, Staff, User
from tests.conftest import COORDINATOR
from tests.fakebot import (
    BALE,
    BOT_USER,
    AnyApplication,
    ApiCall,
    ChatUser,
    FakeBotAPI,
    deliver_outbox,
    start_bots,
    stop_bot,
    texts,
)
from tests.test_agency import add_staff
from tests.test_bots import TOKENS, on_webhooks, serving_both, two_bots
from tests.test_counties import REY_CHAT, REY_COORDINATOR, report_in, rey_agency_chat
from tests.test_platform import start_update

pytestmark = pytest.mark.one_messenger

# One number, two people: a resident of Tehran on Telegram and one of Rey on Bale.
SAME = 1001
MY_REPORTS = "📋 گزارش‌های من"
__all__ = ["start_bots"]  # the module starts bots (conftest gives it a database per test)


def on_both(database_url: str) -> Settings:
    """Tehran's bot on Telegram (the first), Rey's on Bale, read as a config file is."""
    settings = two_bots(database_url)
    bots = []
    for entry in settings.bots:
        telegram = entry.telegram.model_dump()
        if entry.key == "rey":
            telegram.update(platform="bale", base_url="https://tapi.bale.ai/bot")
            telegram.update(base_file_url="https://tapi.bale.ai/file/bot")
            telegram.update(deep_link_base="https://ble.ir/")
        telegram["token"] = SecretStr(TOKENS[entry.key])
        bots.append({**entry.model_dump(), "telegram": TelegramSettings.model_validate(telegram)})
    return Settings.model_validate({**settings.model_dump(), "bots": bots})


class Both:
    """The two bots running, Tehran's on a Telegram fake and Rey's on a Bale one."""

    def __init__(self, apps: list[AnyApplication], apis: dict[str, FakeBotAPI]) -> None:
        self.apps = dict(zip(("tehran", "rey"), apps, strict=True))
        self.apis = apis

    def user(self, bot: str, user_id: int, chat_id: int | None = None) -> ChatUser:
        """A person writing to one of the bots, by their messenger's own number."""
        return ChatUser(self.apps[bot], self.apis[bot], user_id, chat_id=chat_id)

    async def rows(self) -> tuple[list[User], list[Case]]:
        """Every person and every case in the database."""
        engine = create_engine(runtime_of(self.apps["tehran"]).settings.database.url)
        async with create_session_factory(engine)() as session:
            people = list((await session.scalars(select(User).order_by(User.id))).all())
            cases = list((await session.scalars(select(Case).order_by(Case.id))).all())
        await engine.dispose()
        return people, cases


@pytest.fixture
async def both(database_url: str) -> AsyncIterator[Both]:
    apis = {"tehran": FakeBotAPI(), "rey": FakeBotAPI(dialect=BALE)}
    apis["rey"].bot_user = {**BOT_USER, "id": 222222222, "username": "mahalle_rey_bot"}
    apps = await start_bots(on_both(database_url), apis, TOKENS)
    yield Both(apps, apis)
    for app in reversed(apps):  # the first bot's closes the shared pool: last
        await stop_bot(app)


async def test_a_telegram_and_a_bale_resident_with_one_number_are_two_people(both: Both) -> None:
    tehran, rey = both.user("tehran", SAME), both.user("rey", SAME)
    assert "کد پیگیری" in " ".join(await report_in(tehran, "یوسف‌آباد"))
    assert "کد پیگیری" in " ".join(await report_in(rey, "دولت‌آباد"))
    people, cases = await both.rows()
    assert [(p.id, p.bot_key) for p in people] == [(SAME, "tehran"), (SAME + APART, "rey")]
    assert [c.reporter_id for c in cases] == [SAME, SAME + APART]
    tehran_code, rey_code = cases[0].code, cases[1].code
    mine = " ".join(texts(await tehran.send(MY_REPORTS)))
    theirs = " ".join(texts(await rey.send(MY_REPORTS)))
    assert "۱ گزارش" in mine and persian_digits(tehran_code) in mine
    assert "۱ گزارش" in theirs and persian_digits(rey_code) in theirs, "each lists theirs alone"


async def test_forget_me_on_bale_leaves_the_telegram_resident_of_that_number(both: Both) -> None:
    tehran, rey = both.user("tehran", SAME), both.user("rey", SAME)
    await report_in(tehran, "یوسف‌آباد")
    await report_in(rey, "دولت‌آباد")
    await rey.send("/forget_me")
    assert "۱ گزارش" in texts(await rey.press("بله، پاک شود"))[-1], "one report: theirs"
    people, cases = await both.rows()
    assert [p.id for p in people] == [SAME], "the Telegram resident is still there"
    assert [c.reporter_id for c in cases] == [SAME, None], "and still their report's reporter"
    assert "۱ گزارش" in " ".join(texts(await tehran.send(MY_REPORTS)))


async def test_each_messenger_is_called_with_its_own_numbers(both: Both) -> None:
    rey = both.user("rey", SAME)
    await report_in(rey, "دولت‌آباد")
    api = both.apis["rey"]
    addressed = {call.chat_id for call in api.calls if call.chat_id is not None}
    assert addressed and all(abs(chat) < APART for chat in addressed), "never a kept number"
    assert SAME in addressed, "the resident's answers went to their own chat"
    assert any(c.method == "sendMessage" for c in api.to_chat(rey_agency_chat(0))), (
        "the card reached Rey's municipality, the group the config names by Bale's number"
    )
    assert not both.apis["tehran"].to_chat(SAME), "Tehran's bot wrote to nobody"


async def test_no_bot_sends_to_the_other_messengers_numbers(both: Both) -> None:
    with pytest.raises(BadRequest, match="not found"):
        await both.apps["rey"].bot.send_message(COORDINATOR, "for Telegram's coordinator")
    with pytest.raises(BadRequest, match="not found"):
        await both.apps["tehran"].bot.send_message(moved_in(SAME), "for Bale's resident")
    sent = [c.text for api in both.apis.values() for c in api.calls if c.method == "sendMessage"]
    assert sent == [], "neither call was made"


async def test_a_bale_coordinator_blocks_the_bale_resident_of_the_number_typed(
    both: Both,
) -> None:
    await report_in(both.user("tehran", SAME), "یوسف‌آباد")
    await report_in(both.user("rey", SAME), "دولت‌آباد")
    coordinator = both.user("rey", REY_COORDINATOR)
    answer = texts(await coordinator.send(f"/block {SAME}"))
    shown = persian_digits(SAME)
    assert "مسدود شد" in answer[0] and shown in answer[0], "the number as they typed it"
    people, _ = await both.rows()
    banned = {p.id: p.banned for p in people if as_written(p.id) == SAME}
    assert banned == {SAME: False, SAME + APART: True}
    assert texts(await both.user("rey", SAME).send("/start")) == [], "the Bale one is ignored"
    assert texts(await both.user("tehran", SAME).send("/start")), "the Telegram one is not"


async def test_chatid_in_a_bale_group_shows_bales_number(both: Both) -> None:
    group = rey_agency_chat(3)
    answer = texts(await both.user("rey", 7007, chat_id=group).send("/chatid"))
    digits = "".join(ch for ch in answer[0] if ch.isdigit() or ch == "-")
    assert str(group) in digits and str(moved_in(group)) not in digits


def test_ids_move_in_at_the_edge_and_back_out_unchanged() -> None:
    update = {
        "update_id": 7,
        "message": {
            "message_id": 3,
            "chat": {"id": -100200, "type": "supergroup"},
            "from": {"id": 42, "is_bot": False},
            "contact": {"phone_number": "+98912", "user_id": 42},
            "new_chat_members": [{"id": 43, "is_bot": False}],
            "migrate_to_chat_id": -100201,
        },
    }
    moved = update_moved_in(update)
    message = moved["message"]
    assert (moved["update_id"], message["message_id"]) == (7, 3), "not an id of a chat"
    assert message["chat"]["id"] == -100200 - APART and message["from"]["id"] == 42 + APART
    assert message["contact"]["user_id"] == 42 + APART
    assert message["new_chat_members"][0]["id"] == 43 + APART
    assert message["migrate_to_chat_id"] == -100201 - APART
    assert update_moved_in(moved) == moved, "moving twice moves once"
    assert as_written(message["chat"]["id"]) == -100200 and as_written(-100200) == -100200
    me = answer_moved_in("getMe", {"ok": True, "result": {"id": 5, "is_bot": True}})
    assert me["result"]["id"] == 5 + APART


async def test_updates_posted_to_each_webhook_are_two_people(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiving_module, "RETRY_SECONDS", 0.1)
    secrets = {"tehran": "t" * 40, "rey": "r" * 40}
    settings = on_webhooks(on_both(database_url), secrets)
    async with (
        serving_both(settings) as (apis, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        telegram = await client.post(
            "/telegram/tehran", json=start_update(1, SAME),
            headers={serving.SECRET_HEADER: secrets["tehran"]},
        )  # fmt: skip
        bale = await client.post(f"/telegram/rey/{secrets['rey']}", json=start_update(1, SAME))
        assert (telegram.status_code, bale.status_code) == (200, 200)
        assert [c.method for c in apis["tehran"].to_chat(SAME)] == ["sendMessage"]
        assert [c.method for c in apis["rey"].to_chat(SAME)] == ["sendMessage"]
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        people = (await session.scalars(select(User.id).order_by(User.id))).all()
    await engine.dispose()
    assert people == [SAME, SAME + APART]


def _refusing(chat_id: int, why: str) -> Any:
    """A fake Bot API hook: every message into `chat_id` refused with a 403."""

    def hook(call: ApiCall) -> tuple[int, dict[str, Any]] | None:
        if call.chat_id == chat_id and call.method.startswith("send"):
            return 403, {"ok": False, "error_code": 403, "description": f"Forbidden: {why}"}
        return None

    return hook


async def test_agencies_shows_a_bale_groups_own_number(both: Both) -> None:
    answer = " ".join(texts(await both.user("rey", REY_COORDINATOR).send("/agencies")))
    assert str(abs(rey_agency_chat(0))) in answer
    assert str(abs(moved_in(rey_agency_chat(0)))) not in answer


async def test_a_bale_group_that_removed_the_bot_is_named_by_its_own_number(both: Both) -> None:
    group = rey_agency_chat(0)
    both.apis["rey"].fail = _refusing(group, "bot was kicked from the group chat")
    await report_in(both.user("rey", SAME), "دولت‌آباد")
    await deliver_outbox(both.apps["rey"])
    notices = [c.text for c in both.apis["rey"].to_chat(REY_CHAT) if "نمی‌تواند" in c.text]
    assert len(notices) == 1 and str(abs(group)) in notices[0]
    assert str(abs(moved_in(group))) not in notices[0]


async def test_a_bale_resident_out_of_reach_is_told_to_their_countys_coordinators(
    both: Both,
) -> None:
    await report_in(both.user("rey", SAME), "دولت‌آباد")
    both.apis["rey"].fail = _refusing(SAME, "bot was blocked by the user")
    runtime = runtime_of(both.apps["rey"])
    async with runtime.session_factory() as session:
        outbox.enqueue(
            session, chat_id=moved_in(SAME), purpose=outbox.REPORTER_NOTICE, payload={"text": "x"}
        )
        await session.commit()
    for app in both.apps.values():
        await deliver_outbox(app)
    told = [c.text for c in both.apis["rey"].to_chat(REY_CHAT) if "نمی‌تواند" in c.text]
    assert not [c for c in both.apis["tehran"].calls if "نمی‌تواند" in c.text], "not Tehran's"
    assert len(told) == 1 and str(SAME) in told[0] and str(moved_in(SAME)) not in told[0]


def test_a_mention_of_a_person_goes_out_in_their_messengers_number() -> None:
    mention = {"type": "text_mention", "offset": 0, "length": 3, "user": {"id": moved_in(42)}}
    sent = calls_moved_out({"chat_id": moved_in(7), "entities": [mention]}, apart=True)
    assert (sent["chat_id"], sent["entities"][0]["user"]["id"]) == (7, 42)
    with pytest.raises(ForeignIdError):  # the first bot's messenger: never another's person
        calls_moved_out({"chat_id": 7, "entities": [mention]}, apart=False)


async def test_people_stored_before_ids_were_kept_apart_stop_the_start(
    database_url: str,
) -> None:
    settings = on_both(database_url)
    await cli._upgrade(settings)
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        session.add(User(id=SAME, bot_key="rey"))  # written by a version that moved nothing
        await session.commit()
    await engine.dispose()
    with pytest.raises(ConfigError, match="1 people of bots rey were stored before"):
        await cli._upgrade(settings)


async def test_a_bale_coordinator_removes_a_bale_clerk_from_staff(both: Both) -> None:
    settings = runtime_of(both.apps["rey"]).settings
    agency = settings.county_named("rey").agencies[0].key
    await add_staff(settings, moved_in(2001), agency, "رضایی")
    coordinator = both.user("rey", REY_COORDINATOR)
    assert "۱ کارشناس" in texts(await coordinator.send("/staff"))[0]
    [button] = both.apis["rey"].delivered(coordinator.chat_id)[-1].buttons()
    data = str(button["callback_data"])
    assert data.split(":")[1] == "2001", "the button bears Bale's own number"
    await coordinator.press("رضایی")
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        assert (await session.scalars(select(Staff))).all() == []
    await engine.dispose()
