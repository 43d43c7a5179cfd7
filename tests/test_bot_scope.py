"""With several bots, a coordinator works through the bot that serves their county: another
county's bot tells them which bot is theirs and does nothing else (an invite it made would
bring their agency's staff to the wrong bot)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from bot.context import runtime_of
from models.entities import Campaign, Invite, User
from tests.fakebot import ChatUser, texts
from tests.test_bots import TwoBots, bots
from tests.test_counties import REY_COORDINATOR

__all__ = ["bots"]

OTHER_BOT = "کارهای دبیرخانهٔ شهرستان شما با ربات"


async def test_a_coordinator_is_sent_to_their_countys_bot(bots: TwoBots) -> None:
    at_tehran = bots.user("tehran", REY_COORDINATOR)
    for command in ("/stats", "/invite rey-municipality", "/broadcast"):
        [answer] = texts(await at_tehran.send(command))
        assert OTHER_BOT in answer and "@mahalle_rey_bot" in answer, command
    async with runtime_of(bots.apps["tehran"]).session_factory() as session:
        invites = await session.scalar(select(func.count()).select_from(Invite))
        drafts = await session.scalar(select(func.count()).select_from(Campaign))
    assert (invites, drafts) == (0, 0), "nothing was begun"
    at_rey = bots.user("rey", REY_COORDINATOR)
    assert not any(OTHER_BOT in text for text in texts(await at_rey.send("/stats")))


async def _bot_of(bots: TwoBots, user_id: int) -> str | None:
    async with runtime_of(bots.apps["tehran"]).session_factory() as session:
        return await session.scalar(select(User.bot_key).where(User.id == user_id))


async def test_a_person_moving_between_bots_is_noted_once_each_move(bots: TwoBots) -> None:
    """Which bot is a person's is written when it changes, not on every update."""
    statements: list[str] = []

    def executed(_c: object, _cur: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = runtime_of(bots.apps["tehran"]).engine.sync_engine
    event.listen(engine, "before_cursor_execute", executed)
    noted = []
    for bot in ("tehran", "tehran", "tehran", "rey", "rey", "tehran"):
        statements.clear()
        assert texts(await bots.user(bot, 3003).send("/help"))
        noted.append(sum("INSERT INTO users" in s for s in statements))
        assert await _bot_of(bots, 3003) == bot
    event.remove(engine, "before_cursor_execute", executed)
    assert noted == [1, 0, 0, 1, 0, 1]


async def test_a_move_made_in_another_process_is_heard(database_url: str) -> None:
    """Two processes each serving both bots: a person who wrote to Tehran's bot in one, then
    to Rey's in the other, then to Tehran's again in the first, is Tehran's again."""
    from tests.fakebot import FakeBotAPI, start_bots, stop_bot, wait_for
    from tests.test_bots import TOKENS, two_bots

    if not database_url.startswith("postgresql"):
        pytest.skip("one process on SQLite")
    settings = two_bots(database_url)
    apis_one = {key: FakeBotAPI() for key in TOKENS}
    apis_other = {key: FakeBotAPI() for key in TOKENS}
    first = await start_bots(settings, apis_one, TOKENS)
    second = await start_bots(settings, apis_other, TOKENS)
    one = TwoBots(first, apis_one)
    await ChatUser(first[0], apis_one["tehran"], 3003).send("/help")
    tehran_here = runtime_of(first[0])
    assert 3003 in tehran_here.writers
    await ChatUser(second[1], apis_other["rey"], 3003).send("/help")
    await wait_for(lambda: 3003 not in tehran_here.writers, what="the move to be heard")
    await ChatUser(first[0], apis_one["tehran"], 3003).send("/help")
    assert await _bot_of(one, 3003) == "tehran"
    for app in [*reversed(first), *reversed(second)]:
        await stop_bot(app)
