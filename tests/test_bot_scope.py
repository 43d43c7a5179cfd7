"""With several bots, a coordinator works through the bot that serves their county: another
county's bot tells them which bot is theirs and does nothing else (an invite it made would
bring their agency's staff to the wrong bot)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.context import runtime_of
from models.entities import Campaign, Invite
from tests.fakebot import texts
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
