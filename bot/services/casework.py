"""What agency staff, coordinators and reporters do to a case after it is routed."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, answer_button, code_for_display, rating_buttons, yes_no_fixed
from bot.config import Settings
from bot.jalali import as_utc
from bot.rules import RULES, Act, Role, Verdict, allowed_from, judge
from bot.services import outbox, participation
from bot.services.asking import count_reporter_choice
from bot.services.reference import county_of_neighbourhood
from bot.services.routing import case_view, notify_reporter, reporter_of
from bot.services.transitions import CaseMovedError, transition
from models.entities import Agency, Case, CaseStatus, Invite, PendingInput, Staff

# What a typed step does to its case and what the reporter is told.
_TYPED_NOTICES = {
    Act.ASK: "notice-question",
    Act.RESOLVE: "notice-resolved",
    Act.REJECT: "notice-rejected",
}


class StepRefusedError(Exception):
    """A typed step may no longer be applied; `reason` names a locale key that says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def roles_of(
    session: AsyncSession, *, user_id: int, case: Case, settings: Settings
) -> frozenset[Role]:
    """This person's roles on the case as it is now (its current agency and county)."""
    roles: set[Role] = set()
    if case.reporter_id is not None and case.reporter_id == user_id:
        roles.add(Role.REPORTER)
    if await coordinates(session, user_id=user_id, case=case, settings=settings):
        roles.add(Role.COORDINATOR)
    staff = await session.get(Staff, (user_id, case.agency_key)) if case.agency_key else None
    if staff is not None:
        roles.add(Role.STAFF)
    return frozenset(roles)


async def verdict(
    session: AsyncSession, *, user_id: int, act: Act, case: Case, settings: Settings
) -> Verdict:
    """Whether this person may do `act` to the case now, by the rules table."""
    roles = await roles_of(session, user_id=user_id, case=case, settings=settings)
    return judge(act, roles, case.status)


async def coordinates(
    session: AsyncSession, *, user_id: int, case: Case, settings: Settings
) -> bool:
    """Whether this person coordinates the county the case was filed in."""
    county_key = await county_of_neighbourhood(session, case.neighbourhood_id)
    return user_id in settings.county_named(county_key).coordinators


async def tell_reporter(
    session: AsyncSession,
    case: Case,
    cards: Cards,
    key: str,
    *,
    once_as: str | None = None,
    **values: object,
) -> None:
    """Queue the notice `key` to the case's reporter, in their language, with the case's code
    and agency filled in (and the buttons that notice carries); `once_as`: queued only once
    under that key."""
    reporter = await reporter_of(session, case)
    language = reporter.language if reporter else cards.language
    agency = await session.get(Agency, case.agency_key) if case.agency_key else None
    text = cards.translate(
        key,
        language,
        code=code_for_display(case.code, language),
        agency=agency.name if agency else "",
        **values,
    )
    markup = None
    if key == "notice-resolved":
        markup = yes_no_fixed(
            case.id, lambda k, **v: cards.translate(k, language, **v), cards.signer
        )
    elif key == "notice-question":
        markup = answer_button(
            case.id, lambda k, **v: cards.translate(k, language, **v), cards.signer
        )
    elif key == "notice-closed":
        markup = rating_buttons(
            case.id, cards.signer, lambda k, **v: cards.translate(k, language, **v)
        )
    notify_reporter(session, case, reporter, text, markup=markup, key=once_as)
    await participation.tell_joined(session, case, cards, key, once_as=once_as)


async def refresh_card(session: AsyncSession, case: Case, cards: Cards) -> None:
    """Queue an edit of the agency card so it shows the case as it is now."""
    if case.card_chat_id is None or case.card_message_id is None:
        return
    card = cards.agency(await case_view(session, case.id))
    outbox.enqueue(
        session, chat_id=case.card_chat_id, purpose=outbox.AGENCY_CARD, method="editMessageText",
        payload={"message_id": case.card_message_id, **card}, case_id=case.id,
    )  # fmt: skip


async def hide_contact(session: AsyncSession, *, case_ids: Sequence[int], cards: Cards) -> None:
    """The agency cards of these cases, whose reporter has just been forgotten, show the case
    as it is now, their phone number and words gone (the description is the redaction marker
    by then): a card still to go is rendered anew, one already sent is edited."""
    for case_id in case_ids:
        card = cards.agency(await case_view(session, case_id))
        if not await outbox.rewrite_waiting(
            session, case_id=case_id, purpose=outbox.AGENCY_CARD, payload=card
        ):
            # Read again: a card the sender held while this waited has its message id now.
            case = await session.get(Case, case_id, populate_existing=True)
            assert case is not None
            await refresh_card(session, case, cards)


