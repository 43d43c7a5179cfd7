"""Cases worked by several agencies together (inter-agency cooperation): the agency holding a
case (its lead), or a coordinator, asks another agency of the county for a part of the work with
a short note; the asked agency works that part on its own card (accept, done, cannot, with a
reason).

Who may press what is in the rules table (bot/rules.py); every change of a task is a
compare-and-set with an audit row (TaskEvent); every message goes through the outbox. The lead
stays the one who resolves the case: its card shows a line per task, and a case that ends with
tasks still open closes them, telling the asked agencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, TaskView, code_for_display
from bot.config import Settings
from bot.digits import isolate
from bot.jalali import format_datetime
from bot.rules import RULES, Act, Role, Verdict, allowed_from, judge
from bot.services import casework, outbox
from bot.services.cases import visible_count
from bot.services.deadlines import OverdueCheck
from bot.services.reference import county_of_neighbourhood
from bot.services.routing import notify_reporter, reporter_of
from bot.services.transitions import TransitionRefusedError
from bot.services.worktime import WorkCalendar
from models.entities import (
    Agency,
    Case,
    CaseStatus,
    CaseTask,
    Domain,
    OutboxMessage,
    OutboxStatus,
    PendingInput,
    Staff,
    TaskEvent,
    TaskStatus,
)

# Outbox purposes in the asked agency's chat: its task card (and the case's place), and lines
# about the task. Not the agency purposes: a refusal there must not flag the lead's case.
TASK_CARD = "task-card"
TASK_RELAY = "task-relay"
MAX_NOTE = 1000
OPEN = (TaskStatus.ASKED, TaskStatus.ACCEPTED)
# What a task's state means to the deadlines: waiting to be taken on, or being worked.
_AS_CASE = {TaskStatus.ASKED: CaseStatus.FORWARDED, TaskStatus.ACCEPTED: CaseStatus.ACCEPTED}
_DEADLINE_KEYS = {
    "remind": "task-deadline-remind",
    "escalate-accept": "task-deadline-escalate-accept",
    "escalate-resolve": "task-deadline-escalate-resolve",
}


class TaskRefusedError(Exception):
    """A task may not be asked or worked as asked; `reason` names a locale key saying why."""

    def __init__(self, reason: str, **values: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.values = values


@dataclass(frozen=True)
class Closed:
    """A task closed because its case ended: whose it was and where it stood."""

    agency: str
    status: str


def card_key(task_id: int) -> str:
    """The outbox key of a task's first card: where its message id is found once sent."""
    return f"task-card:{task_id}"


async def get_task(session: AsyncSession, task_id: int) -> CaseTask | None:
    """A task by id, read afresh."""
    return await session.get(CaseTask, task_id, populate_existing=True)


async def roles_on_task(
    session: AsyncSession, *, user_id: int, task: CaseTask, case: Case, settings: Settings
) -> frozenset[Role]:
    """This person's roles on a task: staff of the asked agency, and their roles on its case
    (staff of the lead agency, a coordinator of its county)."""
    roles = set(await casework.roles_of(session, user_id=user_id, case=case, settings=settings))
    if await session.get(Staff, (user_id, task.to_agency_key)) is not None:
        roles.add(Role.ASKED)
    return frozenset(roles)


async def task_verdict(
    session: AsyncSession,
    *,
    user_id: int,
    act: Act,
    task: CaseTask,
    case: Case,
    settings: Settings,
) -> Verdict:
    """Whether this person may do `act` to the task now, by the rules table."""
    roles = await roles_on_task(session, user_id=user_id, task=task, case=case, settings=settings)
    return judge(act, roles, task.status)


async def agencies_to_ask(session: AsyncSession, *, case: Case) -> list[tuple[str, str]]:
    """(key, name) of the county's agencies this case may ask for help: reachable, not its own
    lead, and not already asked with the task still open."""
    county_key = await county_of_neighbourhood(session, case.neighbourhood_id)
    busy = set(
        await session.scalars(
            select(CaseTask.to_agency_key).where(
                CaseTask.case_id == case.id, CaseTask.status.in_(OPEN)
            )
        )
    )
    agencies = await session.scalars(
        select(Agency)
        .where(Agency.county_key == county_key, Agency.chat_id.is_not(None), Agency.kind != "")
        .order_by(Agency.key)
    )
    return [(a.key, a.name) for a in agencies if a.key != case.agency_key and a.key not in busy]


