"""Where a case goes: to an agency's chat, or to the coordinators' triage queue."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, CaseView
from bot.config import Settings
from bot.fit import fit
from bot.rules import Act, allowed_from
from bot.services import outbox, participation
from bot.services.duplicates import find_duplicate
from bot.services.reference import agency_for, county_of_neighbourhood
from bot.services.reference import domain_title as domain_title_of
from bot.services.taskview import card_lines, second_agency_to_ask
from bot.services.transitions import last_event, transition
from bot.triage import OTHER, TriageResult
from models.entities import (
    Agency,
    Case,
    CaseStatus,
    Domain,
    LocalGroup,
    OutboxMessage,
    OutboxStatus,
    TriageCorrection,
    User,
)

log = logging.getLogger(__name__)


async def case_view(
    session: AsyncSession, case_id: int, *, duplicate_of: str | None = None, placed: bool = False
) -> CaseView:
    """Everything a card shows about a case, as it is now. `placed`: the case has just left
    "submitted", in this transaction: no one can have joined it, offered help with it or been
    asked to work on it yet (each needs a case at an agency or with a coordinator), so those
    are not read."""
    # A case just placed is as this session holds it: the placing's update set what it wrote
    # (bot.services.transitions); any other is read afresh.
    case = await session.get(Case, case_id, populate_existing=not placed)
    assert case is not None
    domain_title = await domain_title_of(session, case.domain_key)
    second = case.second_domain_key
    also = await domain_title_of(session, second) if second and second != case.domain_key else None
    agency = await session.get(Agency, case.agency_key) if case.agency_key else None
    # The last act of someone the agency can ask about it: a reporter's answer names no one.
    latest = await last_event(session, case_id, named=True)
    group = await session.get(LocalGroup, case.group_id) if case.group_id else None
    return CaseView(
        case_id=case.id, code=case.code, status=case.status, domain_key=case.domain_key,
        domain_title=domain_title or "", agency_name=agency.name if agency else "",
        neighbourhood=case.neighbourhood.name, district=case.neighbourhood.district.name,
        created_at=case.created_at, text=case.text_original,
        phone=case.reporter_phone if case.share_phone else None, duplicate_of=duplicate_of,
        last_actor=latest.actor_name if latest and latest.actor_name else None,
        last_change=latest.created_at if latest else None, confidence=case.triage_confidence,
        group_name=group.name if group else None, reporter_known=case.reporter_id is not None,
        latitude=case.latitude, longitude=case.longitude,
        joined=0 if placed else await participation.joined_count(session, case_id),
        offers=() if placed else tuple(await participation.accepted_offers(session, case_id)),
        tasks=() if placed else await card_lines(session, case.id),
        second_domain_title=also,
        second_agency=await second_agency_to_ask(session, case) if also else None,
        reporter_chose_domain=case.reporter_chose_domain,
    )  # fmt: skip


async def domain_choices(
    session: AsyncSession, *, leave_out: str | None = None
) -> list[tuple[str, str]]:
    """(key, title) of every domain in config order, optionally without one."""
    domains = (await session.scalars(select(Domain))).all()
    order = {key: i for i, key in enumerate(_DOMAIN_ORDER)}
    return [
        (d.key, d.title)
        for d in sorted(domains, key=lambda d: order.get(d.key, 99))
        if d.key != leave_out
    ]


_DOMAIN_ORDER = (
    "municipal", "utilities", "security", "social", "family", "cultural",
    "health", "welfare", "education", "participation", "other",
)  # fmt: skip


def notify_reporter(
    session: AsyncSession,
    case: Case,
    reporter: User | None,
    text: str,
    *,
    markup: dict[str, object] | None = None,
    key: str | None = None,
) -> None:
    """Queue a message to the case's reporter (from `reporter_of`), unless they left or
    blocked the bot."""
    if reporter is None or reporter.blocked_bot:
        return
    payload: dict[str, object] = {"text": text}
    if markup:
        payload["reply_markup"] = markup
    outbox.enqueue(
        session,
        chat_id=reporter.id,
        purpose=outbox.REPORTER_NOTICE,
        payload=payload,
        case_id=case.id,
        dedupe_key=key,
    )


async def reporter_of(session: AsyncSession, case: Case) -> User | None:
    """The case's reporter, for a notice: their language, and whether they can be reached
    (read once and passed on: the session keeps only rows someone holds, so a second read
    would query again; placing a new case holds it from its first read)."""
    return await session.get(User, case.reporter_id) if case.reporter_id else None


async def route_new_case(
    session: AsyncSession,
    *,
    case: Case,
    result: TriageResult,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> str:
    """Send a just-submitted case to its agency, or to triage; returns the new status."""
    reason = "triage-reason-other" if result.domain == OTHER else "triage-reason-unsure"
    agency = None
    if result.domain != OTHER and result.confidence >= settings.triage.threshold:
        agency = await agency_for(
            session, county_key=await county_of(session, case), domain_key=result.domain
        )
    # Written with the case's status, by the one update of the transition.
    confidence: dict[str, Any] = {"triage_confidence": result.confidence}
    if agency is not None and agency.chat_id is not None:
        await forward(
            session, case=case, domain_key=result.domain, allowed_from={CaseStatus.SUBMITTED},
            actor_id=None, actor_name=None, cards=cards, now=now, agency=agency, also=confidence,
        )  # fmt: skip
        return CaseStatus.FORWARDED
    if agency is not None:
        reason = "triage-reason-no-chat"
    await send_to_triage(
        session,
        case=case,
        guessed=result.domain,
        reason_key=reason,
        settings=settings,
        cards=cards,
        now=now,
        also=confidence,
    )
    return CaseStatus.TRIAGE


async def send_to_triage(
    session: AsyncSession,
    *,
    case: Case,
    guessed: str,
    reason_key: str,
    settings: Settings,
    cards: Cards,
    now: datetime,
    also: dict[str, Any] | None = None,
) -> None:
    """Put the case in the coordinators' queue with a card that lets them pick the domain.
    `also`: more of the case's columns to write with its status."""
    await transition(
        session, case_id=case.id, allowed_from={CaseStatus.SUBMITTED}, to=CaseStatus.TRIAGE,
        actor_id=None, actor_name=None, now=now, domain_key=guessed, **(also or {}),
    )  # fmt: skip
    view = await case_view(session, case.id)
    card = cards.triage(view, await domain_choices(session), reason_key)
    chats = settings.county_named(await county_of(session, case)).coordinator_chats()
    for chat_id in chats:
        outbox.enqueue(
            session, chat_id=chat_id, purpose=outbox.TRIAGE_CARD, payload=card, case_id=case.id
        )
    if not chats:
        log.warning(
            "case %s waits in triage but no coordinator chat or coordinator is configured",
            case.code,
        )


