"""Agency staff: the buttons on a case card, the typed question/note/reason, and joining.

A typed step (a question for the reporter, a resolution note, a reason for rejecting) is asked
for in the clerk's private chat with the bot, not in the agency group: there the next message
is theirs alone, so it is taken without reply threading (which Bale's clients may not keep) and
whatever the group's privacy setting lets the bot read. Invited staff have that chat already:
joining starts it."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, ForceReply, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden

from bot.cards import BACK, CASE_PREFIX, REROUTE_PREFIX, code_for_display, domain_picker
from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import fit
from bot.ids import as_written
from bot.jalali import utcnow
from bot.rules import CARD_ORDER, Act, Verdict
from bot.services import casework, outbox, routing, tasks
from bot.services.cases import visible_count
from bot.services.transitions import TransitionRefusedError, last_event
from handlers.buttons import acknowledge, alert, case_moved_on, close_with, refused_on_case
from models.entities import Case

# Old two-letter callback words, still on cards sent before the acts were named.
LEGACY_ACTS = {"ac": "accept", "aq": "ask", "rs": "resolve", "rj": "reject", "ro": "reroute"}
LEGACY_PREFIXES = {"cs": CASE_PREFIX, "cd": REROUTE_PREFIX}
PROMPT_KEYS = {
    Act.ASK: "prompt-question",
    Act.RESOLVE: "prompt-resolve",
    Act.REJECT: "prompt-reject",
}
MAX_NOTE = 1000
# Typed steps that end the case at its agency: requests to other agencies still open close.
ENDING = {Act.RESOLVE, Act.REJECT}


def display_name(user: User) -> str:
    """How a staff member is named on cards and in "already done by …"."""
    return user.full_name[:64] or str(as_written(user.id))


def _markup(payload: dict[str, Any]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup.de_json(payload["reply_markup"], None)


async def _case_press(
    query: CallbackQuery, context: MahalleContext, prefix: str
) -> tuple[str, Case, list[str]] | None:
    """The pressed word (an act, or `back`), the case and the signed parts, once the signature
    checks out and the rules table lets this person do it to the case as it is now; else None,
    after saying why. Data: `case:<act>:<case id>` or `case-to:<case id>:<domain>`."""
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 3 or LEGACY_PREFIXES.get(parts[0], parts[0]) != prefix:
        await alert(query, context.t("button-stale"))
        return None
    if prefix == CASE_PREFIX:
        word, case_id = LEGACY_ACTS.get(parts[1], parts[1]), parts[2]
    else:
        word, case_id = Act.REROUTE.value, parts[1]
    act = Act.REROUTE if word == BACK else next((a for a in CARD_ORDER if a == word), None)
    async with context.session() as session:
        case = await casework.get_case(session, int(case_id)) if case_id.isdigit() else None
        if act is None or case is None:
            await alert(query, context.t("button-stale"))
            return None
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=act, case=case,
            settings=context.runtime.settings,
        )  # fmt: skip
        if found is Verdict.NOT_YOURS:
            await alert(query, context.t("not-your-agency"))
            return None
        if act is Act.ASK and case.reporter_id is None:
            await alert(query, context.t("reporter-gone"))
            return None
        if found is Verdict.NOT_NOW and word != BACK:
            latest = await last_event(session, case.id)
            who = latest.actor_name if latest else None
            await refused_on_case(query, context, TransitionRefusedError(case.status, who))
            return None
    return word, case, parts


async def case_button(update: Update, context: MahalleContext) -> None:
    """Accept, ask, resolve, reject or reroute, pressed on an agency card."""
    query = update.callback_query
    assert query is not None
    pressed = await _case_press(query, context, CASE_PREFIX)
    if pressed is None:
        return
    word, case, _ = pressed
    cards = context.runtime.card_renderer
    async with context.session() as session:
        if word == Act.ACCEPT:
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
                await refused_on_case(query, context, error)
                return
            await session.commit()
            card = cards.agency(await routing.case_view(session, case.id))
        elif word in PROMPT_KEYS:
            await casework.wait_for_input(
                session,
                user_id=query.from_user.id,
                chat_id=query.from_user.id,  # asked in their private chat with the bot
                act=Act(word),
                case=case,
                now=utcnow(),
            )
            await session.commit()
        elif word == Act.REROUTE:
            choices = await routing.domain_choices(session, leave_out=case.domain_key)
        else:  # back from the reroute picker
            card = cards.agency(await routing.case_view(session, case.id))
    context.runtime.wake_outbox()
    if word in PROMPT_KEYS:
        await _prompt(query, context, Act(word), case)
        return
    change: Awaitable[object]
    if word == Act.REROUTE:
        change = query.edit_message_reply_markup(
            reply_markup=_domain_picker(context, case.id, choices, on_card=_on_card(query, case))
        )
    else:
        change = query.edit_message_text(card["text"], reply_markup=_markup(card))
    await acknowledge(query, change)


def _domain_picker(
    context: MahalleContext, case_id: int, choices: list[tuple[str, str]], *, on_card: bool
) -> InlineKeyboardMarkup:
    """The domains to reroute to; "back" (to the card's buttons) only on the card itself."""
    cards = context.runtime.card_renderer
    back = BACK if on_card else None
    return InlineKeyboardMarkup.de_json(
        domain_picker(case_id, choices, cards.signer, action=REROUTE_PREFIX, back=back, t=cards.t),
        None,
    )


def _on_card(query: CallbackQuery, case: Case) -> bool:
    """Whether the pressed message is the case's card (not a coordinator's view of the case)."""
    shown = query.message
    return shown is not None and (shown.chat.id, shown.message_id) == (
        case.card_chat_id,
        case.card_message_id,
    )


async def _prompt(query: CallbackQuery, context: MahalleContext, act: Act, case: Case) -> None:
    """Ask the staff member for the question, note or reason (`ask_privately`)."""
    text = context.t(
        PROMPT_KEYS[act],
        code=code_for_display(case.code, context.language),
        minutes=context.runtime.settings.staff.input_minutes,
    )
    await ask_privately(query, context, text)


async def ask_privately(query: CallbackQuery, context: MahalleContext, text: str) -> None:
    """Ask the presser for the text they owe (already waited for in their private chat) in
    their private chat with the bot, where their next message is taken for it: no reply
    threading needed, and no group privacy setting in the way, on Telegram and Bale alike. The
    press is answered with where to look, or, when the bot cannot write to them, how to let it."""
    user_id = query.from_user.id
    try:
        prompt = await context.bot.send_message(user_id, text, reply_markup=ForceReply())
    except (Forbidden, BadRequest):  # never started the bot, or blocked it
        async with context.session() as session:
            await casework.drop_input(session, user_id=user_id, chat_id=user_id)
            await session.commit()
        await alert(query, context.t("prompt-start-bot-first"))
        return
    async with context.session() as session:
        await casework.set_prompt(
            session, user_id=user_id, chat_id=user_id, message_id=prompt.message_id
        )
        await session.commit()
    private = query.message is not None and query.message.chat.type == ChatType.PRIVATE
    if private:
        await acknowledge(query)
    else:
        await alert(query, context.t("prompt-sent-privately"))


async def reroute_to(update: Update, context: MahalleContext) -> None:
    """A domain picked from the reroute picker: the case goes to that domain's agency."""
    query = update.callback_query
    assert query is not None
    pressed = await _case_press(query, context, REROUTE_PREFIX)
    if pressed is None:
        return
    _, case, parts = pressed
    domain_key = parts[2]
    name = display_name(query.from_user)
    card = None if _on_card(query, case) else (case.card_chat_id, case.card_message_id)
    async with context.session() as session:
        before = await routing.case_view(session, case.id)
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
            await refused_on_case(query, context, error)
            return
        # What the former lead asked of other agencies goes with it: the new lead asks anew.
        await tasks.wind_up(
            session, case=case, why=context.t("task-why-case-rerouted"),
            actor_id=query.from_user.id, actor_name=name, cards=context.runtime.card_renderer,
            now=utcnow(),
        )  # fmt: skip
        view = await routing.case_view(session, case.id)
        away = context.t("card-rerouted-away", agency=view.agency_name, name=isolate(name))
        if card is not None and card[0] is not None and card[1] is not None:
            # Rerouted from a coordinator's view: the card in the former agency's chat says so,
            # its buttons gone (an edit that fails changes nothing else, as a notice's).
            old = context.runtime.card_renderer.agency(before)["text"]
            outbox.enqueue(
                session, chat_id=card[0], purpose=outbox.COORDINATOR_NOTICE,
                method="editMessageText",
                payload={"message_id": card[1], "text": fit(lambda t: f"{t}\n\n{away}", old)},
                case_id=case.id,
            )  # fmt: skip
        await session.commit()
    context.runtime.wake_outbox()
    await close_with(query, away)


async def owed_step(update: Update, context: MahalleContext) -> bool:
    """A staff member's message in their private chat, taken for the question, note or reason
    they owe there (see `casework.check_step`), if they owe one; True when it was. A reply to
    an older prompt of the bot's is refused (it meant another case); /cancel drops the step."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or message.chat.type != ChatType.PRIVATE:
        return False
    async with context.session() as session:
        pending = await casework.pending_input(session, user_id=user.id, chat_id=message.chat.id)
        if pending is None or pending.kind not in {act.value for act in PROMPT_KEYS}:
            return False
        replied = message.reply_to_message
        if is_cancel(message):
            await session.delete(pending)
            await session.commit()
            await message.reply_text(context.t("step-cancelled"))
            return True
        other_prompt = replied is not None and replied.message_id != pending.prompt_message_id
        if other_prompt and replied is not None and _from_this_bot(replied, context):
            await message.reply_text(context.t("step-replaced"))
            return True
        text = (message.text or "").strip()
        if not message.text or not visible_count(text) >= 2 or len(text) > MAX_NOTE:
            await message.reply_text(context.t("note-length", high=MAX_NOTE))
            return True
        ending = Act(pending.kind) in ENDING
        try:
            case = await casework.finish_input(
                session,
                pending=pending,
                text=text,
                actor_name=display_name(user),
                cards=context.runtime.card_renderer,
                settings=context.runtime.settings,
                now=utcnow(),
            )
        except (TransitionRefusedError, casework.StepRefusedError) as error:
            await session.rollback()
            await casework.drop_input(session, user_id=user.id, chat_id=message.chat.id)
            await session.commit()
            if isinstance(error, TransitionRefusedError):
                await message.reply_text(case_moved_on(context, error))
            else:
                await message.reply_text(context.t(error.reason))
            return True
        closed = await _wind_up(session, case, user, context) if ending else []
        await session.commit()
    context.runtime.wake_outbox()
    told = "input-applied" if case.reporter_id is not None else "input-applied-unheard"
    await message.reply_text(context.t(told, code=code_for_display(case.code, context.language)))
    if closed:
        lines = [context.t("task-closed-line", agency=c.agency) for c in closed]
        await message.reply_text("\n".join([context.t("task-closed-with-case"), *lines]))
    return True


async def _wind_up(
    session: AsyncSession, case: Case, user: User, context: MahalleContext
) -> list[tasks.Closed]:
    """A case resolved or rejected by its lead: its open requests to other agencies close."""
    return await tasks.wind_up(
        session, case=case, why=context.t("task-why-case-ended"), actor_id=user.id,
        actor_name=display_name(user), cards=context.runtime.card_renderer, now=utcnow(),
    )  # fmt: skip


def is_cancel(message: Message) -> bool:
    """Whether the message is /cancel (or /cancel@<bot>)."""
    words = (message.text or "").split()
    return bool(words) and words[0].split("@")[0] == "/cancel"


def _from_this_bot(message: Message, context: MahalleContext) -> bool:
    """Whether the bot itself sent `message`."""
    return message.from_user is not None and message.from_user.id == context.bot.id


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