async def open_tasks(session: AsyncSession, *, case_id: int) -> list[tuple[CaseTask, str]]:
    """The case's open tasks with their asked agency's name, oldest first."""
    rows = await session.execute(
        select(CaseTask, Agency.name)
        .join(Agency, Agency.key == CaseTask.to_agency_key)
        .where(CaseTask.case_id == case_id, CaseTask.status.in_(OPEN))
        .order_by(CaseTask.id)
    )
    return [(task, str(name)) for task, name in rows]


def check_note(text: str) -> str | None:
    """The note or reason as kept, or None when it is empty or too long."""
    text = text.strip()
    if visible_count(text) < 2 or len(text) > MAX_NOTE:
        return None
    return text


async def ask_agency(
    *,
    session: AsyncSession,
    case_id: int,
    from_agency_key: str | None,
    to_agency_key: str,
    note: str,
    by_user_id: int | None,
    by_name: str | None,
    cards: Cards,
    settings: Settings,
    now: datetime,
) -> CaseTask:
    """Ask `to_agency_key` for a part of the case's work with a short note; its card goes to the
    asked agency's chat and the lead's card shows the task. `from_agency_key`: the lead asking
    (it must hold the case now), or None for a coordinator. `by_user_id`: who asks, checked
    against the rules table (None: the bot itself, e.g. a one-press "ask <agency>" for a
    second domain a report concerns). Raises TaskRefusedError naming why not."""
    case = await session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise TaskRefusedError("step-case-gone")
    if by_user_id is not None:
        found = await casework.verdict(
            session, user_id=by_user_id, act=Act.COOPERATE, case=case, settings=settings
        )
        if found is Verdict.NOT_YOURS:
            raise TaskRefusedError("not-your-agency")
    if case.status not in allowed_from(Act.COOPERATE):
        raise TaskRefusedError("task-case-not-open")
    if from_agency_key is not None and from_agency_key != case.agency_key:
        raise TaskRefusedError("step-case-moved")
    asked = await session.get(Agency, to_agency_key)
    choices = dict(await agencies_to_ask(session, case=case))
    if asked is None or to_agency_key not in choices:
        raise TaskRefusedError("task-agency-not-offered")
    kept = check_note(note)
    if kept is None:
        raise TaskRefusedError("note-length", high=MAX_NOTE)
    task = CaseTask(
        case_id=case.id, from_agency_key=from_agency_key, to_agency_key=to_agency_key,
        note=kept, status=TaskStatus.ASKED, created_by=by_user_id, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(task)
    await session.flush()
    session.add(
        TaskEvent(
            task_id=task.id, from_status=None, to_status=TaskStatus.ASKED,
            actor_id=by_user_id, actor_name=by_name, note=kept, created_at=now,
        )
    )  # fmt: skip
    assert asked.chat_id is not None  # offered only when reachable
    if case.latitude is not None and case.longitude is not None:
        outbox.enqueue(
            session, chat_id=asked.chat_id, purpose=TASK_CARD,
            method="sendLocation", case_id=case.id,
            payload={"latitude": case.latitude, "longitude": case.longitude},
        )  # fmt: skip
    outbox.enqueue(
        session, chat_id=asked.chat_id, purpose=TASK_CARD, case_id=case.id,
        payload=cards.task(await task_view(session, task, cards)), dedupe_key=card_key(task.id),
    )  # fmt: skip
    await casework.refresh_card(session, case, cards)
    return task


async def task_view(session: AsyncSession, task: CaseTask, cards: Cards) -> TaskView:
    """Everything a task card shows, as it is now."""
    case = await session.get(Case, task.case_id)
    assert case is not None
    lead = await session.get(Agency, task.from_agency_key) if task.from_agency_key else None
    domain = await session.get(Domain, case.domain_key) if case.domain_key else None
    latest = await session.scalar(
        select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id.desc())
    )
    return TaskView(
        task_id=task.id, code=case.code, status=task.status,
        lead_name=lead.name if lead else cards.t("task-from-coordinators"), note=task.note,
        domain_title=domain.title if domain else "", neighbourhood=case.neighbourhood.name,
        district=case.neighbourhood.district.name, created_at=case.created_at,
        text=case.text_original, phone=case.reporter_phone if case.share_phone else None,
        reason=task.reason, last_actor=latest.actor_name if latest else None,
        last_change=latest.created_at if latest else None,
    )  # fmt: skip