async def accept(
    session: AsyncSession,
    *,
    case: Case,
    actor_id: int,
    actor_name: str,
    cards: Cards,
    now: datetime,
) -> None:
    """The agency holding the case takes it on (CaseMovedError: it went elsewhere since)."""
    await transition(
        session,
        case_id=case.id,
        allowed_from=allowed_from(Act.ACCEPT),
        to=CaseStatus.ACCEPTED,
        actor_id=actor_id,
        actor_name=actor_name,
        now=now,
        held_by=case.agency_key,
    )
    await count_reporter_choice(session, case=case)
    await tell_reporter(session, case, cards, "notice-accepted")


async def wait_for_input(
    session: AsyncSession, *, user_id: int, chat_id: int, act: Act, case: Case, now: datetime
) -> None:
    """Remember that this person owes a question, note, reason or answer on the case, typed in
    this chat; the step is tied to the agency holding the case now."""
    await drop_input(session, user_id=user_id, chat_id=chat_id)
    session.add(
        PendingInput(
            user_id=user_id, chat_id=chat_id, kind=act.value, case_id=case.id,
            agency_key=case.agency_key, created_at=now,
        )
    )  # fmt: skip


async def set_prompt(session: AsyncSession, *, user_id: int, chat_id: int, message_id: int) -> None:
    """The message that asked for the typed step: only a reply to it completes the step."""
    await session.execute(
        update(PendingInput)
        .where(PendingInput.user_id == user_id, PendingInput.chat_id == chat_id)
        .values(prompt_message_id=message_id)
    )


async def drop_input(session: AsyncSession, *, user_id: int, chat_id: int) -> None:
    """Forget what this person was asked to type here."""
    await session.execute(
        delete(PendingInput).where(PendingInput.user_id == user_id, PendingInput.chat_id == chat_id)
    )


async def pending_input(
    session: AsyncSession, *, user_id: int, chat_id: int
) -> PendingInput | None:
    """What this person was asked to type in this chat, if anything."""
    return await session.get(PendingInput, (user_id, chat_id))


async def check_step(
    session: AsyncSession, *, pending: PendingInput, settings: Settings, now: datetime
) -> Case:
    """The case a typed step applies to, once it is certain the step may still be applied:
    not expired, the case still at the agency it was at when the button was pressed, and this
    person still allowed to do it there. Raises StepRefusedError naming why not; a step whose
    status has moved on is left to the transition, which names who moved it."""
    case = await session.get(Case, pending.case_id, populate_existing=True)
    act = Act(pending.kind)
    if case is None:
        raise StepRefusedError("step-case-gone")
    if act is not Act.ANSWER:  # the reporter answers in their own time
        waited = now - as_utc(pending.created_at)
        if waited > timedelta(minutes=settings.staff.input_minutes):
            raise StepRefusedError("step-expired")
        if case.agency_key != pending.agency_key:
            raise StepRefusedError("step-case-moved")
    found = await verdict(session, user_id=pending.user_id, act=act, case=case, settings=settings)
    if found is Verdict.NOT_YOURS:
        raise StepRefusedError("step-not-yours")
    if act is Act.ASK and case.reporter_id is None:
        raise StepRefusedError("reporter-gone")
    return case


async def finish_input(
    session: AsyncSession,
    *,
    pending: PendingInput,
    text: str,
    actor_name: str,
    cards: Cards,
    settings: Settings,
    now: datetime,
) -> Case:
    """Apply a typed question, resolution note or rejection reason to its case, re-checking
    that it may still be applied (`check_step`), and at once (the status and the agency
    compared and set together: a reroute committed in between refuses it); the agency's card
    then shows the step."""
    case = await check_step(session, pending=pending, settings=settings, now=now)
    act = Act(pending.kind)
    await session.delete(pending)
    rule = RULES[act]
    assert rule.to is not None
    try:
        await transition(
            session, case_id=case.id, allowed_from=rule.from_statuses, to=rule.to,
            actor_id=pending.user_id, actor_name=actor_name, note=text, now=now,
            held_by=pending.agency_key,
        )  # fmt: skip
    except CaseMovedError:
        raise StepRefusedError("step-case-moved") from None
    await tell_reporter(session, case, cards, _TYPED_NOTICES[act], note=text)
    await refresh_card(session, case, cards)
    return case


