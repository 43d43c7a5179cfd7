"""Fixtures: a migrated database (SQLite always, PostgreSQL when configured) and a running bot."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.services.reference import sync_reference_data
from models.db import create_engine, create_session_factory, upgrade_database
from tests.fakebot import (
    BALE,
    LIVE_APIS,
    TELEGRAM,
    AnyApplication,
    ChatUser,
    FakeBotAPI,
    bot_side,
    dialect,
    leading,
    speak,
    start_bot,
    stop_bot,
)

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config.example.toml"
PG_ENV = "MAHALLE_TEST_DATABASE_URL"


async def fresh_database(url: str) -> str:
    """Empty the database at `url` (PostgreSQL: its public schema) and apply the migrations."""
    if url.startswith("postgresql"):
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    engine = create_engine(url)
    await upgrade_database(engine)
    await engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database; PostgreSQL runs only when MAHALLE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return await fresh_database(f"sqlite+aiosqlite:///{tmp_path / 'mahalle.db'}")
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(
            f"PostgreSQL not configured: set {PG_ENV}, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    return await fresh_database(url)


COORDINATOR = 9001
COORDINATOR_CHAT = -100900


def agency_chat(index: int) -> int:
    """The test chat id of the index-th agency in the example config."""
    return -100100 - index


# The platform settings a deployment on each messenger has (bot/config.py's defaults for it).
PLATFORMS: dict[str, dict[str, Any]] = {
    "telegram": {},
    "bale": {
        "platform": "bale",
        "base_url": "https://tapi.bale.ai/bot",
        "base_file_url": "https://tapi.bale.ai/file/bot",
        "deep_link_base": "https://ble.ir/",
    },
}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """The example config on the given database, every agency with a group chat, one
    coordinator and their group, the outbox worker off (tests deliver explicitly) and no limit
    on a person's messages a minute; on the messenger the running test speaks (Bale's group
    ids are positive: the bot knows the tests' groups by their Bale ids)."""
    settings = load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_DATABASE_URL": database_url})
    county = settings.counties[0]
    agencies = [
        agency.model_copy(update={"chat_id": bot_side(agency_chat(i))})
        for i, agency in enumerate(county.agencies)
    ]
    county = county.model_copy(
        update={
            "coordinators": [COORDINATOR],
            "coordinator_chat_id": bot_side(COORDINATOR_CHAT),
            "agencies": agencies,
        }
    )
    outbox = settings.outbox.model_copy(update={"worker": False})
    # A test's or benchmark's resident answers far faster than a person: the limit on a
    # person's messages a minute is lifted (tests/test_floods.py sets it as deployed).
    bot = settings.bot.model_copy(update={"updates_per_minute": 10_000})
    # Never pick up a model file a developer's `mahalle triage retrain` left in the work tree.
    model_path = Path(tempfile.mkdtemp()) / "model.pkl"
    triage = settings.triage.model_copy(update={"model_path": model_path})
    settings = settings.model_copy(
        update={
            "counties": [county],
            "outbox": outbox,
            "triage": triage,
            "bot": bot,
            "telegram": settings.telegram.model_copy(update=PLATFORMS[dialect().name]),
        }
    )
    updates = {
        name: getattr(settings, name).model_copy(update=values)
        for name, values in overrides.items()
    }
    return settings.model_copy(update=updates)


DIALECTS = {"telegram": TELEGRAM, "bale": BALE}


@pytest.fixture(autouse=True)
def messenger(request: pytest.FixtureRequest) -> Iterator[str]:
    """The messenger the test's fakes speak: Telegram, or Bale for the chat-level tests'
    second run (`pytest_generate_tests`)."""
    name = getattr(request, "param", "telegram")
    speak(DIALECTS[name])
    yield name
    speak(TELEGRAM)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every chat-level test (one that talks to a running bot) runs on Telegram and on Bale."""
    names = set(metafunc.fixturenames)
    chat_level = bool(names & {"bot", "resident"}) or (
        hasattr(metafunc.module, "start_bot") and bool(names & {"database_url", "settings"})
    )
    if chat_level and metafunc.definition.get_closest_marker("one_messenger") is None:
        metafunc.parametrize("messenger", ["telegram", "bale"], indirect=True)


@pytest.fixture
def settings(database_url: str, messenger: str) -> Settings:
    """The test config, without the flood limiter (tests send little)."""
    return make_settings(database_url, telegram={"rate_limit": False})


@pytest.fixture
async def session_factory(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database, with the reference data loaded."""
    engine = create_engine(settings.database.url)
    factory = create_session_factory(engine)
    async with factory() as session:
        await sync_reference_data(session=session, settings=settings)
    yield factory
    await engine.dispose()


class Bot:
    """The running application, its fake Bot API and a way to open chats with it."""

    def __init__(self, app: AnyApplication, api: FakeBotAPI) -> None:
        self.app, self.api = app, api

    @property
    def jobs(self) -> AnyApplication:
        """The application that runs the deployment's scheduled jobs: this one, or with
        MAHALLE_TEST_BOTS=2 the first bot's (tests that run a job run it there)."""
        return leading(self.app)

    @property
    def jobs_runtime(self) -> Runtime:
        """The runtime the scheduled jobs are given (that of `jobs`)."""
        runtime: Runtime = self.jobs.bot_data["runtime"]
        return runtime

    def user(self, user_id: int = 1001) -> ChatUser:
        """A resident in a private chat."""
        return ChatUser(self.app, self.api, user_id)

    def in_group(self, user_id: int, chat_id: int, name: str) -> ChatUser:
        """Someone writing in a group: agency staff in their agency's chat, or a coordinator."""
        return ChatUser(self.app, self.api, user_id, chat_id=chat_id, name=name)


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    """The real application, started on the fake transport."""
    app, api = await start_bot(settings)
    yield Bot(app, api)
    await stop_bot(app)


@pytest.fixture
def resident(bot: Bot) -> ChatUser:
    """A resident talking to the bot."""
    return bot.user(1001)


@pytest.fixture(autouse=True)
def telegram_accepts_every_call(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every call the bot makes in a test is one Telegram accepts (tests/fakebot.py refuses
    what Telegram refuses), unless the test is marked `telegram_refuses`. One refusal is the
    bot's idiom, not a fault: an edit that changes nothing (a card refreshed after a step that
    shows no different), which Telegram answers "not modified" and the bot takes as done."""
    LIVE_APIS.clear()
    yield
    refused = [
        (call.method, call.chat_id, why)
        for api in LIVE_APIS
        for call, why in api.unmeant_refusals()
    ]
    LIVE_APIS.clear()
    if request.node.get_closest_marker("telegram_refuses") is None:
        assert not refused, f"Telegram would refuse: {refused}"


def pytest_configure(config: pytest.Config) -> None:
    """The suite's own markers."""
    config.addinivalue_line(
        "markers", "telegram_refuses: the test means some call to be refused by Telegram"
    )
    config.addinivalue_line(
        "markers", "one_messenger: a chat-level test that chooses its messenger itself"
    )