async def card_place(session: AsyncSession, task: CaseTask) -> tuple[int, int] | None:
    """(chat, message) of the task's card once delivered, remembered on the task."""
    if task.card_chat_id is not None and task.card_message_id is not None:
        return task.card_chat_id, task.card_message_id
    sent = await session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.dedupe_key == card_key(task.id),
            OutboxMessage.status == OutboxStatus.SENT,
        )
    )
    if sent is None or sent.sent_message_id is None:
        return None
    task.card_chat_id, task.card_message_id = sent.chat_id, sent.sent_message_id
    return sent.chat_id, sent.sent_message_id


async def refresh_task_card(session: AsyncSession, task: CaseTask, cards: Cards) -> None:
    """The task's card shows the task as it is now: edited once sent, rewritten while waiting."""
    card = cards.task(await task_view(session, task, cards))
    place = await card_place(session, task)
    if place is not None:
        outbox.enqueue(
            session, chat_id=place[0], purpose=TASK_CARD, method="editMessageText",
            payload={"message_id": place[1], **card}, case_id=task.case_id,
        )  # fmt: skip
        return
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.dedupe_key == card_key(task.id),
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        .values(payload=card)
        .execution_options(synchronize_session=False)
    )


async def move(
    session: AsyncSession,
    *,
    task_id: int,
    act: Act,
    actor_id: int | None,
    actor_name: str | None,
    now: datetime,
    note: str | None = None,
) -> str:
    """Compare-and-set the task's status by the rules table, with its audit row; returns the
    status it left. Raises TransitionRefusedError naming who moved it first."""
    rule = RULES[act]
    assert rule.to is not None
    current = await session.scalar(select(CaseTask.status).where(CaseTask.id == task_id))
    values: dict[str, Any] = {"status": rule.to, "updated_at": now}
    if rule.to == TaskStatus.ACCEPTED:
        values["accepted_at"] = now
    elif rule.to in (TaskStatus.DONE, TaskStatus.CANNOT, TaskStatus.CANCELLED):
        values["finished_at"] = now
    if act in (Act.TASK_CANNOT, Act.TASK_CANCEL):
        values["reason"] = note
    changed = 0
    if current in rule.from_statuses:
        result = await session.execute(
            update(CaseTask)
            .where(CaseTask.id == task_id, CaseTask.status == current)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        changed = result.rowcount  # type: ignore[attr-defined]
    if changed != 1:
        latest = await session.scalar(
            select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id.desc())
        )
        status = await session.scalar(select(CaseTask.status).where(CaseTask.id == task_id))
        raise TransitionRefusedError(status, latest.actor_name if latest else None)
    session.add(
        TaskEvent(
            task_id=task_id, from_status=current, to_status=rule.to,
            actor_id=actor_id, actor_name=actor_name, note=note, created_at=now,
        )
    )  # fmt: skip
    return str(current)


async def work_on(
    session: AsyncSession,
    *,
    task: CaseTask,
    act: Act,
    actor_id: int,
    actor_name: str,
    cards: Cards,
    settings: Settings,
    now: datetime,
    note: str | None = None,
    pressed_on: str | None = None,
) -> CaseTask:
    """Accept, finish, decline (with `note`, the reason) or withdraw a task, if this person may
    now (TaskRefusedError "not-your-agency" if not; TransitionRefusedError if someone moved it
    first); both cards follow, and those concerned are told. `pressed_on`: "task" or "lead",
    the card the caller edits itself as the press's answer."""
    case = await session.get(Case, task.case_id, populate_existing=True)
    assert case is not None
    found = await task_verdict(
        session, user_id=actor_id, act=act, task=task, case=case, settings=settings
    )
    if found is Verdict.NOT_YOURS:
        raise TaskRefusedError("not-your-agency")
    await move(
        session, task_id=task.id, act=act, actor_id=actor_id, actor_name=actor_name,
        now=now, note=note,
    )  # fmt: skip
    task = await get_task(session, task.id) or task
    await _tell(session, task=task, case=case, act=act, cards=cards, settings=settings)
    if pressed_on != "task":
        await refresh_task_card(session, task, cards)
    if pressed_on != "lead":
        await casework.refresh_card(session, case, cards)
    return task


