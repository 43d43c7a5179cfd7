"""The reporter after routing: answering an agency's question, "was it fixed?", and a rating."""

from __future__ import annotations

from telegram import CallbackQuery, Update

from bot.cards import code_for_display
from bot.context import MahalleContext
from bot.jalali import utcnow
from bot.normalize import clean_text
from bot.rules import Act, Verdict, allowed_from
from bot.services import casework
from bot.services.transitions import TransitionRefusedError
from handlers import keyboards
from handlers.buttons import acknowledge, alert, keyboard_removed, signed_case
from handlers.report import END
from models.entities import Case

ANSWERING = "answering"
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
    text = clean_text(message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None
    if not photo and not 2 <= len(text) <= MAX_ANSWER:
        await message.reply_text(context.t("answer-length", high=MAX_ANSWER))
        return ANSWERING
    async with context.session() as session:
        pending = await casework.pending_input(session, user_id=user_id, chat_id=user_id)
        try:
            if pending is None:
                raise casework.StepRefusedError("answer-not-needed")
            case = await casework.check_step(
                session, pending=pending, settings=context.runtime.settings, now=utcnow()
            )
            await session.delete(pending)
            await casework.relay_answer(
                session,
                case=case,
                reporter_id=user_id,
                text=text or None,
                photo=photo,
                cards=context.runtime.card_renderer,
                now=utcnow(),
            )
        except (TransitionRefusedError, casework.StepRefusedError):
            await session.rollback()
            await casework.drop_input(session, user_id=user_id, chat_id=user_id)
            await session.commit()
            await message.reply_text(
                context.t("answer-not-needed"), reply_markup=keyboards.main_menu(context.t)
            )
            return END
        await session.commit()
    context.runtime.wake_outbox()
    await message.reply_text(context.t("answer-sent"), reply_markup=keyboards.main_menu(context.t))
    return END


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
    await acknowledge(query, keyboard_removed(query))


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
    thanks = context.t("rating-thanks")
    await acknowledge(query, keyboard_removed(query), toast=thanks)
    await context.bot.send_message(query.from_user.id, thanks)
