"""Coordinators: placing queued cases, and inviting agency staff."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.cards import PLACE_PREFIX
from bot.context import MahalleContext
from bot.digits import isolate, ltr
from bot.fit import cut
from bot.jalali import utcnow
from bot.normalize import normalize, squash
from bot.rules import Act, Verdict
from bot.services import casework, routing
from bot.services.reference import list_agencies
from bot.services.transitions import TransitionRefusedError
from handlers.buttons import acknowledge, alert, close_with, refused, signed
from handlers.common import unexpected_outside_flow
from handlers.staff import display_name
from models.entities import Agency


def is_coordinator(update: Update, context: MahalleContext) -> bool:
    """Whether the sender is named as a coordinator (of some county) in the config."""
    user = update.effective_user
    return user is not None and user.id in context.runtime.settings.coordinators


def other_bot(update: Update, context: MahalleContext) -> str | None:
    """With several bots: the @username of the bot serving the coordinator's county, when it
    is not this one (a coordinator works through their county's bot, whose chats and people
    their acts reach); else None."""
    runtime, user = context.runtime, update.effective_user
    county = runtime.settings.county_of_coordinator(user.id) if user else None
    served = runtime.served_counties
    if county is None or served is None or county.key in served:
        return None
    theirs = runtime.for_county(county.key).bot
    return f"@{theirs.username}" if theirs is not None else county.key


def county_scope(update: Update, context: MahalleContext) -> str | None:
    """The county a coordinator's broadcasts, figures and agencies are narrowed to; None when
    the deployment has a single county."""
    settings = context.runtime.settings
    user = update.effective_user
    county = settings.county_of_coordinator(user.id) if user else None
    return settings.case_filter_county(county.key if county else None)


async def coordinator_button(
    update: Update, context: MahalleContext, action: str, *, legacy: str | None = None
) -> list[str] | None:
    """A genuine `action` button's parts if a coordinator pressed it; else None, saying why.
    `legacy` is the action's old name, still on buttons sent before it was renamed."""
    query = update.callback_query
    assert query is not None
    parts = await signed(query, context, action, legacy=legacy)
    if parts is not None and not is_coordinator(update, context):
        await alert(query, context.t("coordinators-only"))
        return None
    if parts is not None and (bot := other_bot(update, context)):
        await alert(query, context.t("coordinator-other-bot", bot=ltr(bot)))
        return None
    return parts


Command = Callable[[Update, MahalleContext], Coroutine[Any, Any, None]]


def coordinators_only(command: Command) -> Command:
    """To anyone else a coordinator command is just an unknown command."""

    @functools.wraps(command)
    async def guarded(update: Update, context: MahalleContext) -> None:
        if not is_coordinator(update, context):
            await unexpected_outside_flow(update, context)
            return
        if bot := other_bot(update, context):
            assert update.effective_message is not None
            await update.effective_message.reply_text(
                context.t("coordinator-other-bot", bot=ltr(bot))
            )
            return
        await command(update, context)

    return guarded


async def triage_pick(update: Update, context: MahalleContext) -> None:
    """A domain pressed on a triage card: the case goes to that domain's agency."""
    query = update.callback_query
    assert query is not None
    parts = await coordinator_button(update, context, PLACE_PREFIX, legacy="tq")
    if parts is None:
        return
    _, case_id, domain_key = parts
    name = display_name(query.from_user)
    async with context.session() as session:
        case = await casework.get_case(session, int(case_id))
        if case is None:
            await alert(query, context.t("button-stale"))
            return
        # The status is left to the transition: an undeliverable forwarded case is placed too.
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=Act.PLACE, case=case,
            settings=context.runtime.settings,
        )  # fmt: skip
        if found is Verdict.NOT_YOURS:
            await alert(query, context.t("coordinators-only"))
            return
        try:
            await routing.assign_from_triage(
                session, case=case, domain_key=domain_key, actor_id=query.from_user.id,
                actor_name=name, cards=context.runtime.card_renderer, now=utcnow(),
            )  # fmt: skip
        except TransitionRefusedError as error:
            await refused(query, context, error)
            return
        view = await routing.case_view(session, case.id)
        placed = context.t(
            "triage-placed", domain=view.domain_title, agency=view.agency_name, name=isolate(name)
        )
        pressed = (query.message.chat.id, query.message.message_id) if query.message else None
        await routing.close_triage_copies(session, case_id=case.id, line=placed, pressed=pressed)
        await session.commit()
    context.runtime.wake_outbox()
    await close_with(query, placed)