async def _tell(
    session: AsyncSession,
    *,
    task: CaseTask,
    case: Case,
    act: Act,
    cards: Cards,
    settings: Settings,
) -> None:
    """Who hears of a task's step: the reporter when an agency joins and when it finishes its
    part (the agency, never the clerk); the lead when its part is done or cannot be done (and
    the coordinators then too); the asked agency when the request is withdrawn."""
    asked = await session.get(Agency, task.to_agency_key)
    name = asked.name if asked else ""
    code = code_for_display(case.code, cards.language)
    if act is Act.TASK_ACCEPT:
        await tell_reporter(session, case, cards, "notice-task-joined", agency=name, once=task.id)
    elif act is Act.TASK_DONE:
        await tell_reporter(session, case, cards, "notice-task-done", agency=name, once=task.id)
        _to_lead(session, case, cards.t("task-relay-done", agency=name, code=code))
    elif act is Act.TASK_CANNOT:
        text = cards.t(
            "task-relay-cannot", agency=name, code=code, reason=isolate(task.reason or "")
        )
        _to_lead(session, case, text)
        county = settings.county_named(
            await county_of_neighbourhood(session, case.neighbourhood_id)
        )
        for chat_id in county.coordinator_chats():
            if chat_id != case.card_chat_id:
                outbox.enqueue(
                    session, chat_id=chat_id, purpose=outbox.COORDINATOR_NOTICE,
                    payload={"text": text}, case_id=case.id,
                )  # fmt: skip
    elif act is Act.TASK_CANCEL:
        await _to_asked(session, task, cards.t("task-relay-cancelled", code=code))


def _to_lead(session: AsyncSession, case: Case, text: str) -> None:
    """A line in the lead agency's chat, under its card of the case."""
    if case.card_chat_id is None:
        return
    outbox.enqueue(
        session, chat_id=case.card_chat_id, purpose=outbox.AGENCY_RELAY, case_id=case.id,
        payload={"text": text, "reply_to_message_id": case.card_message_id},
    )  # fmt: skip


async def _to_asked(session: AsyncSession, task: CaseTask, text: str) -> None:
    """A line in the asked agency's chat, under its task card once that is there."""
    asked = await session.get(Agency, task.to_agency_key)
    if asked is None or asked.chat_id is None:
        return
    payload: dict[str, object] = {"text": text}
    place = await card_place(session, task)
    if place is not None and place[0] == asked.chat_id:
        payload["reply_to_message_id"] = place[1]
    outbox.enqueue(
        session, chat_id=asked.chat_id, purpose=TASK_RELAY, payload=payload,
        case_id=task.case_id,
    )  # fmt: skip


async def tell_reporter(
    session: AsyncSession, case: Case, cards: Cards, key: str, *, agency: str, once: int
) -> None:
    """The reporter hears, in their language and once per task, what another agency did."""
    reporter = await reporter_of(session, case)
    language = reporter.language if reporter else cards.language
    text = cards.translate(key, language, code=code_for_display(case.code, language), agency=agency)
    notify_reporter(session, case, reporter, text, key=f"{key}:{once}")


async def wind_up(
    session: AsyncSession,
    *,
    case: Case,
    why: str,
    actor_id: int | None,
    actor_name: str | None,
    cards: Cards,
    now: datetime,
) -> list[Closed]:
    """The case ended (resolved or rejected by its lead) with tasks still open: each is
    withdrawn with `why` as its reason, its agency told; returns them for the lead to read."""
    closed = []
    code = code_for_display(case.code, cards.language)
    for task, name in await open_tasks(session, case_id=case.id):
        try:
            before = await move(
                session, task_id=task.id, act=Act.TASK_CANCEL, actor_id=actor_id,
                actor_name=actor_name, now=now, note=why,
            )  # fmt: skip
        except TransitionRefusedError:
            continue  # its agency moved it meanwhile
        task = await get_task(session, task.id) or task
        await _to_asked(session, task, cards.t("task-relay-case-ended", code=code, why=why))
        await refresh_task_card(session, task, cards)
        closed.append(Closed(name, before))
    if closed:
        await casework.refresh_card(session, case, cards)
    return closed


