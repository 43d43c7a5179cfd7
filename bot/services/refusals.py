"""What follows when an agency's card is delivered, and when Telegram refuses, for good, a
message about a case: never silence, and nothing said before it is true.

A reporter hears that their case was sent to an agency once its card is in the agency's chat
(`handle_delivery`), not when it was queued.

A card an agency never got leaves a resident waiting on nobody. When Telegram refuses a message
to an agency's chat for good (a 400 other than "not modified", a 403, a chat that is gone), the
case is flagged (`Case.undeliverable`, named by `mahalle status` until it is placed again or
moves on), and put before the case's coordinators at once on a triage card that says why in
plain words, with the domain buttons to send it elsewhere (or to the same agency once its chat is
fixed). If the refused message was the card itself, the resident hears that it did not arrive
and that the secretariat will place it; the notice of the agency it goes to next follows once
that card arrives.

When the coordinators' own group refuses a triage card, the card goes to each coordinator's
private chat instead; a refusal there stops (no message about a refused message about a refused
message), and the flag stays for `mahalle status`.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards
from bot.config import Settings
from bot.services import casework, outbox
from bot.services.routing import county_of, offer_reroute
from models.entities import Agency, Case, CaseStatus, OutboxMessage

log = logging.getLogger(__name__)

# Messages into an agency's chat about a case.
AGENCY_PURPOSES = (outbox.AGENCY_CARD, outbox.AGENCY_ATTACHMENT, outbox.AGENCY_RELAY)
# Telegram's descriptions that say the chat itself is out of reach.
_UNREACHABLE = (
    "chat not found",
    "bot was kicked",
    "bot was blocked",
    "not enough rights",
    "have no rights",
    "user is deactivated",
    "forbidden",
)
_TOO_LONG = ("too long", "too_long")


def reason_key(error: str) -> str:
    """The triage card's line saying, in plain words, why the message was refused."""
    text = error.lower()
    if any(phrase in text for phrase in _UNREACHABLE):
        return "triage-reason-undeliverable"
    if any(phrase in text for phrase in _TOO_LONG):
        return "triage-reason-too-long"
    return "triage-reason-refused"


# A case that is with its agency: the statuses its card may arrive in for the reporter to hear.
_AT_THE_AGENCY = frozenset(
    {CaseStatus.FORWARDED, CaseStatus.ACCEPTED, CaseStatus.NEEDS_INFO, CaseStatus.REOPENED}
)


async def handle_delivery(session: AsyncSession, *, row: OutboxMessage, cards: Cards) -> None:
    """An agency's card arrived in its group: only now is its reporter (and whoever joined the
    case) told the case was sent there. Told when the card was queued, a reporter whose card
    Telegram then refused would have heard "sent" of a card no one received. A card for an
    agency the case has left since it was queued tells no one (the new agency's card will)."""
    if row.purpose != outbox.AGENCY_CARD or row.method != "sendMessage" or row.case_id is None:
        return
    case = await session.get(Case, row.case_id)
    if case is None or case.agency_key is None or case.status not in _AT_THE_AGENCY:
        return  # rejected or closed meanwhile (from a card sent again): it was not "sent"
    agency = await session.get(Agency, case.agency_key)
    if agency is None or agency.chat_id != row.chat_id:
        return
    await casework.tell_reporter(
        session, case, cards, "notice-forwarded", once_as=f"forwarded:{row.id}"
    )


async def handle_refusal(
    session: AsyncSession, *, row: OutboxMessage, error: str, settings: Settings, cards: Cards
) -> None:
    """Telegram refused `row` for good (it is already marked dead): tell whom it concerns."""
    if row.case_id is None:
        return
    case = await session.get(Case, row.case_id)
    if case is None:
        return
    if row.purpose in AGENCY_PURPOSES:
        await _flag(session, case)
        await offer_reroute(
            session, case_id=case.id, settings=settings, cards=cards, reason_key=reason_key(error)
        )
        if row.purpose == outbox.AGENCY_CARD and row.method == "sendMessage":
            await _tell_reporter(session, case, row, cards)
    elif row.purpose == outbox.TRIAGE_CARD:
        await _flag(session, case)
        county = settings.county_named(await county_of(session, case))
        if row.chat_id in county.coordinators:  # a private chat refused too: nowhere left
            log.error("case %s: no coordinator chat takes its triage card", case.code)
            return
        for coordinator in county.coordinators:
            outbox.enqueue(
                session, chat_id=coordinator, purpose=outbox.TRIAGE_CARD, payload=row.payload,
                case_id=case.id, dedupe_key=f"refused:{row.id}:{coordinator}",
            )  # fmt: skip


async def _flag(session: AsyncSession, case: Case) -> None:
    """The case waits for a coordinator: `mahalle status` names it until it is placed again."""
    await session.execute(
        update(Case)
        .where(Case.id == case.id)
        .values(undeliverable=True)
        .execution_options(synchronize_session=False)
    )


async def _tell_reporter(
    session: AsyncSession, case: Case, row: OutboxMessage, cards: Cards
) -> None:
    """The reporter was told the case was sent to the agency: it did not arrive."""
    await casework.tell_reporter(
        session, case, cards, "notice-card-refused", once_as=f"card-refused:{row.id}"
    )