INVITE_PREFIX = "invite"  # an agency picked for an invite: `invite:<agency key>`
NAME_SHOWN = 60  # of a name typed after /invite, what is said back


@coordinators_only
async def invite(update: Update, context: MahalleContext) -> None:
    """`/invite [agency]`: a one-time link that makes its user staff of that agency; the
    agency named by its key or by (part of) its name, else picked from buttons."""
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    wanted = " ".join(context.args or [])
    county = county_scope(update, context)
    async with context.session() as session:
        offered = await list_agencies(session=session, county_key=county)
        named = _agencies_named(offered, wanted)
        if len(named) != 1:
            said = ""
            if wanted.strip():
                key = "invite-several" if named else "invite-unknown"
                said = context.t(key, name=isolate(cut(wanted, NAME_SHOWN))) + "\n"
            await message.reply_text(
                said + context.t("invite-choose"),
                reply_markup=_agency_buttons(context, named or offered),
            )
            return
        link = await _invite_link(context, session, named[0], update.effective_user.id)
        await session.commit()
    await message.reply_text(link)


async def invite_pressed(update: Update, context: MahalleContext) -> None:
    """An agency picked under /invite: its one-time link, in place of the buttons."""
    query = update.callback_query
    assert query is not None and query.from_user is not None
    parts = await coordinator_button(update, context, INVITE_PREFIX)
    if parts is None:
        return
    county = county_scope(update, context)
    async with context.session() as session:
        agency = await session.get(Agency, parts[1])
        if agency is None or (county is not None and agency.county_key != county):
            await alert(query, context.t("button-stale"))
            return
        link = await _invite_link(context, session, agency, query.from_user.id)
        await session.commit()
    await acknowledge(query, query.edit_message_text(link))


def _agencies_named(agencies: list[Agency], wanted: str) -> list[Agency]:
    """The agencies `wanted` may name: the one with that key, else those whose name it is, else
    those whose name contains it (spelling, spaces and ZWNJ aside)."""
    if not wanted.strip():
        return []
    by_key = [a for a in agencies if a.key.lower() == wanted.strip().lower()]
    if by_key:
        return by_key
    folded = _name_key(wanted)
    if not folded:
        return []
    exact = [a for a in agencies if _name_key(a.name) == folded]
    return exact or [a for a in agencies if folded in _name_key(a.name)]


# A written ezafe after a final he ("kamite-ye emdad" typed with its ye) names the same agency.
_HE, _YE = chr(0x0647), chr(0x06CC)
_EZAFE = re.compile(f"{_HE}\u200c{_YE}(?=\\s|$)")


def _name_key(name: str) -> str:
    """A name as matching compares it: spelling, spacing, ZWNJ and a written ezafe aside."""
    return squash(_EZAFE.sub(_HE, normalize(name)))


def _agency_buttons(context: MahalleContext, agencies: list[Agency]) -> InlineKeyboardMarkup:
    """One button an agency, each making that agency's invite."""
    signer = context.runtime.card_renderer.signer
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(a.name, callback_data=signer.sign(INVITE_PREFIX, a.key))]
            for a in agencies
        ]
    )


async def _invite_link(
    context: MahalleContext, session: AsyncSession, agency: Agency, coordinator_id: int
) -> str:
    """A new one-time invite to `agency`, as the message that hands it over."""
    settings = context.runtime.settings
    token = await casework.create_invite(
        session, agency_key=agency.key, created_by=coordinator_id,
        days=settings.staff.invite_days, now=utcnow(),
    )  # fmt: skip
    link = f"{settings.telegram.deep_link_base}{context.bot.username}?start=join_{token}"
    return context.t("invite-link", agency=agency.name, days=settings.staff.invite_days, link=link)
