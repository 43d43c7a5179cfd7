"""When triage is unsure, the reporter is asked which kind of problem it is, with one tap.

The case stays "submitted" while the question is open (`Case.domain_asked_at` says it was
asked), so a restart loses nothing: the buttons are signed and the state is in the database. The
reporter's pick sends it to that domain's agency (whose card says the reporter chose it);
"don't know", or no answer within `[triage] answer_wait_minutes`, puts it in the coordinators'
triage queue as before. Nobody is told a case went to an agency until it has: that notice is
queued once the card is delivered (bot/services/refusals.py).

A reporter's pick becomes a training example only once the agency accepts the case; a reroute
before that replaces it with the staff's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, domain_question
from bot.config import Settings
from bot.rules import Act, allowed_from
from bot.services import outbox
from bot.services.reference import agency_for
from bot.services.routing import county_of, forward, reporter_of, send_to_triage
from bot.services.transitions import TransitionRefusedError
from bot.triage import TriageResult
from bot.triage.choices import offered_choices
from models.entities import Case, CaseStatus, Domain, TriageCorrection

# What the reporter's pick is kept as: the source of its correction, and its audit note.
SOURCE = "reporter"


async def ask_if_unsure(
    session: AsyncSession,
    *,
    case: Case,
    result: TriageResult,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> bool:
    """Ask the reporter to choose when triage is unsure and they can be asked; whether asked.
    An urgent case is not held up by a question; nor is one asked about before."""
    if result.confidence >= settings.triage.threshold or result.urgent:
        return False
    if case.domain_asked_at is not None or case.status != CaseStatus.SUBMITTED:
        return False
    choices = offered_choices(result)
    reporter = await reporter_of(session, case)
    if len(choices) < 2 or reporter is None or reporter.blocked_bot:
        return False
    known = set(await session.scalars(select(Domain.key).where(Domain.key.in_(choices))))
    choices = tuple(key for key in choices if key in known)
    if len(choices) < 2:
        return False
    case.domain_asked_at = now
    case.triage_confidence = result.confidence
    payload = domain_question(
        case.id, case.code, choices, cards.signer,
        lambda key, **values: cards.translate(key, reporter.language, **values),
        reporter.language,
    )  # fmt: skip
    outbox.enqueue(
        session, chat_id=reporter.id, purpose=outbox.REPORTER_NOTICE, payload=payload,
        case_id=case.id, dedupe_key=f"ask-domain:{case.id}",
    )  # fmt: skip
    return True


async def open_question(session: AsyncSession, *, reporter_id: int) -> str | None:
    """The code of this reporter's case whose question (which kind of problem?) is still open,
    the newest if several; None when none is."""
    return await session.scalar(
        select(Case.code)
        .where(
            Case.reporter_id == reporter_id,
            Case.domain_asked_at.is_not(None),
            Case.status.in_(allowed_from(Act.CHOOSE)),
        )
        .order_by(Case.id.desc())
        .limit(1)
    )


def _still_asked(case: Case) -> None:
    """Refuse an answer to a question that is closed (answered, or the wait ran out)."""
    if case.status not in allowed_from(Act.CHOOSE) or case.domain_asked_at is None:
        raise TransitionRefusedError(case.status, None)


async def reporter_chose(
    session: AsyncSession,
    *,
    case: Case,
    domain_key: str | None,
    guessed: str,
    reporter_id: int,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> str:
    """The reporter's answer: a domain (its agency gets the case), or None for "don't know" (the
    coordinators do); the status the case reached. TransitionRefusedError once closed."""
    _still_asked(case)
    reason = "triage-reason-reporter-unsure"
    if domain_key is not None:
        agency = await agency_for(
            session, county_key=await county_of(session, case), domain_key=domain_key
        )
        if agency is not None and agency.chat_id is not None:
            if case.second_domain_key == domain_key:
                case.second_domain_key = None
            await forward(
                session, case=case, domain_key=domain_key, allowed_from={CaseStatus.SUBMITTED},
                actor_id=reporter_id, actor_name=None, cards=cards, now=now, agency=agency,
                note=SOURCE, by_reporter=True,
            )  # fmt: skip
            return CaseStatus.FORWARDED
        guessed, reason = domain_key, "triage-reason-no-chat"
    await send_to_triage(
        session, case=case, guessed=guessed, reason_key=reason, settings=settings, cards=cards,
        now=now,
    )  # fmt: skip
    return CaseStatus.TRIAGE


async def unanswered(session: AsyncSession, *, now: datetime, wait: timedelta) -> Sequence[int]:
    """Cases whose reporter was asked at least `wait` ago and has not answered."""
    found = await session.scalars(
        select(Case.id).where(
            Case.status == CaseStatus.SUBMITTED,
            Case.domain_asked_at.is_not(None),
            Case.domain_asked_at <= now - wait,
        )
    )
    return list(found)


async def no_answer(
    session: AsyncSession,
    *,
    case: Case,
    guessed: str,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> None:
    """The wait ran out: the coordinators place the case, as when triage is unsure."""
    _still_asked(case)
    await send_to_triage(
        session, case=case, guessed=guessed, reason_key="triage-reason-no-answer",
        settings=settings, cards=cards, now=now,
    )  # fmt: skip


async def count_reporter_choice(session: AsyncSession, *, case: Case) -> None:
    """The agency accepted a case in the domain its reporter chose: keep that as a labelled
    example (once a case)."""
    if not case.reporter_chose_domain or case.domain_key is None:
        return
    already = await session.scalar(
        select(
            exists().where(TriageCorrection.case_id == case.id, TriageCorrection.source == SOURCE)
        )
    )
    if already:
        return
    session.add(
        TriageCorrection(
            case_id=case.id,
            text=case.text_original,
            domain_key=case.domain_key,
            source=SOURCE,
            actor_id=case.reporter_id,
        )
    )