async def relay_answer(
    session: AsyncSession,
    *,
    case: Case,
    reporter_id: int,
    text: str | None,
    photo: str | None,
    cards: Cards,
    now: datetime,
) -> None:
    """The reporter answered the agency's question: relay it under the card, back to accepted."""
    await transition(
        session, case_id=case.id, allowed_from=allowed_from(Act.ANSWER), to=CaseStatus.ACCEPTED,
        actor_id=reporter_id, actor_name=None, note=text, now=now,
    )  # fmt: skip
    if case.card_chat_id is not None:
        heading = cards.t("relay-answer", code=code_for_display(case.code, cards.language))
        payload: dict[str, object] = {"reply_to_message_id": case.card_message_id}
        if photo:
            payload |= {"photo": photo, "caption": f"{heading}\n{text or ''}".strip()}
        else:
            payload |= {"text": f"{heading}\n{text}"}
        outbox.enqueue(
            session, chat_id=case.card_chat_id, purpose=outbox.AGENCY_RELAY,
            method="sendPhoto" if photo else "sendMessage", payload=payload, case_id=case.id,
        )  # fmt: skip
    await refresh_card(session, case, cards)


async def confirm_outcome(
    session: AsyncSession, *, case: Case, reporter_id: int, fixed: bool, cards: Cards, now: datetime
) -> None:
    """The reporter says whether the resolution fixed it: closed, or reopened at the same agency."""
    if fixed:
        await transition(
            session,
            case_id=case.id,
            allowed_from=allowed_from(Act.CONFIRM_FIXED),
            to=CaseStatus.CLOSED,
            actor_id=reporter_id,
            actor_name=None,
            now=now,
        )
        await tell_reporter(session, case, cards, "notice-closed")
    else:
        await transition(
            session, case_id=case.id, allowed_from=allowed_from(Act.REPORT_UNFIXED),
            to=CaseStatus.REOPENED,
            actor_id=reporter_id, actor_name=None, now=now, reopen_count=Case.reopen_count + 1,
        )  # fmt: skip
        await tell_reporter(session, case, cards, "notice-reopened")
        if case.card_chat_id is not None:
            text = cards.t("relay-reopened", code=code_for_display(case.code, cards.language))
            outbox.enqueue(
                session, chat_id=case.card_chat_id, purpose=outbox.AGENCY_RELAY, case_id=case.id,
                payload={"text": text, "reply_to_message_id": case.card_message_id},
            )  # fmt: skip
    await refresh_card(session, case, cards)


async def rate(session: AsyncSession, *, case: Case, stars: int) -> bool:
    """Store the reporter's 1–5 rating once; False if the case was already rated or not closed."""
    result = await session.execute(
        update(Case)
        .where(Case.id == case.id, Case.status.in_(allowed_from(Act.RATE)), Case.rating.is_(None))
        .values(rating=stars)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def create_invite(
    session: AsyncSession, *, agency_key: str, created_by: int, days: int, now: datetime
) -> str:
    """A one-time token for /start join_<token>."""
    token = secrets.token_urlsafe(18)
    session.add(
        Invite(
            token=token,
            agency_key=agency_key,
            created_by=created_by,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    return token


async def redeem_invite(
    session: AsyncSession, *, token: str, user_id: int, name: str, now: datetime
) -> Agency | None:
    """Make the user staff of the invite's agency, once; None if used, expired or unknown."""
    result = await session.execute(
        update(Invite)
        .where(Invite.token == token, Invite.used_by.is_(None), Invite.expires_at > now)
        .values(used_by=user_id, used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    invite = await session.get(Invite, token)
    assert invite is not None
    if await session.get(Staff, (user_id, invite.agency_key)) is None:
        session.add(Staff(user_id=user_id, agency_key=invite.agency_key, name=name, added_at=now))
    return await session.get(Agency, invite.agency_key)


async def get_case(session: AsyncSession, case_id: int) -> Case | None:
    """A case by id."""
    return await session.scalar(select(Case).where(Case.id == case_id))


async def list_staff(session: AsyncSession) -> list[Staff]:
    """Everyone who is staff of some agency, by agency then name."""
    return list((await session.scalars(select(Staff).order_by(Staff.agency_key, Staff.name))).all())


async def remove_staff(session: AsyncSession, *, user_id: int, agency_key: str) -> bool:
    """Take someone off an agency's staff; False if they were not on it."""
    result = await session.execute(
        delete(Staff).where(Staff.user_id == user_id, Staff.agency_key == agency_key)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def redact_cards(session: AsyncSession, *, case_ids: Sequence[int], cards: Cards) -> None:
    """`hide_contact` for those of these cases (their reporter forgotten, their words already
    replaced by the marker) that have an agency card, sent or still to go."""
    if not case_ids:
        return
    shown = set(
        await session.scalars(
            select(Case.id).where(Case.id.in_(case_ids), Case.card_message_id.is_not(None))
        )
    )
    shown |= await outbox.cards_waiting(session, case_ids=case_ids)
    await hide_contact(session, case_ids=sorted(shown), cards=cards)
