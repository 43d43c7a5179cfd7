"""Several agencies on one case: the lead's «ask another agency» picker, the asked agency's task
card (accept, done, cannot), withdrawing a request, and the typed note or reason.

A typed note or reason is asked for in the presser's private chat with the bot and taken from
their next message there, as the case's own typed steps are (handlers/staff.py); the rules
table is asked again when the text arrives (bot/services/tasks.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop

from bot.cards import BACK, CASE_PREFIX, SECOND_PREFIX, TASK_PREFIX, code_for_display
from bot.context import MahalleContext
from bot.jalali import as_utc, utcnow
from bot.rules import Act, Role, Verdict
from bot.services import casework, routing, tasks
from bot.services.taskview import second_agency_to_ask
from bot.services.transitions import TransitionRefusedError
from handlers import staff
from handlers.buttons import acknowledge, alert, already_done, refused, tidying
from models.entities import Agency, Case, CaseTask, Domain, PendingInput, TaskEvent

PICK_PREFIX = "task-to"  # `task-to:<case id>:<agency key>`: ask that agency
CANCEL_PREFIX = "task-x"  # `task-x:<task id>`: withdraw that request
TASK_ACTS = {Act.TASK_ACCEPT, Act.TASK_DONE, Act.TASK_CANNOT}
TYPED = {Act.COOPERATE.value, Act.TASK_CANNOT.value}
_REFUSALS = {Verdict.NOT_YOURS: "not-your-agency", Verdict.NOT_NOW: "task-case-not-open"}
PROMPTS = {Act.COOPERATE: "prompt-cooperate", Act.TASK_CANNOT: "prompt-task-cannot"}


def _button(text: str, data: str) -> dict[str, str]:
    return {"text": text, "callback_data": data}


async def open_picker(update: Update, context: MahalleContext) -> None:
    """«Ask another agency» on the lead's card (`case:cooperate:<case id>`): the county's other
    agencies, a way to withdraw each open request, and back to the card."""
    query = update.callback_query
    assert query is not None
    signer = context.runtime.card_renderer.signer
    parts = signer.verify(query.data)
    if parts is None or len(parts) != 3 or not parts[2].isdigit():
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        case = await casework.get_case(session, int(parts[2]))
        if case is None:
            await alert(query, context.t("button-stale"))
            return
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=Act.COOPERATE, case=case,
            settings=context.runtime.settings,
        )  # fmt: skip
        if found is not Verdict.ALLOWED:
            await alert(query, context.t(_REFUSALS[found]))
            return
        choices = await tasks.agencies_to_ask(session, case=case)
        asked = await tasks.open_tasks(session, case_id=case.id)
    buttons = [_button(name, signer.sign(PICK_PREFIX, case.id, key)) for key, name in choices]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows += [
        [_button(context.t("button-task-cancel", agency=name), signer.sign(CANCEL_PREFIX, t.id))]
        for t, name in asked
    ]
    rows.append([_button(context.t("button-back"), signer.sign(CASE_PREFIX, BACK, case.id))])
    markup = InlineKeyboardMarkup.de_json({"inline_keyboard": rows}, None)
    await acknowledge(query, query.edit_message_reply_markup(reply_markup=markup))


async def pick_agency(update: Update, context: MahalleContext) -> None:
    """An agency picked to ask: the card comes back, and the presser is asked for the note."""
    query = update.callback_query
    assert query is not None and query.message is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 3 or parts[0] != PICK_PREFIX or not parts[1].isdigit():
        await alert(query, context.t("button-stale"))
        return
    target = parts[2]
    cards = context.runtime.card_renderer
    async with context.session() as session:
        case = await casework.get_case(session, int(parts[1]))
        if case is None:
            await alert(query, context.t("button-stale"))
            return
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=Act.COOPERATE, case=case,
            settings=context.runtime.settings,
        )  # fmt: skip
        if found is not Verdict.ALLOWED:
            await alert(query, context.t(_REFUSALS[found]))
            return
        names = dict(await tasks.agencies_to_ask(session, case=case))
        if target not in names:
            await alert(query, context.t("task-agency-not-offered"))
            return
        await tasks.await_text(
            session, user_id=query.from_user.id, chat_id=query.from_user.id,
            act=Act.COOPERATE, case=case, now=utcnow(), target_key=target,
        )  # fmt: skip
        await session.commit()
        card = cards.agency(await routing.case_view(session, case.id))
    markup = InlineKeyboardMarkup.de_json(card["reply_markup"], None)
    await tidying(query.edit_message_reply_markup(reply_markup=markup))
    await _prompt(query, context, Act.COOPERATE, case, agency=names[target])


async def ask_second(update: Update, context: MahalleContext) -> None:
    """«Ask <agency> too» on the lead's card, for the second domain the report also concerns:
    the request goes in one press, its note saying why."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 2 or parts[0] != SECOND_PREFIX or not parts[1].isdigit():
        await alert(query, context.t("button-stale"))
        return
    settings, cards = context.runtime.settings, context.runtime.card_renderer
    name = staff.display_name(query.from_user)
    async with context.session() as session:
        case = await casework.get_case(session, int(parts[1]))
        second = await second_agency_to_ask(session, case) if case else None
        if case is None or second is None:
            await alert(query, context.t("button-stale"))
            return
        roles = await casework.roles_of(
            session, user_id=query.from_user.id, case=case, settings=settings
        )
        domain = await session.get(Domain, case.second_domain_key)
        note = context.t("task-note-second", domain=domain.title if domain else "")
        try:
            await tasks.ask_agency(
                session=session, case_id=case.id,
                from_agency_key=case.agency_key if Role.STAFF in roles else None,
                to_agency_key=second[0], note=note, by_user_id=query.from_user.id, by_name=name,
                cards=cards, settings=settings, now=utcnow(),
            )  # fmt: skip
        except tasks.TaskRefusedError as error:
            await session.rollback()
            await alert(query, context.t(error.reason, **error.values))
            return
        await session.commit()
        card = cards.agency(await routing.case_view(session, case.id))
    context.runtime.wake_outbox()
    markup = InlineKeyboardMarkup.de_json(card["reply_markup"], None)
    code = code_for_display(case.code, context.language)
    await acknowledge(
        query,
        query.edit_message_text(card["text"], reply_markup=markup),
        toast=context.t("task-asked", agency=second[1], code=code),
    )


