"""The coordinator's desk: statistics, exports, staff, and whether agency chats work."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from bot.context import MahalleContext
from bot.digits import ascii_digits, isolate, ltr, persian_digits
from bot.ids import as_written, moved_in
from bot.jalali import format_date, parse_jalali_date, utcnow
from bot.normalize import split_list, squash
from bot.reports import EXPORT_COLUMN_KEYS, export_rows, stats_text, write_export
from bot.services import casework, stats, users
from bot.services.reference import list_agencies
from handlers import handbook
from handlers.buttons import acknowledge, alert, show_in_place
from handlers.coordinator import (
    coordinator_button,
    coordinators_only,
    county_scope,
    is_coordinator,
)
from models.entities import Staff

PERIOD_KEYS = {"week": "button-this-week", "month": "button-this-month"}
# The words for each period of /stats, as people type them (locale keys).
PERIOD_WORDS = {"week": "stats-words-week", "month": "stats-words-month"}


def period_words(context: MahalleContext, arguments: list[str]) -> list[str]:
    """The arguments of /stats with a period typed in words, in any language ("month", "this
    month", or the Persian for them), as its own word ("month"); dates, or anything else, as
    they are."""
    typed = _word_form(" ".join(arguments))
    for word, key in PERIOD_WORDS.items():
        listed = context.runtime.translate.every_language(key)
        if typed in {_word_form(form) for forms in listed for form in split_list(forms)}:
            return [word]
    return arguments


def _word_form(text: str) -> str:
    """A typed word as it is compared: letters folded, spacing and case ignored."""
    return squash(text).casefold()


def period(
    arguments: list[str], *, default: str, now: datetime
) -> tuple[datetime, datetime] | None:
    """[start, end) from '/stats', '/stats month' or '/stats 1405/09/01 1405/09/30'."""
    word = arguments[0] if len(arguments) == 1 else (default if not arguments else None)
    if word == "week":
        return stats.week_start(now), now
    if word == "month":
        return stats.month_start(now), now
    if len(arguments) == 2:
        start, last = parse_jalali_date(arguments[0]), parse_jalali_date(arguments[1])
        if start is not None and last is not None and start <= last:
            return start, last + timedelta(days=1)
    return None


@coordinators_only
async def show_stats(update: Update, context: MahalleContext) -> None:
    """/stats [week|month|FROM TO], the period in any language's words: the figures for it,
    with buttons for the usual ones."""
    message = update.effective_message
    assert message is not None
    span = period(period_words(context, context.args or []), default="week", now=utcnow())
    if span is None:
        await message.reply_text(context.t("stats-usage"))
        return
    await message.reply_text(
        await _stats_text(context, *span, county_scope(update, context)),
        reply_markup=_period_buttons(context),
    )
    from handlers.council import pattern_buttons

    await pattern_buttons(update, context)


async def stats_period(update: Update, context: MahalleContext) -> None:
    """A period button under the statistics."""
    query = update.callback_query
    assert query is not None and query.data is not None
    if not is_coordinator(update, context):
        await alert(query, context.t("coordinators-only"))
        return
    span = period([query.data.removeprefix("sp:")], default="week", now=utcnow())
    assert span is not None
    await acknowledge(query)  # first: the figures may take a moment
    await query.edit_message_text(
        await _stats_text(context, *span, county_scope(update, context)),
        reply_markup=_period_buttons(context),
    )


async def _stats_text(
    context: MahalleContext, start: datetime, end: datetime, county: str | None
) -> str:
    async with context.session() as session:
        figures = await stats.collect(
            session, settings=context.runtime.settings, start=start, end=end, now=utcnow(),
            county_key=county,
        )  # fmt: skip
    text = stats_text(figures, context.t, context.language)
    line = await handbook.stats_line(context, county)
    return f"{text}\n\n{line}" if line else text


def _period_buttons(context: MahalleContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(context.t(key), callback_data=f"sp:{word}")
                for word, key in PERIOD_KEYS.items()
            ]
        ]
    )


@coordinators_only
async def export(update: Update, context: MahalleContext) -> None:
    """/export [week|month|FROM TO] [xlsx], the period in any language's words: the cases as a
    file Excel opens (CSV by default)."""
    message = update.effective_message
    assert message is not None
    arguments = list(context.args or [])
    file_format = "xlsx" if arguments and arguments[-1].lower() == "xlsx" else "csv"
    arguments = [a for a in arguments if a.lower() not in ("xlsx", "csv")]
    span = period(period_words(context, arguments), default="month", now=utcnow())
    if span is None:
        await message.reply_text(context.t("export-usage"))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = (
            Path(folder) / f"mahalle-{format_date(span[0], 'en').replace(' ', '-')}.{file_format}"
        )
        async with context.session() as session:
            rows = export_rows(
                session, start=span[0], end=span[1], t=context.t, language=context.language,
                county_key=county_scope(update, context),
            )  # fmt: skip
            count = await write_export(
                rows,
                [context.t(k) for k in EXPORT_COLUMN_KEYS],
                path,
                file_format,
                sheet_title=context.t("export-sheet"),
            )
        with path.open("rb") as handle:
            await message.reply_document(
                handle, filename=path.name, caption=context.t("export-done", count=count)
            )


@coordinators_only
async def staff_list(update: Update, context: MahalleContext) -> None:
    """/staff: who is staff of which agency, each with a remove button."""
    message = update.effective_message
    assert message is not None
    text, markup = await _staff_view(context, county_scope(update, context))
    await message.reply_text(text, reply_markup=markup)


async def _staff_view(
    context: MahalleContext, county: str | None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The staff list of the county's agencies, a remove button a person; or that there is
    none."""
    async with context.session() as session:
        names = {a.key: a.name for a in await list_agencies(session=session, county_key=county)}
        members = [m for m in await casework.list_staff(session) if m.agency_key in names]
    if not members:
        return context.t("staff-none"), None
    signer = context.runtime.card_renderer.signer

    def remove_button(member: Staff) -> InlineKeyboardButton:
        agency = names.get(member.agency_key, member.agency_key)
        label = context.t("button-remove-staff", name=isolate(member.name), agency=agency)
        # the messenger's own number: a moved one could take a long agency key past 64 bytes
        person = as_written(member.user_id)
        return InlineKeyboardButton(
            label, callback_data=signer.sign("sr", person, member.agency_key)
        )

    rows = [[remove_button(member)] for member in members]
    return context.t("staff-title", count=len(members)), InlineKeyboardMarkup(rows)


async def remove_staff(update: Update, context: MahalleContext) -> None:
    """A remove button from /staff: the person is taken off, and the list shown anew."""
    query = update.callback_query
    assert query is not None
    parts = await coordinator_button(update, context, "sr")
    if parts is None:
        return
    if not _in_scope(update, context, agency_key=parts[2]):
        await alert(query, context.t("coordinators-only"))
        return
    async with context.session() as session:
        user_id = int(parts[1])
        runtime = context.runtime
        if runtime.settings.ids_apart(runtime.bot_key):  # the button bears the messenger's own
            user_id = moved_in(user_id)
        removed = await casework.remove_staff(session, user_id=user_id, agency_key=parts[2])
        await session.commit()
    text, markup = await _staff_view(context, county_scope(update, context))
    said = context.t("staff-removed" if removed else "staff-already-removed")
    await acknowledge(query, show_in_place(query, text, markup), toast=said)


def _in_scope(update: Update, context: MahalleContext, *, agency_key: str) -> bool:
    """Whether the agency lies in the county this coordinator looks after."""
    county = county_scope(update, context)
    found = context.runtime.settings.county_of_agency(agency_key)
    return county is None or (found is not None and found.key == county)


@coordinators_only
async def agencies(update: Update, context: MahalleContext) -> None:
    """/agencies: each agency's chat, and whether the bot can post there (asked live)."""
    message = update.effective_message
    assert message is not None
    async with context.session() as session:
        rows = await list_agencies(session=session, county_key=county_scope(update, context))
    lines = [context.t("agencies-title")]
    for agency in rows:
        lines.append(
            context.t(
                await _chat_state(context, agency.chat_id),
                name=agency.name,
                chat=ltr(str(as_written(agency.chat_id)) if agency.chat_id else ""),
            )
        )
    await message.reply_text("\n".join(lines))


async def _chat_state(context: MahalleContext, chat_id: int | None) -> str:
    """How the bot stands in an agency's chat. Bale answers getChatMember only to a bot that is
    an admin of the group: when it refuses, getChat tells a group the bot is in (not an admin,
    so whether it may post is unknown) from one it cannot reach."""
    if chat_id is None:
        return "agency-no-chat"
    try:
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
    except TelegramError:
        try:  # the raw answer: Bale's chats lack fields PTB's ChatFullInfo requires
            await context.bot.do_api_request("getChat", api_kwargs={"chat_id": chat_id})
        except TelegramError:
            return "agency-unreachable"
        return "agency-not-admin"
    if member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
        return "agency-unreachable"
    can_post = getattr(member, "can_send_messages", True) is not False
    return "agency-ok" if can_post else "agency-muted"


@coordinators_only
async def block(update: Update, context: MahalleContext) -> None:
    """/block <user id>: ignore everything this user sends from now on."""
    await _set_banned(update, context, banned=True)


@coordinators_only
async def unblock(update: Update, context: MahalleContext) -> None:
    """/unblock <user id>: listen to this user again."""
    await _set_banned(update, context, banned=False)


async def _set_banned(update: Update, context: MahalleContext, *, banned: bool) -> None:
    message = update.effective_message
    assert message is not None
    raw = ascii_digits(context.args[0]) if context.args else ""
    if not raw.isdigit() or len(raw) > 18:  # ids fit in 64 bits
        await message.reply_text(context.t("block-usage"))
        return
    typed = int(raw)  # as the coordinator's messenger numbers people
    runtime = context.runtime
    user_id = moved_in(typed) if runtime.settings.ids_apart(runtime.bot_key) else typed
    assert update.effective_user is not None
    actor_id = update.effective_user.id
    async with context.session() as session:
        refusal = await users.block_refusal(
            session=session, actor_id=actor_id, user_id=user_id, banned=banned,
            settings=context.runtime.settings,
        )  # fmt: skip
        who = ltr(persian_digits(typed) if context.language == "fa" else str(typed))
        if refusal is not None:
            await message.reply_text(context.t(refusal, user=who))
            return
        await users.set_banned(session=session, user_id=user_id, banned=banned, actor_id=actor_id)
    if banned:
        context.runtime.banned.add(user_id)
    else:
        context.runtime.banned.discard(user_id)
    await message.reply_text(context.t("blocked" if banned else "unblocked", user=who))
