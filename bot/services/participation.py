"""Residents with the same problem join an open case ("me too") instead of filing it again.

The agency then sees how many residents are affected, and each one who joined hears the case's
progress in the same steps its reporter does, without the clerk's name or the reporter's words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, code_for_display
from bot.rules import Act, Role, Verdict, allowed_from, judge
from bot.services import outbox
from bot.services.duplicates import WINDOW, most_alike
from bot.services.reference import neighbourhoods_of_county
from models.db import dialect_insert
from models.entities import (
    Agency,
    Case,
    CaseJoin,
    HelpOffer,
    HelpOfferEvent,
    LocalGroup,
    OfferStatus,
    User,
)

# What those who joined hear, by the notice its reporter hears: the progress, never a note (a
# question, resolution or reason is written to the reporter and may speak of them).
JOINED_NOTICE_KEYS = {
    "notice-forwarded": "joined-notice-forwarded",
    "notice-accepted": "joined-notice-accepted",
    "notice-resolved": "joined-notice-resolved",
    "notice-rejected": "joined-notice-rejected",
    "notice-closed": "joined-notice-closed",
    "notice-auto-closed": "joined-notice-closed",
    "notice-reopened": "joined-notice-reopened",
}


class JoinOutcome(enum.StrEnum):
    """What came of a press of "me too"; the values are locale keys."""

    JOINED = "joined-done"
    OWN = "join-refused-own"
    TWICE = "join-refused-twice"
    CLOSED = "join-refused-closed"


def _open_nearby() -> Any:
    """The newest open cases of a neighbourhood that a resident could join: not their own,
    nor one they joined. Its parameters: `neighbourhood_id`, `user_id` and `since`."""
    user_id = bindparam("user_id", type_=CaseJoin.user_id.type)
    mine = exists().where(CaseJoin.case_id == Case.id, CaseJoin.user_id == user_id)
    return (
        select(Case.id, Case.text_normalized)
        .where(
            Case.neighbourhood_id == bindparam("neighbourhood_id"),
            Case.status.in_(allowed_from(Act.JOIN)),
            Case.created_at >= bindparam("since", type_=Case.created_at.type),
            (Case.reporter_id != user_id) | Case.reporter_id.is_(None),
            ~mine,
        )
        .order_by(Case.id.desc())
        .limit(200)
    )


_OPEN_NEARBY = _open_nearby()  # built once: building it cost more than running it


async def find_similar(
    session: AsyncSession, *, neighbourhood_id: int, text: str, user_id: int, now: datetime
) -> Case | None:
    """The open case in this neighbourhood that reads most like `text` (normalised), if one
    is similar enough: not one of this resident's own, nor one they joined already."""
    nearby = {"neighbourhood_id": neighbourhood_id, "user_id": user_id, "since": now - WINDOW}
    found = await session.execute(_OPEN_NEARBY, nearby)
    best_id = most_alike(text, ((case_id, other) for case_id, other in found))
    return await session.get(Case, best_id) if best_id is not None else None


async def roles_of(session: AsyncSession, *, user_id: int, case: Case) -> frozenset[Role]:
    """A resident's relation to a case: its reporter, one who joined it, or anyone else."""
    if case.reporter_id == user_id:
        return frozenset({Role.REPORTER})
    joined = await session.scalar(
        select(CaseJoin.id).where(CaseJoin.case_id == case.id, CaseJoin.user_id == user_id)
    )
    return frozenset({Role.CO_REPORTER if joined is not None else Role.RESIDENT})


def _refusal(roles: frozenset[Role], found: Verdict) -> JoinOutcome:
    """Why a join was refused, from the rules' verdict."""
    if found is Verdict.NOT_YOURS:
        return JoinOutcome.OWN if Role.REPORTER in roles else JoinOutcome.TWICE
    return JoinOutcome.CLOSED


async def join(session: AsyncSession, *, case: Case, user_id: int, now: datetime) -> JoinOutcome:
    """Attach the resident to the case, once, while it is open and not theirs: one conditional
    insert, so a double press or two processes at once add one row."""
    roles = await roles_of(session, user_id=user_id, case=case)
    found = judge(Act.JOIN, roles, case.status)
    if found is not Verdict.ALLOWED:
        return _refusal(roles, found)
    still_open = exists().where(
        Case.id == case.id,
        Case.status.in_(allowed_from(Act.JOIN)),
        (Case.reporter_id != user_id) | Case.reporter_id.is_(None),
    )
    values = select(
        literal(case.id), literal(user_id, BigInteger), literal(now, DateTime(timezone=True))
    ).where(still_open)
    insert = dialect_insert(session, CaseJoin).from_select(
        ["case_id", "user_id", "joined_at"], values
    )
    result = await session.execute(insert.on_conflict_do_nothing())
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return JoinOutcome.JOINED
    fresh = await session.get(Case, case.id, populate_existing=True)
    assert fresh is not None
    roles = await roles_of(session, user_id=user_id, case=fresh)
    return _refusal(roles, judge(Act.JOIN, roles, fresh.status))