async def county_of(session: AsyncSession, case: Case) -> str:
    """The key of the county the case's neighbourhood lies in."""
    return await county_of_neighbourhood(session, case.neighbourhood_id)


async def forward(
    session: AsyncSession,
    *,
    case: Case,
    domain_key: str,
    allowed_from: Collection[str],
    actor_id: int | None,
    actor_name: str | None,
    cards: Cards,
    now: datetime,
    note: str | None = None,
    agency: Agency | None = None,
    by_reporter: bool = False,
    also: dict[str, Any] | None = None,
) -> None:
    """Hand the case to the agency of `domain_key` (looked up in the case's county unless the
    caller already did): status, card with attachments (its reporter is told once the card is
    delivered). `by_reporter`: the
    reporter chose the domain (the card says so); `also`: more of the case's columns to write
    with its status."""
    if agency is None:
        county_key = await county_of(session, case)
        agency = await agency_for(session, county_key=county_key, domain_key=domain_key)
    assert agency is not None, "config validation gives every county an agency per domain"
    # Compared before anything is written (it reads other cases only): on SQLite, writing takes
    # the one write lock, which every other update's write would wait on through the comparing.
    duplicate = None
    if agency.chat_id is not None:
        with session.no_autoflush:
            duplicate = await find_duplicate(session, case=case, domain_key=domain_key, now=now)
    left = await transition(
        session, case_id=case.id, allowed_from=allowed_from, to=CaseStatus.FORWARDED,
        actor_id=actor_id, actor_name=actor_name, note=note, now=now,
        domain_key=domain_key, agency_key=agency.key, card_chat_id=None, card_message_id=None,
        undeliverable=False, reporter_chose_domain=by_reporter, **(also or {}),
    )  # fmt: skip
    placed = left == CaseStatus.SUBMITTED
    if agency.chat_id is None:
        log.warning("agency %s has no chat; case %s waits for a reroute", agency.key, case.code)
        case.undeliverable = True
        return
    if case.photo_file_ids:
        outbox.enqueue(
            session, chat_id=agency.chat_id, purpose=outbox.AGENCY_ATTACHMENT,
            method="sendMediaGroup", payload={"photos": list(case.photo_file_ids)}, case_id=case.id,
        )  # fmt: skip
    for voice in case.voice_file_ids:
        outbox.enqueue(
            session, chat_id=agency.chat_id, purpose=outbox.AGENCY_ATTACHMENT,
            method="sendVoice", payload={"voice": voice}, case_id=case.id,
        )  # fmt: skip
    if case.latitude is not None and case.longitude is not None:
        outbox.enqueue(
            session, chat_id=agency.chat_id, purpose=outbox.AGENCY_ATTACHMENT,
            method="sendLocation", case_id=case.id,
            payload={"latitude": case.latitude, "longitude": case.longitude},
        )  # fmt: skip
    view = await case_view(session, case.id, duplicate_of=duplicate, placed=placed)
    outbox.enqueue(
        session,
        chat_id=agency.chat_id,
        purpose=outbox.AGENCY_CARD,
        payload=cards.agency(view),
        case_id=case.id,
    )
    # Its reporter (and whoever joined it) hears it was sent once the card is delivered
    # (bot/services/refusals.py, handle_delivery).


