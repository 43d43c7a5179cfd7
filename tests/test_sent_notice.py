"""A reporter hears their case was sent to an agency once its card is in the agency's chat:
never of a card Telegram refused."""

from __future__ import annotations

from bot.config import Settings
from tests.conftest import Bot
from tests.test_agency import MUNICIPALITY
from tests.test_outbox import Clock, deliver, error, queued_report
from tests.test_report_flow import cases_in

SENT = "فرستاده شد"


async def test_a_reporter_is_not_told_sent_when_the_agency_never_got_the_card(
    bot: Bot, settings: Settings
) -> None:
    """The bot was removed from the municipality's group: the card is refused, the case waits
    for the coordinators, and the reporter hears only that it did not arrive."""
    bot.api.fail = lambda call: (
        error(403, "Forbidden: bot was kicked from the supergroup chat")
        if call.chat_id == MUNICIPALITY
        else None
    )
    resident = await queued_report(bot, 1001)
    await deliver(bot, Clock())
    assert [c.undeliverable for c in await cases_in(settings)] == [True]
    assert bot.api.delivered(MUNICIPALITY) == []
    heard = [m.text for m in bot.api.delivered(resident.chat_id)]
    assert [text for text in heard if SENT in text] == []
    assert sum("نرسید" in text for text in heard) == 1


async def test_a_reporter_is_told_sent_once_when_the_card_arrives(bot: Bot) -> None:
    """Delivered, the card brings the reporter's notice, once, naming the agency; before the
    card went, the reporter had heard nothing of it."""
    resident = await queued_report(bot, 1001)
    assert [m for m in bot.api.delivered(resident.chat_id) if SENT in m.text] == []
    clock = Clock()
    await deliver(bot, clock)
    clock.advance(5)
    await deliver(bot, clock)
    assert len([m for m in bot.api.delivered(MUNICIPALITY) if "گزارش" in m.text]) == 1
    told = [m.text for m in bot.api.delivered(resident.chat_id) if SENT in m.text]
    assert len(told) == 1 and "شهرداری" in told[0]