async def send_task_alerts(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> int:
    """Chase tasks as cases are chased: a task not taken on in time is a reminder in the asked
    agency's chat, then an escalation to the coordinators; one taken on and not done in time is
    escalated too. Working time only, as for cases; each once per task."""
    check = OverdueCheck(settings.deadlines)
    after_hours = not WorkCalendar.configured(settings.deadlines).is_working(now)
    rows = await session.execute(
        select(CaseTask, Case.domain_key)
        .join(Case, Case.id == CaseTask.case_id)
        .where(CaseTask.status.in_(OPEN))
        .order_by(CaseTask.id)
    )
    queued = 0
    for task, domain_key in list(rows):
        as_case = _AS_CASE[TaskStatus(task.status)]
        for kind in check.kinds(
            status=as_case, domain_key=domain_key, since=task.created_at, now=now
        ):
            urgent = domain_key in settings.deadlines.urgent_domains
            if after_hours and (kind == "remind" or not urgent):
                continue
            key = f"task-{kind}:{task.id}"
            if await outbox.already_enqueued(session, key):
                continue
            queued += await _chase(
                session, task=task, kind=kind, key=key, cards=cards, settings=settings
            )
    return queued


async def _chase(
    session: AsyncSession, *, task: CaseTask, kind: str, key: str, cards: Cards, settings: Settings
) -> int:
    """Queue one reminder (to the asked agency) or escalation (to the coordinators); 1 if sent."""
    case = await session.get(Case, task.case_id)
    asked = await session.get(Agency, task.to_agency_key)
    assert case is not None and asked is not None
    text = cards.t(
        _DEADLINE_KEYS[kind], code=code_for_display(case.code, cards.language),
        agency=asked.name, since=format_datetime(task.created_at, cards.language),
        note=isolate(task.note[:300]),
    )  # fmt: skip
    if kind == "remind":
        if asked.chat_id is None:
            return 0
        payload: dict[str, object] = {"text": text}
        place = await card_place(session, task)
        if place is not None and place[0] == asked.chat_id:
            payload["reply_to_message_id"] = place[1]
        outbox.enqueue(
            session, chat_id=asked.chat_id, purpose=outbox.COORDINATOR_NOTICE, payload=payload,
            case_id=case.id, dedupe_key=key,
        )  # fmt: skip
        return 1
    county = settings.county_named(await county_of_neighbourhood(session, case.neighbourhood_id))
    for number, chat_id in enumerate(county.coordinator_chats()):
        outbox.enqueue(
            session, chat_id=chat_id, purpose=outbox.COORDINATOR_NOTICE, payload={"text": text},
            case_id=case.id, dedupe_key=key if number == 0 else f"{key}:{chat_id}",
        )  # fmt: skip
    return 1


async def await_text(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int,
    act: Act,
    case: Case,
    now: datetime,
    task: CaseTask | None = None,
    target_key: str | None = None,
) -> None:
    """Remember that this person owes a note (asking `target_key`) or a reason (declining
    `task`) in this chat; it replaces anything else they were asked to type there."""
    await casework.drop_input(session, user_id=user_id, chat_id=chat_id)
    session.add(
        PendingInput(
            user_id=user_id, chat_id=chat_id, kind=act.value, case_id=case.id,
            agency_key=task.to_agency_key if task is not None else case.agency_key,
            created_at=now, task_id=task.id if task is not None else None, target_key=target_key,
        )
    )  # fmt: skip


async def redact_task_cards(session: AsyncSession, *, case_ids: list[int], cards: Cards) -> None:
    """The task cards of these cases, whose reporter was just forgotten, show the case as it is
    now (the description already the marker, no phone)."""
    if not case_ids:
        return
    for task in await session.scalars(select(CaseTask).where(CaseTask.case_id.in_(case_ids))):
        await refresh_task_card(session, task, cards)
