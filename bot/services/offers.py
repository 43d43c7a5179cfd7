"""Local groups offer help with open cases in their neighbourhood; the agency accepts or declines.

A group's founder picks an open case of the group's neighbourhood and a kind of help; the agency
holding the case gets the offer with two buttons, and one press decides it (compare-and-set on
the offer, with an audit row). The group hears the answer, never who pressed; an accepted offer
shows on the case's card.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import OFFER_KIND_KEYS, Cards, code_for_display
from bot.config import Settings
from bot.digits import isolate
from bot.rules import Act, Role, Verdict, allowed_from, judge
from bot.services import casework, outbox
from models.db import dialect_insert
from models.entities import (
    Agency,
    Case,
    Domain,
    GroupStatus,
    HelpOffer,
    HelpOfferEvent,
    LocalGroup,
    OfferStatus,
    User,
)

# The kinds of help a group may offer (bot/cards.py names them).
KIND_KEYS = OFFER_KIND_KEYS
KINDS = tuple(KIND_KEYS)
# Open cases listed for a group at once, newest first.
LISTED = 8
OFFER_PREFIX, DECISION_PREFIX = "ho", "hd"


class OfferOutcome(enum.StrEnum):
    """What came of a group's offer; the values are locale keys."""

    SENT = "offer-sent"
    NOT_YOURS = "offer-refused-group"
    NOT_NOW = "offer-refused-closed"
    TWICE = "offer-refused-twice"


class DecisionOutcome(enum.StrEnum):
    """What came of an agency's press on an offer; the values are locale keys."""

    DONE = "done"
    NOT_YOURS = "not-your-agency"
    NOT_NOW = "offer-decide-closed"
    ALREADY = "offer-already-decided"


@dataclass(frozen=True)
class Decision:
    """The outcome of a press, and for one already decided, by whom (their name, if known)."""

    outcome: DecisionOutcome
    offer: HelpOffer | None = None
    by: str | None = None


async def founded_groups(session: AsyncSession, *, user_id: int) -> list[LocalGroup]:
    """The approved groups this person founded, that have a neighbourhood."""
    query = select(LocalGroup).where(
        LocalGroup.created_by == user_id,
        LocalGroup.status == GroupStatus.APPROVED,
        LocalGroup.neighbourhood_id.is_not(None),
    )
    return list((await session.scalars(query.order_by(LocalGroup.name))).all())


async def open_cases(session: AsyncSession, *, group: LocalGroup) -> list[tuple[Case, str]]:
    """The newest cases of the group's neighbourhood a group may offer help with, with their
    domain's title."""
    query = (
        select(Case, Domain.title)
        .outerjoin(Domain, Domain.key == Case.domain_key)
        .where(
            Case.neighbourhood_id == group.neighbourhood_id,
            Case.status.in_(allowed_from(Act.OFFER_HELP)),
            Case.undeliverable.is_(False),
        )
        .order_by(Case.id.desc())
        .limit(LISTED)
    )
    return [(case, title or "") for case, title in await session.execute(query)]


def group_roles(group: LocalGroup | None, *, user_id: int, case: Case) -> frozenset[Role]:
    """LOCAL_GROUP when this person founded the group, it is approved and of the case's
    neighbourhood; nothing otherwise."""
    if (
        group is not None
        and group.created_by == user_id
        and group.status == GroupStatus.APPROVED
        and group.neighbourhood_id == case.neighbourhood_id
    ):
        return frozenset({Role.LOCAL_GROUP})
    return frozenset()


def _audit(
    session: AsyncSession, offer_id: int, before: str | None, after: str, actor: int | None,
    name: str | None, now: datetime,
) -> None:  # fmt: skip
    session.add(
        HelpOfferEvent(
            offer_id=offer_id, from_status=before, to_status=after, actor_id=actor,
            actor_name=name, created_at=now,
        )
    )  # fmt: skip


async def make_offer(
    session: AsyncSession,
    *,
    group_id: int,
    case_id: int,
    kind: str,
    user_id: int,
    cards: Cards,
    now: datetime,
) -> OfferOutcome:
    """Record the group's offer, once per group and case, and put it before the agency."""
    group = await session.get(LocalGroup, group_id)
    case = await session.get(Case, case_id)
    if case is None or kind not in KINDS:
        return OfferOutcome.NOT_YOURS
    found = judge(Act.OFFER_HELP, group_roles(group, user_id=user_id, case=case), case.status)
    agency = await session.get(Agency, case.agency_key) if case.agency_key else None
    if found is Verdict.NOT_YOURS or group is None:
        return OfferOutcome.NOT_YOURS
    if found is Verdict.NOT_NOW or agency is None or agency.chat_id is None:
        return OfferOutcome.NOT_NOW
    row = select(
        literal(case.id), literal(group.id), literal(kind), literal(user_id, BigInteger),
        literal(OfferStatus.PENDING.value), literal(now, DateTime(timezone=True)),
    )  # fmt: skip
    insert = dialect_insert(session, HelpOffer).from_select(
        ["case_id", "group_id", "kind", "offered_by", "status", "created_at"], row
    )
    added = await session.execute(insert.on_conflict_do_nothing().returning(HelpOffer.id))
    offer_id = added.scalar_one_or_none()
    if offer_id is None:
        return OfferOutcome.TWICE
    _audit(session, offer_id, None, OfferStatus.PENDING, user_id, None, now)
    outbox.enqueue(
        session, chat_id=agency.chat_id, purpose=outbox.AGENCY_RELAY, case_id=case.id,
        payload=offer_message(cards, case=case, group=group, kind=kind, offer_id=offer_id),
    )  # fmt: skip
    return OfferOutcome.SENT


