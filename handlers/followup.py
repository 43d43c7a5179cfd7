"""The reporter after routing: answering an agency's question, "was it fixed?", and a rating."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.ext import ConversationHandler

from bot.cards import code_for_display, reporter_buttons
from bot.context import MahalleContext
from bot.jalali import utcnow
from bot.normalize import clean_text
from bot.rules import Act, Verdict, allowed_from
from bot.services import cases, casework
from bot.services.transitions import TransitionRefusedError
from handlers import keyboards
from handlers.buttons import acknowledge, alert, keyboard_removed, signed_case, tidying
from models.entities import Agency, Case

ANSWERING = "answering"
END = ConversationHandler.END
# The callback data of what a case waits for from its reporter: answer, fixed or not, rating.
OWED_PREFIXES = ("an:", "fx:", "rt:")
MAX_ANSWER = 2000


async def _own_case(
    query: CallbackQuery, context: MahalleContext, action: str, act: Act, *, case_at: int = 1
) -> tuple[list[str], Case] | None:
    """The signed parts and the case, if the data is genuine and the rules table lets the
    presser do `act` to it (it is theirs); the status is left to the step itself."""
    checked = await signed_case(query, context, action, case_at=case_at)
    if checked is None:
        return None
    async with context.session() as session:
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=act, case=checked[1],
            settings=context.runtime.settings,
        )  # fmt: skip
    if found is Verdict.NOT_YOURS:
        await alert(query, context.t("button-stale"))
        return None
    return checked


async def start_answer(update: Update, context: MahalleContext) -> object:
    """The reporter pressed "answer": their next message goes to the agency."""
    query = update.callback_query
    assert query is not None
    checked = await _own_case(query, context, "an", Act.ANSWER)
    if checked is None:
        return END
    _, case = checked
    if case.status not in allowed_from(Act.ANSWER):
        await alert(query, context.t("answer-not-needed"))
        return END
    async with context.session() as session:
        await casework.wait_for_input(
            session,
            user_id=query.from_user.id,
            chat_id=query.from_user.id,
            act=Act.ANSWER,
            case=case,
            now=utcnow(),
        )
        await session.commit()
    ask = context.bot.send_message(
        query.from_user.id,
        context.t("ask-answer", code=code_for_display(case.code, context.language)),
        reply_markup=keyboards.cancel_only(context.t),
    )
    await acknowledge(query, ask)
    return ANSWERING


async def finish_current_first(update: Update, context: MahalleContext) -> None:
    """ "Answer" pressed in the middle of another flow: that flow comes first."""
    assert update.callback_query is not None
    await alert(update.callback_query, context.t("finish-current-first"))


async def take_answer(update: Update, context: MahalleContext) -> object:
    """Relay the answer (text or a photo with an optional caption) to the agency."""
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    user_id = update.effective_user.id

    async def asked_about(session: AsyncSession) -> Case:
        """The case of the question whose "answer" was pressed."""
        pending = await casework.pending_input(session, user_id=user_id, chat_id=user_id)
        if pending is None:
            raise casework.StepRefusedError("answer-not-needed")
        return await casework.check_step(
            session, pending=pending, settings=context.runtime.settings, now=utcnow()
        )

    relayed = await _relay_answer(message, context, asked_about)
    return ANSWERING if relayed is None else END


async def _relay_answer(
    message: Message,
    context: MahalleContext,
    case_of: Callable[[AsyncSession], Awaitable[Case]],
) -> bool | None:
    """Relay `message` (text, or a photo with an optional caption) as the reporter's answer
    about the case `case_of` finds (raising StepRefusedError when none waits for it), and say
    what came of it. None when its length was refused (the answer is still awaited), else
    whether it was relayed; either way nothing is awaited any more."""
    assert message.from_user is not None
    user_id = message.from_user.id
    text = clean_text(message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None
    if not photo and not 2 <= len(text) <= MAX_ANSWER:
        await message.reply_text(context.t("answer-length", high=MAX_ANSWER))
        return None
    async with context.session() as session:
        try:
            case = await case_of(session)
            await casework.relay_answer(
                session, case=case, reporter_id=user_id, text=text or None, photo=photo,
                cards=context.runtime.card_renderer, now=utcnow(),
            )  # fmt: skip
        except (TransitionRefusedError, casework.StepRefusedError):
            await session.rollback()
            relayed = False
        else:
            relayed = True
        await casework.drop_input(session, user_id=user_id, chat_id=user_id)
        await session.commit()
    context.runtime.wake_outbox()
    said = "answer-sent" if relayed else "answer-not-needed"
    await message.reply_text(context.t(said), reply_markup=keyboards.main_menu(context.t))
    return relayed


async def cancel_answer(update: Update, context: MahalleContext) -> object:
    """Leave without answering; the question stays open."""
    assert update.effective_message is not None and update.effective_user is not None
    async with context.session() as session:
        await casework.drop_input(
            session, user_id=update.effective_user.id, chat_id=update.effective_user.id
        )
        await session.commit()
    await update.effective_message.reply_text(
        context.t("answer-cancelled"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


async def fixed_or_not(update: Update, context: MahalleContext) -> None:
    """ "Was it fixed?" answered: closed (then a rating), or reopened at the same agency."""
    query = update.callback_query
    assert query is not None
    fixed = (query.data or "").startswith("fx:y:")
    act = Act.CONFIRM_FIXED if fixed else Act.REPORT_UNFIXED
    checked = await _own_case(query, context, "fx", act, case_at=2)
    if checked is None:
        return
    _, case = checked
    async with context.session() as session:
        try:
            await casework.confirm_outcome(
                session,
                case=case,
                reporter_id=query.from_user.id,
                fixed=fixed,
                cards=context.runtime.card_renderer,
                now=utcnow(),
            )
        except TransitionRefusedError:
            await alert(query, context.t("already-answered"))
            return
        await session.commit()
    context.runtime.wake_outbox()
    await acknowledge(query, _owed_buttons_removed(query))


def _owed_buttons_removed(query: CallbackQuery) -> Awaitable[None]:
    """The pressed message without the buttons of what the case waited for from its reporter:
    on a notice, all of them; on a case's view in "my reports", its paging and way back stay."""
    markup = getattr(query.message, "reply_markup", None)
    rows = [
        list(row)
        for row in (markup.inline_keyboard if isinstance(markup, InlineKeyboardMarkup) else ())
        if not any(str(b.callback_data or "").startswith(OWED_PREFIXES) for b in row)
    ]
    if not rows:
        return keyboard_removed(query)
    return tidying(query.edit_message_reply_markup(reply_markup=InlineKeyboardMarkup(rows)))


