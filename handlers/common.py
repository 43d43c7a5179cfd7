"""Handlers every role meets: /start, help, the unexpected, the stale, and errors."""

from __future__ import annotations

import contextlib
import logging
import time

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.cards import code_for_display
from bot.config import Settings
from bot.context import MahalleContext
from bot.deeplink import parse_start_payload
from bot.digits import ltr
from bot.ids import as_written
from bot.jalali import utcnow
from bot.persistence import SQLConversationPersistence, state_ahead
from bot.services import asking, handled, users
from bot.unit import Alongside, unit_of_this_task
from handlers import followup, keyboards, staff
from handlers.buttons import alert
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

ADMIN_QUIET_SECONDS = 60.0


def message_of(update: Update) -> Message:
    """The update's message (handlers are registered only where there is one)."""
    assert update.effective_message is not None
    return update.effective_message


def user_id_of(update: Update) -> int:
    """Who sent the update."""
    assert update.effective_user is not None
    return update.effective_user.id


def resident_conversation(settings: Settings) -> str:
    """The name of the residents' conversation: each bot of several keeps its own, as a person
    may write to two of them."""
    first = settings.serving == settings.bot_keys[0]
    return "resident" if first else f"resident-{settings.serving}"


def step_ahead(update: Update, context: MahalleContext, state: object) -> Alongside | None:
    """The residents' conversation's next state, for the step's own statement to write."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return None
    name = resident_conversation(context.runtime.settings)
    return state_ahead(name, (chat.id, user.id), state)


async def remember_user(update: Update, context: MahalleContext) -> None:
    """Create the user's row on first contact and remember their language for this process."""
    assert update.effective_user is not None
    async with context.autocommit() as session:  # a read; when new, a write whole in one
        user = await users.get_or_create_user(
            session=session, user_id=update.effective_user.id, language=context.language
        )
        await session.commit()
    context.remember_language(user.language)


async def start(update: Update, context: MahalleContext) -> None:
    """Welcome the user and show the main menu; read a deep-link payload if there is one."""
    assert update.effective_message is not None
    await remember_user(update, context)
    await _follow_deep_link(update, context)
    await update.effective_message.reply_text(
        context.t("welcome"), reply_markup=keyboards.main_menu(context.t)
    )


async def deep_link_mid_flow(update: Update, context: MahalleContext) -> None:
    """A staff invite or a group link opened in the middle of a report (or any other step): it
    is followed at once, and the step waits where it was."""
    assert update.effective_message is not None
    await _follow_deep_link(update, context)
    await update.effective_message.reply_text(context.t("flow-kept"))


async def _follow_deep_link(update: Update, context: MahalleContext) -> None:
    payload = parse_start_payload(context.args)
    if payload.kind == "join":
        await staff.join(update, context, payload.value)
    elif payload.kind == "grp":
        from handlers.groups import join as join_group  # groups builds on this module

        await join_group(update, context, payload.value)


async def chat_id(update: Update, context: MahalleContext) -> None:
    """`/chatid` in a group: the number to put in the config as an agency's chat_id."""
    assert update.effective_message is not None and update.effective_chat is not None
    number = as_written(update.effective_chat.id)  # the messenger's own, as the config takes it
    await update.effective_message.reply_text(context.t("chat-id", chat=ltr(str(number))))


async def show_help(update: Update, context: MahalleContext) -> None:
    """What the bot does, and the emergency numbers."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        context.t("help"), reply_markup=keyboards.main_menu(context.t)
    )


async def show_help_in_step(update: Update, context: MahalleContext) -> None:
    """The help, asked for in the middle of a step: the step's own keyboard stays (sharing a
    phone, a location, its choices), so the person carries on where they were."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(context.t("help"))


def unexpected_kind(message: Message) -> str:
    """The locale key that names what the user sent instead of what was asked for."""
    if message.forward_origin is not None:
        return "unexpected-forwarded"
    if message.video_note:
        return "unexpected-video-note"
    if message.voice or message.audio:
        return "unexpected-voice"
    if message.sticker or message.animation or message.dice:
        return "unexpected-sticker"
    if message.document or message.video:
        return "unexpected-file"
    if message.text and message.text.startswith("/"):
        return "unexpected-command"
    if message.text:
        return "unexpected-text"
    return "unexpected-other"


async def took_owed_step(update: Update, context: MahalleContext) -> bool:
    """Whether a private message was a step its sender owes here (a council secretary's, an
    agency's request to another, a clerk's question, note or reason), and was taken as such:
    whatever else it looks like (a tracking code, say), it is what they were asked for."""
    from handlers.cooperation import owed_step  # it imports this module
    from handlers.council import owed_step as owed_council_step

    return await owed_council_step(update, context) or await owed_step(update, context)