def offer_message(
    cards: Cards, *, case: Case, group: LocalGroup, kind: str, offer_id: int
) -> dict[str, Any]:
    """The agency's message about an offer, under the case's card when it has one."""
    text = cards.t(
        "offer-to-agency",
        code=code_for_display(case.code, cards.language),
        group=isolate(group.name),
        field=isolate(group.field),
        kind=cards.t(KIND_KEYS[kind]),
    )
    buttons = [
        {"text": cards.t("button-offer-accept"), "callback_data": _sign(cards, "a", offer_id)},
        {"text": cards.t("button-offer-decline"), "callback_data": _sign(cards, "d", offer_id)},
    ]
    payload: dict[str, Any] = {"text": text, "reply_markup": {"inline_keyboard": [buttons]}}
    if case.card_message_id is not None:
        payload["reply_to_message_id"] = case.card_message_id
    return payload


def _sign(cards: Cards, verdict: str, offer_id: int) -> str:
    return cards.signer.sign(DECISION_PREFIX, verdict, offer_id)


async def decide(
    session: AsyncSession,
    *,
    offer_id: int,
    accept: bool,
    actor_id: int,
    actor_name: str,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> Decision:
    """The agency holding the case accepts or declines the offer: one press wins (a conditional
    update on the offer, with an audit row); the group hears the answer and the card shows an
    accepted offer."""
    offer = await session.get(HelpOffer, offer_id)
    case = await session.get(Case, offer.case_id) if offer else None
    if offer is None or case is None:
        return Decision(DecisionOutcome.NOT_YOURS)
    roles = await casework.roles_of(session, user_id=actor_id, case=case, settings=settings)
    found = judge(Act.DECIDE_OFFER, roles, case.status)
    if found is Verdict.NOT_YOURS:
        return Decision(DecisionOutcome.NOT_YOURS)
    if offer.status != OfferStatus.PENDING:
        return await _already(session, offer)
    if found is Verdict.NOT_NOW:
        return Decision(DecisionOutcome.NOT_NOW)
    to = OfferStatus.ACCEPTED if accept else OfferStatus.DECLINED
    result = await session.execute(
        update(HelpOffer)
        .where(HelpOffer.id == offer.id, HelpOffer.status == OfferStatus.PENDING)
        .values(status=to, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return await _already(session, offer)
    _audit(session, offer.id, OfferStatus.PENDING, to, actor_id, actor_name, now)
    await session.refresh(offer)
    await _tell_group(session, offer, case, cards)
    if accept:
        await casework.refresh_card(session, case, cards)
    return Decision(DecisionOutcome.DONE, offer)


async def _already(session: AsyncSession, offer: HelpOffer) -> Decision:
    """An offer decided before this press, and who decided it."""
    by = await session.scalar(
        select(HelpOfferEvent.actor_name)
        .where(HelpOfferEvent.offer_id == offer.id, HelpOfferEvent.from_status.is_not(None))
        .order_by(HelpOfferEvent.id.desc())
        .limit(1)
    )
    return Decision(DecisionOutcome.ALREADY, offer, by)


async def _tell_group(session: AsyncSession, offer: HelpOffer, case: Case, cards: Cards) -> None:
    """The founder who offered hears the agency's answer (not who pressed), in their language."""
    if offer.offered_by is None:  # forgotten since
        return
    person = await session.get(User, offer.offered_by)
    if person is not None and person.blocked_bot:
        return
    language = person.language if person else cards.language
    group = await session.get(LocalGroup, offer.group_id)
    agency = await session.get(Agency, case.agency_key) if case.agency_key else None
    accepted = offer.status == OfferStatus.ACCEPTED
    key = "offer-accepted-notice" if accepted else "offer-declined-notice"
    text = cards.translate(
        key,
        language,
        code=code_for_display(case.code, language),
        group=isolate(group.name if group else ""),
        agency=agency.name if agency else "",
        kind=cards.translate(KIND_KEYS.get(offer.kind, "offer-kind-other"), language),
    )
    outbox.enqueue(
        session, chat_id=offer.offered_by, purpose=outbox.REPORTER_NOTICE,
        payload={"text": text}, case_id=case.id,
    )  # fmt: skip