async def rate(update: Update, context: MahalleContext) -> None:
    """A 1–5 rating for a closed case, kept once."""
    query = update.callback_query
    assert query is not None
    checked = await _own_case(query, context, "rt", Act.RATE)
    if checked is None:
        return
    (_, _, stars), case = checked
    async with context.session() as session:
        stored = await casework.rate(session, case=case, stars=int(stars))
        await session.commit()
    if not stored:
        await alert(query, context.t("already-answered"))
        return
    await acknowledge(query, _owed_buttons_removed(query))  # the thanks, once, as a message
    await context.bot.send_message(query.from_user.id, context.t("rating-thanks"))


async def owed_by_reporter(update: Update, context: MahalleContext, said: str) -> bool:
    """A message no flow waits for, from a reporter whose case waits for them: a reply to the
    bot's message about a case awaiting their answer is that answer, as if "answer" had been
    pressed first; anything else gets `said` and the buttons of what the case (the one
    replied about, else the latest) waits for. False when no case waits for them."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return False
    async with context.session() as session:
        waiting = await cases.waiting_on_reporter(session=session, reporter_id=user.id)
        about = _replied_case(message, context, waiting)
        case = about or (waiting[0] if waiting else None)
        agency = await session.get(Agency, case.agency_key) if case and case.agency_key else None
    if case is None:
        return False
    if about is not None and about.status in allowed_from(Act.ANSWER):
        await _answer_in_reply(message, context, about)
        return True
    code = code_for_display(case.code, context.language)
    name = agency.name if agency else ""
    if case.status in allowed_from(Act.ANSWER):
        expect = context.t(
            "expect-case-answer", agency=name, code=code, answer=context.t("button-answer")
        )
    else:
        expect = context.t(
            "expect-case-fixed", agency=name, code=code,
            yes=context.t("button-fixed-yes"), no=context.t("button-fixed-no"),
        )  # fmt: skip
    buttons = reporter_buttons(
        case.id,
        case.status,
        case.rating is not None,
        context.t,
        context.runtime.card_renderer.signer,
    )
    markup = InlineKeyboardMarkup.de_json(buttons, None) if buttons else None
    await message.reply_text(f"{said}\n{expect}", reply_markup=markup)
    return True


def _replied_case(message: Message, context: MahalleContext, waiting: list[Case]) -> Case | None:
    """The waiting case a reply to one of the bot's messages is about: the one it names."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
        return None
    words = replied.text or replied.caption or ""
    for case in waiting:
        if case.code in words or code_for_display(case.code, context.language) in words:
            return case
    return None


async def _answer_in_reply(message: Message, context: MahalleContext, waiting: Case) -> None:
    """Relay a reply to the agency's question as the reporter's answer."""
    assert message.from_user is not None
    user_id = message.from_user.id

    async def replied_about(session: AsyncSession) -> Case:
        """The case replied about, if it is still this reporter's to answer."""
        case = await session.get(Case, waiting.id, populate_existing=True)
        if case is None or await casework.verdict(
            session, user_id=user_id, act=Act.ANSWER, case=case,
            settings=context.runtime.settings,
        ) is Verdict.NOT_YOURS:  # fmt: skip
            raise casework.StepRefusedError("answer-not-needed")
        return case

    await _relay_answer(message, context, replied_about)
