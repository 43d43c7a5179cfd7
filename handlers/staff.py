"""Agency staff: the buttons on a case card, the typed question/note/reason, and joining."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from telegram import CallbackQuery, ForceReply, InlineKeyboardMarkup, Update, User

from bot.cards import code_for_display, domain_picker
from bot.context import MahalleContext
from bot.digits import isolate
from bot.jalali import utcnow
from bot.services import casework, routing
from bot.services.transitions import TransitionRefusedError
from handlers.buttons import acknowledge, alert, already_done, close_with, refused, signed_case
from models.entities import Case

INPUT_KINDS = {"aq": "question", "rs": "resolve", "rj": "reject"}
PROMPT_KEYS = {
    "question": "prompt-question",
    "resolve": "prompt-resolve",
    "reject": "prompt-reject",
}
MAX_NOTE = 1000


def display_name(user: User) -> str:
    """How a staff member is named on cards and in "already done by …"."""
    return user.full_name[:64] or str(user.id)


def _markup(payload: dict[str, Any]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup.de_json(payload["reply_markup"], None)


async def _verified_case(
    query: CallbackQuery, context: MahalleContext, action: str, *, case_at: int
) -> tuple[list[str], Case] | None:
    """The signed parts and the case, once the signature and the presser's rights check out."""
    checked = await signed_case(query, context, action, case_at=case_at)
    if checked is None:
        return None
    async with context.session() as session:
        allowed = await casework.may_act(
            session, user_id=query.from_user.id, case=checked[1], settings=context.runtime.settings
        )
    if not allowed:
        await alert(query, context.t("not-your-agency"))
        return None
    return checked


async def case_button(update: Update, context: MahalleContext) -> None:
    """Accept, ask, resolve, reject or reroute, pressed on an agency card."""
    query = update.callback_query
    assert query is not None
    checked = await _verified_case(query, context, "cs", case_at=2)
    if checked is None:
        return
    (_, action, _), case = checked
    cards = context.runtime.card_renderer
    async with context.session() as session:
        if action == "ac":
            try:
                await casework.accept(
                    session,
                    case=case,
                    actor_id=query.from_user.id,
                    actor_name=display_name(query.from_user),
                    cards=cards,
                    now=utcnow(),
                )
            except TransitionRefusedError as error:
                await refused(query, context, error)
                return
            await session.commit()
            card = cards.agency(await routing.case_view(session, case.id))
        elif action in INPUT_KINDS:
            await casework.wait_for_input(
                session,
                user_id=query.from_user.id,
                chat_id=query.message.chat.id if query.message else 0,
                kind=INPUT_KINDS[action],
                case=case,
            )
            await session.commit()
        elif action == "ro":
            choices = await routing.domain_choices(session, leave_out=case.domain_key)
        else:  # "bk": back from the reroute picker
            card = cards.agency(await routing.case_view(session, case.id))
    context.runtime.wake_outbox()
    change: Awaitable[object]
    if action in INPUT_KINDS:
        change = _prompt(query, context, INPUT_KINDS[action], case)
    elif action == "ro":
        change = query.edit_message_reply_markup(
            reply_markup=_domain_picker(context, case.id, choices)
        )
    else:
        change = query.edit_message_text(card["text"], reply_markup=_markup(card))
    await acknowledge(query, change)


def _domain_picker(
    context: MahalleContext, case_id: int, choices: list[tuple[str, str]]
) -> InlineKeyboardMarkup:
    cards = context.runtime.card_renderer
    return InlineKeyboardMarkup.de_json(
        domain_picker(case_id, choices, cards.signer, action="cd", back="bk", t=cards.t), None
    )


async def _prompt(query: CallbackQuery, context: MahalleContext, kind: str, case: Case) -> None:
    """Ask the staff member to type the question, note or reason as a reply."""
    assert query.message is not None
    text = context.t(
        PROMPT_KEYS[kind],
        name=isolate(display_name(query.from_user)),
        code=code_for_display(case.code, context.language),
    )
    await context.bot.send_message(
        query.message.chat.id,
        text,
        reply_markup=ForceReply(selective=True),
        reply_to_message_id=query.message.message_id,
    )


async def reroute_to(update: Update, context: MahalleContext) -> None:
    """A domain picked from the reroute picker: the case goes to that domain's agency."""
    query = update.callback_query
    assert query is not None
    checked = await _verified_case(query, context, "cd", case_at=1)
    if checked is None:
        return
    (_, _, domain_key), case = checked
    name = display_name(query.from_user)
    async with context.session() as session:
        try:
            await routing.reroute(
                session,
                case=case,
                domain_key=domain_key,
                actor_id=query.from_user.id,
                actor_name=name,
                cards=context.runtime.card_renderer,
                now=utcnow(),
            )
        except TransitionRefusedError as error:
            await refused(query, context, error)
            return
        await session.commit()
        view = await routing.case_view(session, case.id)
    context.runtime.wake_outbox()
    away = context.t("card-rerouted-away", agency=view.agency_name, name=isolate(name))
    await close_with(query, away)


async def staff_input(update: Update, context: MahalleContext) -> None:
    """A message in an agency chat: if its author owes a question, note or reason, apply it."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or not message.text:
        return
    async with context.session() as session:
        pending = await casework.pending_input(session, user_id=user.id, chat_id=message.chat.id)
        if pending is None:
            return  # ordinary group chatter
        text = message.text.strip()
        if not 2 <= len(text) <= MAX_NOTE:
            await message.reply_text(context.t("note-length", high=MAX_NOTE))
            return
        try:
            case = await casework.finish_input(
                session,
                pending=pending,
                text=text,
                actor_name=display_name(user),
                cards=context.runtime.card_renderer,
                now=utcnow(),
            )
        except TransitionRefusedError as error:
            await session.rollback()
            await casework.drop_input(session, user_id=user.id, chat_id=message.chat.id)
            await session.commit()
            await message.reply_text(already_done(context, error))
            return
        await session.commit()
    context.runtime.wake_outbox()
    await message.reply_text(
        context.t("input-applied", code=code_for_display(case.code, context.language))
    )


async def join(update: Update, context: MahalleContext, token: str) -> None:
    """`/start join_<token>`: become staff of the invite's agency, once."""
    assert update.effective_message is not None and update.effective_user is not None
    async with context.session() as session:
        agency = await casework.redeem_invite(
            session,
            token=token,
            user_id=update.effective_user.id,
            name=display_name(update.effective_user),
            now=utcnow(),
        )
        await session.commit()
    if agency is None:
        await update.effective_message.reply_text(context.t("join-invalid"))
    else:
        await update.effective_message.reply_text(context.t("join-welcome", agency=agency.name))