def _keep_correction(
    session: AsyncSession, case: Case, domain_key: str, actor_id: int, source: str
) -> None:
    session.add(
        TriageCorrection(
            case_id=case.id,
            text=case.text_original,
            domain_key=domain_key,
            source=source,
            from_domain_key=case.domain_key,
            actor_id=actor_id,
        )
    )


async def reroute(
    session: AsyncSession,
    *,
    case: Case,
    domain_key: str,
    actor_id: int,
    actor_name: str,
    cards: Cards,
    now: datetime,
) -> None:
    """Staff send a case to another domain's agency; the choice is kept as a labelled example."""
    await transition(
        session, case_id=case.id, allowed_from=allowed_from(Act.REROUTE), to=CaseStatus.REROUTED,
        actor_id=actor_id, actor_name=actor_name, now=now, note=domain_key,
    )  # fmt: skip
    _keep_correction(session, case, domain_key, actor_id, "reroute")
    await forward(
        session, case=case, domain_key=domain_key, allowed_from={CaseStatus.REROUTED},
        actor_id=actor_id, actor_name=actor_name, cards=cards, now=now,
    )  # fmt: skip


async def close_triage_copies(
    session: AsyncSession, *, case_id: int, line: str, pressed: tuple[int, int] | None
) -> None:
    """The case was placed from one copy of its triage card (`pressed`: that message's chat
    and id): every other copy sent (the coordinators' group's, a coordinator's own from
    /cases or a refusal) is edited to say so, its domain buttons gone, so no colleague takes
    it for undone. Edits go as coordinators' notices: one that fails changes nothing else."""
    sent = await session.execute(
        select(OutboxMessage.chat_id, OutboxMessage.sent_message_id, OutboxMessage.payload).where(
            OutboxMessage.case_id == case_id,
            OutboxMessage.purpose == outbox.TRIAGE_CARD,
            OutboxMessage.method == "sendMessage",
            OutboxMessage.status == OutboxStatus.SENT,
            OutboxMessage.sent_message_id.is_not(None),
        )
    )
    for chat_id, message_id, payload in sent.all():
        if (chat_id, message_id) == pressed:
            continue
        before = str(payload.get("text") or "")  # emptied after the retention period
        text = fit(lambda old: f"{old}\n\n{line}", before) if before else line
        outbox.enqueue(
            session, chat_id=chat_id, purpose=outbox.COORDINATOR_NOTICE, method="editMessageText",
            payload={"message_id": message_id, "text": text}, case_id=case_id,
        )  # fmt: skip


async def offer_reroute(
    session: AsyncSession,
    *,
    case_id: int,
    settings: Settings,
    cards: Cards,
    reason_key: str = "triage-reason-undeliverable",
) -> None:
    """The agency's chat cannot be reached, or Telegram refused the case's card there: put the
    case before the coordinators to reroute, saying why (`reason_key`)."""
    view = await case_view(session, case_id)
    card = cards.triage(view, await domain_choices(session), reason_key)
    case = await session.get(Case, case_id)
    assert case is not None
    for chat_id in settings.county_named(await county_of(session, case)).coordinator_chats():
        outbox.enqueue(
            session, chat_id=chat_id, purpose=outbox.TRIAGE_CARD, payload=card, case_id=case_id,
            dedupe_key=f"undeliverable:{case_id}:{view.agency_name}:{chat_id}",
        )  # fmt: skip


async def assign_from_triage(
    session: AsyncSession,
    *,
    case: Case,
    domain_key: str,
    actor_id: int,
    actor_name: str,
    cards: Cards,
    now: datetime,
) -> None:
    """A coordinator picks the domain of a queued case; the choice is kept as a labelled example."""
    _keep_correction(session, case, domain_key, actor_id, "coordinator")
    # A case whose agency chat is unreachable, or refused its card or a relay, may be placed
    # again too, wherever it stood at that agency.
    allowed = allowed_from(Act.PLACE)
    if case.undeliverable:
        allowed |= allowed_from(Act.REROUTE)
    await forward(
        session, case=case, domain_key=domain_key, allowed_from=allowed,
        actor_id=actor_id, actor_name=actor_name, cards=cards, now=now,
    )  # fmt: skip