async def cancel_request(update: Update, context: MahalleContext) -> None:
    """The lead or a coordinator withdraws a request; the asked agency is told."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 2 or parts[0] != CANCEL_PREFIX or not parts[1].isdigit():
        await alert(query, context.t("button-stale"))
        return
    await _work(query, context, int(parts[1]), Act.TASK_CANCEL)


async def task_button(update: Update, context: MahalleContext) -> None:
    """Accept, done or cannot, pressed on a task card in the asked agency's chat."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    act = next((a for a in TASK_ACTS if parts and len(parts) == 3 and a == parts[1]), None)
    if parts is None or act is None or parts[0] != TASK_PREFIX or not parts[2].isdigit():
        await alert(query, context.t("button-stale"))
        return
    await _work(query, context, int(parts[2]), act)


async def _work(query: CallbackQuery, context: MahalleContext, task_id: int, act: Act) -> None:
    """A task's button: refused with nothing changed unless the rules table allows it now;
    `cannot` asks for the reason first."""
    settings, cards = context.runtime.settings, context.runtime.card_renderer
    async with context.session() as session:
        task = await tasks.get_task(session, task_id)
        case = await casework.get_case(session, task.case_id) if task else None
        if task is None or case is None:
            await alert(query, context.t("button-stale"))
            return
        found = await tasks.task_verdict(
            session, user_id=query.from_user.id, act=act, task=task, case=case, settings=settings
        )
        if found is Verdict.NOT_YOURS:
            await alert(query, context.t("task-not-yours"))
            return
        if found is Verdict.NOT_NOW:
            await refused(query, context, await _who_moved(session, task))
            return
        if act is Act.TASK_CANNOT:
            assert query.message is not None
            await tasks.await_text(
                session, user_id=query.from_user.id, chat_id=query.from_user.id, act=act,
                case=case, now=utcnow(), task=task,
            )  # fmt: skip
            await session.commit()
            await _prompt(query, context, act, case)
            return
        try:
            task = await tasks.work_on(
                session, task=task, act=act, actor_id=query.from_user.id,
                actor_name=staff.display_name(query.from_user), cards=cards, settings=settings,
                now=utcnow(), pressed_on="lead" if act is Act.TASK_CANCEL else "task",
            )  # fmt: skip
        except TransitionRefusedError as error:
            await refused(query, context, error)
            return
        await session.commit()
        if act is Act.TASK_CANCEL:  # pressed in the picker on the lead's card
            card = cards.agency(await routing.case_view(session, case.id))
        else:
            card = cards.task(await tasks.task_view(session, task, cards))
    context.runtime.wake_outbox()
    markup = InlineKeyboardMarkup.de_json(card["reply_markup"], None)
    await acknowledge(query, query.edit_message_text(card["text"], reply_markup=markup))


async def _who_moved(session: AsyncSession, task: CaseTask) -> TransitionRefusedError:
    """The refusal a press too late gets: who moved the task last."""
    latest = await session.scalar(
        select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id.desc())
    )
    return TransitionRefusedError(task.status, latest.actor_name if latest else None)