async def leave(session: AsyncSession, *, case: Case, user_id: int) -> bool:
    """The resident stops following a case they joined; False if they had not joined it."""
    roles = await roles_of(session, user_id=user_id, case=case)
    if judge(Act.LEAVE, roles, case.status) is not Verdict.ALLOWED:
        return False
    result = await session.execute(
        delete(CaseJoin).where(CaseJoin.case_id == case.id, CaseJoin.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def joined_count(session: AsyncSession, case_id: int) -> int:
    """How many residents joined the case (those since forgotten included)."""
    found = await session.scalar(
        select(func.count()).select_from(CaseJoin).where(CaseJoin.case_id == case_id)
    )
    return int(found or 0)


async def joined_cases(session: AsyncSession, *, user_id: int) -> list[Case]:
    """The cases this resident joined, newest join first."""
    query = (
        select(Case)
        .join(CaseJoin, CaseJoin.case_id == Case.id)
        .where(CaseJoin.user_id == user_id)
        .order_by(CaseJoin.id.desc())
    )
    return list((await session.scalars(query)).all())


async def tell_joined(
    session: AsyncSession, case: Case, cards: Cards, key: str, *, once_as: str | None = None
) -> None:
    """Queue to each resident who joined the case the step its reporter was just told of
    (`key`), in their language; one who blocked the bot is skipped. `once_as`: as the
    reporter's notice, queued once only."""
    joined_key = JOINED_NOTICE_KEYS.get(key)
    if joined_key is None:
        return
    people = await session.scalars(
        select(User)
        .join(CaseJoin, CaseJoin.user_id == User.id)
        .where(CaseJoin.case_id == case.id, User.blocked_bot.is_(False))
    )
    agency = await session.get(Agency, case.agency_key) if case.agency_key else None
    for person in people:
        text = cards.translate(
            joined_key,
            person.language,
            code=code_for_display(case.code, person.language),
            agency=agency.name if agency else "",
        )
        outbox.enqueue(
            session, chat_id=person.id, purpose=outbox.REPORTER_NOTICE, payload={"text": text},
            case_id=case.id, dedupe_key=f"{once_as}:joined:{person.id}" if once_as else None,
        )  # fmt: skip


async def forget(session: AsyncSession, *, user_id: int) -> None:
    """Someone asked to be forgotten: the cases they joined keep the count, not them; the
    offers they made and decided keep no trace of who they were."""
    await session.execute(update(CaseJoin).where(CaseJoin.user_id == user_id).values(user_id=None))
    await session.execute(
        update(HelpOffer).where(HelpOffer.offered_by == user_id).values(offered_by=None)
    )
    await session.execute(
        update(HelpOfferEvent)
        .where(HelpOfferEvent.actor_id == user_id)
        .values(actor_id=None, actor_name=None)
    )


async def accepted_offers(session: AsyncSession, case_id: int) -> list[tuple[str, str]]:
    """(group name, kind of help) of the offers the agency accepted for this case."""
    rows = await session.execute(
        select(LocalGroup.name, HelpOffer.kind)
        .join(LocalGroup, LocalGroup.id == HelpOffer.group_id)
        .where(HelpOffer.case_id == case_id, HelpOffer.status == OfferStatus.ACCEPTED)
        .order_by(HelpOffer.id)
    )
    return [(name, kind) for name, kind in rows]


@dataclass(frozen=True)
class Participation:
    """A period's participation in numbers."""

    joined: int = 0  # residents who joined a case
    offers: int = 0  # offers of help local groups made
    accepted: int = 0  # offers the agencies accepted


async def period_figures(
    session: AsyncSession, *, start: datetime, end: datetime, county_key: str | None = None
) -> Participation:
    """Joins and offers made in [start, end), and offers accepted in it (in one county)."""
    scope: list[Any] = []
    if county_key is not None:
        places = neighbourhoods_of_county(county_key)
        scope.append(Case.neighbourhood_id.in_(places))

    async def count(entity: Any, *conditions: Any) -> int:
        query = (
            select(func.count())
            .select_from(entity)
            .join(Case, Case.id == entity.case_id)
            .where(and_(*conditions, *scope))
        )
        return int(await session.scalar(query) or 0)

    return Participation(
        joined=await count(CaseJoin, CaseJoin.joined_at >= start, CaseJoin.joined_at < end),
        offers=await count(HelpOffer, HelpOffer.created_at >= start, HelpOffer.created_at < end),
        accepted=await count(
            HelpOffer,
            HelpOffer.status == OfferStatus.ACCEPTED,
            HelpOffer.decided_at >= start,
            HelpOffer.decided_at < end,
        ),
    )