async def unexpected_outside_flow(update: Update, context: MahalleContext) -> None:
    """Anything in a private chat that no flow is waiting for: the step a staff member owes
    here, if any; else, to a reporter whose case waits for them, the answer taken from a reply
    or the buttons of what it waits for (`followup.owed_by_reporter`); else point to the menu."""
    message = update.effective_message
    assert message is not None
    if await took_owed_step(update, context):
        return
    if update.effective_user is not None:
        async with context.session() as session:
            asked = await asking.open_question(session, reporter_id=update.effective_user.id)
        if asked is not None:  # the question's buttons are what they are looking for
            code = code_for_display(asked, context.language)
            await message.reply_text(
                context.t(unexpected_kind(message)) + "\n" + context.t("expect-domain", code=code)
            )
            return
        if await followup.owed_by_reporter(update, context, context.t(unexpected_kind(message))):
            return
    where = context.t(
        "expect-menu",
        new_report=context.t("menu-new-report"),
        my_reports=context.t("menu-my-reports"),
    )
    await message.reply_text(
        context.t(unexpected_kind(message)) + "\n" + where,
        reply_markup=keyboards.main_menu(context.t),
    )


async def edited_message(update: Update, context: MahalleContext) -> None:
    """Edits are not read back into a report; say so instead of staying silent."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(context.t("edited-ignored"))
    raise ApplicationHandlerStop


async def stale_button(update: Update, context: MahalleContext) -> None:
    """A button from an old message, another flow, or forged data: nothing changes."""
    assert update.callback_query is not None
    await alert(update.callback_query, context.t("button-stale"))


# Presses a person may make in a window of bot.runtime.PRESS_WINDOW_SECONDS.
PRESSES_PER_WINDOW = 20


async def guard(update: Update, context: MahalleContext) -> None:
    """Before anything else: ignore blocked users and updates handled already; slow down
    button mashing and floods of messages."""
    runtime = context.runtime
    runtime.groups.learn(update.effective_chat)
    user = update.effective_user
    if user is None:
        return
    if user.id in runtime.banned:
        raise ApplicationHandlerStop
    chat = update.effective_chat
    several = len(runtime.siblings) > 1
    if (
        several
        and chat is not None
        and chat.type == ChatType.PRIVATE
        and user.id not in runtime.writers
    ):
        await _belongs_to_this_bot(user.id, context)
    try:
        if await _handled_already(update, context):
            log.info(
                "update %s of bot %s arrived again; it is handled once",
                update.update_id, runtime.settings.serving,
            )  # fmt: skip
            raise ApplicationHandlerStop
        if update.callback_query is not None:
            await _limit_presses(update.callback_query, user.id, context)
        elif user.id not in runtime.settings.coordinators:
            await _limit_messages(update, user.id, context)
    except UNREACHABLE:  # no database: the handlers say "try again" on their own
        log.warning("could not check an update's limits; the database is unreachable")


async def _belongs_to_this_bot(user_id: int, context: MahalleContext) -> None:
    """With several bots, a person is reached through the bot they last wrote to: noted on
    their first update to it since the process started or they wrote to another."""
    try:
        async with context.autocommit() as session:  # one statement, a write only on a change
            await users.write_to_bot(
                session=session, user_id=user_id, bot_key=context.runtime.bot_key,
                language=context.runtime.settings.bot.language,
            )  # fmt: skip
        context.runtime.wrote_here(user_id)  # their next updates note nothing
    except UNREACHABLE:
        log.warning("could not note which bot a person wrote to; the database is unreachable")


async def _handled_already(update: Update, context: MahalleContext) -> bool:
    """Whether the update was handled before (it arrived again); it is recorded as handled as
    its handling ends (bot/services/handled.py)."""
    key = context.runtime.handled_key(update.update_id)
    unit = unit_of_this_task()
    if unit is None:  # handled outside an update's unit: recorded at once
        async with context.autocommit() as session:  # one statement
            return not await handled.claim(session=session, update_id=key, now=utcnow())
    if key in context.runtime.handled_here:  # no statement: handled by this process
        return True
    if context.runtime.handled_here.may_be_elsewhere(key):
        async with context.autocommit() as session:  # one statement, after a takeover
            if await context.runtime.handled_here.handled_before(session=session, key=key):
                return True
    unit.to_record = unit.handled_key = key
    return False


async def _limit_presses(query: CallbackQuery, user_id: int, context: MahalleContext) -> None:
    """Count a button press; past the limit, say "slow down" in the button's box and stop."""
    if context.runtime.presses.count(user_id) > PRESSES_PER_WINDOW:
        # A message per press would answer a masher's flood with one of our own.
        await alert(query, context.t("slow-down"), unsaid_when_late=True)
        _dropped_unrecorded()
        raise ApplicationHandlerStop