async def _prompt(
    query: CallbackQuery, context: MahalleContext, act: Act, case: Case, agency: str = ""
) -> None:
    """Ask for the note or reason, in the presser's private chat (`staff.ask_privately`)."""
    text = context.t(
        PROMPTS[act],
        code=code_for_display(case.code, context.language),
        agency=agency,
        minutes=context.runtime.settings.staff.input_minutes,
    )
    await staff.ask_privately(query, context, text)


async def owed_step(update: Update, context: MahalleContext) -> bool:
    """A message in someone's private chat with the bot: the note or reason a task step waits
    for, else a case's typed step (`staff.owed_step`); True when it was either. A reply to an
    older prompt of the bot's is refused (it meant another step); /cancel drops the step."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.chat.type != ChatType.PRIVATE:
        return False
    async with context.session() as session:
        pending = await casework.pending_input(session, user_id=user.id, chat_id=message.chat.id)
        if pending is not None and pending.kind in TYPED and staff.is_cancel(message):
            await session.delete(pending)
            await session.commit()
            await message.reply_text(context.t("step-cancelled"))
            return True
    if pending is None or pending.kind not in TYPED:
        return await staff.owed_step(update, context)
    replied = message.reply_to_message
    other = replied is not None and replied.message_id != pending.prompt_message_id
    if (
        other
        and replied is not None
        and replied.from_user
        and replied.from_user.id == context.bot.id
    ):
        await message.reply_text(context.t("step-replaced"))  # an older prompt
        return True
    await _take_text(message, user.id, staff.display_name(user), pending, context)
    return True


async def reply_to_prompt(update: Update, context: MahalleContext) -> None:
    """A reply in a private chat, before any flow sees it: the step its author owes, if that
    is what it answers (else the flows go on as usual)."""
    if await owed_step(update, context):
        raise ApplicationHandlerStop


async def _take_text(
    message: Message, user_id: int, name: str, pending: PendingInput, context: MahalleContext
) -> None:
    """Apply the note (asking an agency) or reason (cannot), if it still may be."""
    settings = context.runtime.settings
    text = tasks.check_note(message.text or "")
    if text is None:
        await message.reply_text(context.t("note-length", high=tasks.MAX_NOTE))
        return
    act, now = Act(pending.kind), utcnow()
    async with context.session() as session:
        pending = await session.merge(pending)
        await session.delete(pending)
        try:
            if now - as_utc(pending.created_at) > timedelta(minutes=settings.staff.input_minutes):
                raise tasks.TaskRefusedError("step-expired")
            reply = await _apply(session, act, pending, text, user_id, name, context, now)
        except (tasks.TaskRefusedError, TransitionRefusedError) as error:
            await session.rollback()
            await casework.drop_input(session, user_id=user_id, chat_id=message.chat.id)
            await session.commit()
            if isinstance(error, TransitionRefusedError):
                await message.reply_text(already_done(context, error))
            else:
                await message.reply_text(context.t(error.reason, **error.values))
            return
        await session.commit()
    context.runtime.wake_outbox()
    await message.reply_text(reply)


async def _apply(
    session: AsyncSession,
    act: Act,
    pending: PendingInput,
    text: str,
    user_id: int,
    name: str,
    context: MahalleContext,
    now: datetime,
) -> str:
    """The task step itself; what the person is told it did."""
    settings, cards = context.runtime.settings, context.runtime.card_renderer
    case = await session.get(Case, pending.case_id, populate_existing=True)
    if case is None:
        raise tasks.TaskRefusedError("step-case-gone")
    code = code_for_display(case.code, context.language)
    if act is Act.COOPERATE:
        if case.agency_key != pending.agency_key:
            raise tasks.TaskRefusedError("step-case-moved")
        lead = await casework.roles_of(session, user_id=user_id, case=case, settings=settings)
        from_key = case.agency_key if Role.STAFF in lead else None
        assert pending.target_key is not None
        created = await tasks.ask_agency(
            session=session, case_id=case.id, from_agency_key=from_key,
            to_agency_key=pending.target_key, note=text, by_user_id=user_id, by_name=name,
            cards=cards, settings=settings, now=now,
        )  # fmt: skip
        asked = await session.get(Agency, created.to_agency_key)
        return context.t("task-asked", agency=asked.name if asked else "", code=code)
    task = await tasks.get_task(session, pending.task_id or 0)
    if task is None:
        raise tasks.TaskRefusedError("step-case-gone")
    await tasks.work_on(
        session, task=task, act=act, actor_id=user_id, actor_name=name, cards=cards,
        settings=settings, now=now, note=text,
    )  # fmt: skip
    return context.t("task-cannot-noted", code=code)
