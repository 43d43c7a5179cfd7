"""Checking signed buttons (agency cards, triage, follow-ups, broadcasts, groups, staff)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from telegram import CallbackQuery, InlineKeyboardMarkup, Message
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden

from bot.bale import shows_no_answers
from bot.cards import status_key
from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import ALERT_LIMIT, fit, within
from bot.services import casework
from bot.services.transitions import CaseMovedError, TransitionRefusedError
from models.entities import Case

log = logging.getLogger(__name__)


async def acknowledge(
    query: CallbackQuery, change: Awaitable[object] | None = None, *, toast: str | None = None
) -> None:
    """Stop the button's spinner (showing `toast` a moment, if given) and make the change to its
    message, both at once.

    Neither shows in the chat's order of messages, so neither waits for the other: a round trip
    to Telegram less on every press. A press handled after Telegram stopped waiting for its
    answer (a backlog, a restart) has no spinner left to stop; the step goes on all the same,
    so the resident still hears what came of it.
    """
    await asyncio.gather(_stop_spinner(query, toast), *([change] if change is not None else []))


def keyboard_removed(query: CallbackQuery) -> Awaitable[None]:
    """The pressed message's buttons removed, as tidying (see `tidying`)."""
    return tidying(query.edit_message_reply_markup(reply_markup=None))


async def tidying(change: Awaitable[object]) -> None:
    """Make a change to the pressed message that only tidies it (its buttons gone, the choice
    shown in it). Every press is checked anyway and the step's own messages follow, so a message
    that cannot be changed (deleted meanwhile, already without buttons) stops nothing: after a
    committed report, the tracking code is still told."""
    try:
        await change
    except BadRequest as error:
        log.debug("the pressed message stays as it was: %s", error)


async def close_with(query: CallbackQuery, line: str) -> None:
    """Stop the spinner and end the pressed message with `line` (who did what), its buttons
    gone: the message stays as the record of the decision."""
    old_text = getattr(query.message, "text", None) or ""
    closed = fit(lambda old: f"{old}\n\n{line}", old_text)  # a full card gives up its end
    await acknowledge(query, query.edit_message_text(closed))


async def alert(query: CallbackQuery, text: str, *, unsaid_when_late: bool = False) -> None:
    """Tell the presser `text` in a box over the chat. Handled late, that box can no longer be
    shown; in a private chat the text comes as a message instead (in a group only the presser
    was meant to see it, so there it is left unsaid, as it is when `unsaid_when_late`). An old
    Bale client never shows the box: the presser gets the text as a message (`_said_instead`)."""
    try:
        await query.answer(within(text, ALERT_LIMIT), show_alert=True)
    except BadRequest as error:
        if not _too_old(error):
            raise
        message = query.message
        if unsaid_when_late or message is None:
            return
        if message.chat.type == ChatType.PRIVATE:
            await query.get_bot().send_message(message.chat.id, text)
        return
    if shows_no_answers(query) and not unsaid_when_late:  # no message per mashed press
        await _said_instead(query, text)


async def _said_instead(query: CallbackQuery, text: str) -> None:
    """A button's answer as a message, to a presser whose client cannot show the box: in the
    chat of a private press, else in the presser's private chat with the bot (agency staff and
    coordinators have one); someone who never started the bot is not told."""
    in_private = query.message is not None and query.message.chat.type == ChatType.PRIVATE
    chat_id = query.message.chat.id if in_private and query.message else query.from_user.id
    try:
        await query.get_bot().send_message(chat_id, text)
    except (Forbidden, BadRequest) as error:
        log.info("a button's answer could not be said in a message: %s", error)


async def _stop_spinner(query: CallbackQuery, toast: str | None) -> None:
    try:
        await query.answer(within(toast, ALERT_LIMIT) if toast else toast)
    except BadRequest as error:
        if not _too_old(error):
            raise


def _too_old(error: BadRequest) -> bool:
    """Telegram stopped waiting for the button's answer (seconds after the press)."""
    return "query is too old" in str(error).lower()


async def signed(
    query: CallbackQuery, context: MahalleContext, action: str, *, legacy: str | None = None
) -> list[str] | None:
    """The parts of a genuine `action` button (or one with its old name `legacy`), or None
    after telling the presser it is stale."""
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or parts[0] not in (action, legacy):
        await alert(query, context.t("button-stale"))
        return None
    return parts


async def signed_case(
    query: CallbackQuery, context: MahalleContext, action: str, *, case_at: int
) -> tuple[list[str], Case] | None:
    """A genuine `action` button's parts and the case named at position `case_at`, or None
    after telling the presser the button is stale."""
    parts = await signed(query, context, action)
    if parts is None:
        return None
    async with context.session() as session:
        case = await casework.get_case(session, int(parts[case_at]))
    if case is None:
        await alert(query, context.t("button-stale"))
        return None
    return parts, case


def already_done(context: MahalleContext, error: TransitionRefusedError) -> str:
    """Who got there first, in the user's language."""
    key = "already-done-by" if error.actor_name else "already-done"
    return context.t(key, name=error.actor_name or "")


async def refused(
    query: CallbackQuery, context: MahalleContext, error: TransitionRefusedError
) -> None:
    """Tell the second presser that someone else already did it."""
    await alert(query, already_done(context, error))


def case_moved_on(context: MahalleContext, error: TransitionRefusedError) -> str:
    """Why a step on a case was refused, in the user's language: the status the case is in
    now and who moved it there (a colleague pressing a card they saw before it changed), or
    that it went to another agency meanwhile."""
    if isinstance(error, CaseMovedError):
        return context.t("case-moved-meanwhile")
    if error.status is None:
        return already_done(context, error)
    status = context.t(status_key(error.status))
    if error.actor_name:
        return context.t("case-moved-on-by", status=status, name=isolate(error.actor_name))
    return context.t("case-moved-on", status=status)


async def refused_on_case(
    query: CallbackQuery, context: MahalleContext, error: TransitionRefusedError
) -> None:
    """Tell a clerk pressing a card's button why the case no longer takes it."""
    await alert(query, case_moved_on(context, error))


async def show_in_place(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    """Show `text` (a page, a list) in the pressed message. Pressing for what is already shown
    changes nothing, and Telegram refuses an edit that changes nothing: it is not asked, and
    should its copy differ unseen (it trims what it keeps), its refusal is no error."""
    shown = query.message
    if (
        isinstance(shown, Message)
        and (shown.text or "").strip() == text.strip()
        and shown.reply_markup == markup
    ):
        return
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as error:
        if "message is not modified" not in str(error).lower():
            raise