async def _limit_messages(update: Update, user_id: int, context: MahalleContext) -> None:
    """Count a message of one person (in a group each member counts alone); past
    `[bot] updates_per_minute`, say "slow down" once in the minute and ignore the rest."""
    message = update.effective_message
    if message is None:
        return
    counted = context.runtime.messages.count(user_id)
    allowed = context.runtime.settings.bot.updates_per_minute
    if counted <= allowed:
        return
    if counted == allowed + 1:
        log.info(
            "user %s sent over %d messages in a minute; the rest are ignored", user_id, allowed
        )
        with contextlib.suppress(TelegramError):  # an answer lost in a flood is no loss
            await message.reply_text(context.t("slow-down-messages"))
    _dropped_unrecorded()
    raise ApplicationHandlerStop


def _dropped_unrecorded() -> None:
    """An update dropped for a flood is not written down as handled: a flood costs the
    database nothing. This process still knows it (sent again, it is dropped as handled);
    another that took the bot over would count it and drop it too."""
    unit = unit_of_this_task()
    if unit is not None:
        unit.to_record = None


async def persist_conversations(update: object, context: MahalleContext) -> None:
    """Write conversation states now rather than on PTB's timer, so a crash loses no step."""
    await context.application.update_persistence()
    persistence = context.application.persistence
    if isinstance(persistence, SQLConversationPersistence):
        await persistence.save_held()


# Bot API refusals that mean "nothing to do": an edit that changes nothing (a button pressed
# twice), a message that is gone, a button answered after Telegram stopped waiting.
_BENIGN = ("message is not modified", "message to edit not found", "query is too old")


def is_benign(error: object) -> bool:
    """Whether an error needs neither a log entry nor an apology."""
    return isinstance(error, BadRequest) and any(phrase in str(error).lower() for phrase in _BENIGN)


async def on_error(update: object, context: MahalleContext) -> None:
    """Log the error, tell the admin chat in one line, and the user politely; never a traceback."""
    error = context.error
    if is_benign(error):
        log.debug("ignored: %s", error)
        return
    if isinstance(error, Forbidden) and isinstance(update, Update) and update.effective_user:
        await _mark_blocked(context, update.effective_user.id)
        return
    log.error("error while handling an update", exc_info=error)
    settings = context.runtime.settings
    served = context.runtime.served_counties  # a bot of several tells its own county's
    county = settings.county_named(served[0] if served else None)
    # The admin chat is on the first bot's messenger: a bot on the other tells its coordinators.
    coordinators = county.coordinator_chats()
    admin_chat = coordinators[0] if coordinators else None
    if not settings.ids_apart(context.runtime.bot_key):
        admin_chat = settings.bot.admin_chat_id or county.coordinator_chat_id
    update_id = update.update_id if isinstance(update, Update) else None
    if admin_chat is not None and _admin_should_hear(context, type(error).__name__):
        line = context.t("error-admin-line", error=type(error).__name__, update=str(update_id))
        await _send_quietly(context, admin_chat, line)
    if (
        isinstance(update, Update)
        and update.effective_chat
        and update.effective_chat.type == "private"
    ):
        await _send_quietly(context, update.effective_chat.id, context.t("error-user"))


def _admin_should_hear(context: MahalleContext, kind: str) -> bool:
    """One line per kind of error a minute: a database outage fails every update at once."""
    told, now = context.runtime.admin_told, time.monotonic()
    if now - told.get(kind, -ADMIN_QUIET_SECONDS) < ADMIN_QUIET_SECONDS:
        return False
    told[kind] = now
    return True


async def _send_quietly(context: MahalleContext, chat_id: int, text: str) -> None:
    try:
        await context.bot.send_message(chat_id, text)
    except Exception:  # the error handler must not raise in turn
        log.warning("could not deliver an error notice to chat %s", chat_id, exc_info=True)


async def _mark_blocked(context: MahalleContext, user_id: int) -> None:
    try:
        async with context.session() as session:
            await users.mark_blocked(
                session=session, user_id=user_id, bot_key=context.runtime.bot_key
            )
    except Exception:
        log.warning("could not mark user %s as blocked", user_id, exc_info=True)
