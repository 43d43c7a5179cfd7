"""People taking part: "me too" on an open case, and local groups offering help.

A resident about to file what is already open nearby is shown that case (its code, domain and
date, never its reporter's words) and may join it instead; /mine lists the cases they joined,
each with a button to leave. A local group's founder lists, with /help_offer, the open cases of
the group's neighbourhood and offers help with one; the agency holding it accepts or declines.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ConversationHandler

from bot.cards import code_for_display, status_key
from bot.context import MahalleContext
from bot.digits import isolate
from bot.jalali import format_date, utcnow
from bot.normalize import normalize
from bot.services import casework, drafts, offers, participation, reference
from bot.services.drafts import ReportDraft
from bot.services.participation import JoinOutcome
from handlers import keyboards
from handlers.buttons import acknowledge, alert, close_with, keyboard_removed, signed
from handlers.common import message_of, user_id_of
from handlers.staff import display_name
from models.entities import Case

JOIN_PREFIX = "pj"  # pj:j:<case id>:<draft token's start> (join), pj:l:<case id> (leave)
TOKEN_PART = 8
END = ConversationHandler.END


def _code(case: Case, context: MahalleContext) -> str:
    return code_for_display(case.code, context.language)


# --- "me too" -------------------------------------------------------------------------------


async def offer_to_join(update: Update, context: MahalleContext, draft: ReportDraft) -> bool:
    """Before a report is filed: if an open case nearby reads the same, show it and offer to
    join it instead (once per draft). True when the offer was shown and the report waits."""
    if draft.similar_shown or draft.neighbourhood_id is None or not draft.text:
        return False
    async with context.autocommit() as session:  # a read, and a write whole in one statement
        case = await participation.find_similar(
            session, neighbourhood_id=draft.neighbourhood_id, text=normalize(draft.text),
            user_id=user_id_of(update), now=utcnow(),
        )  # fmt: skip
        if case is None:  # the report is filed now: nothing to remember (a refused filing
            return False  # looks again at the next press)
        draft.similar_shown = True
        await drafts.save_draft(session=session, user_id=user_id_of(update), draft=draft)
        domain = await reference.domain_title(session, case.domain_key)
    signer = context.runtime.card_renderer.signer
    join = signer.sign(JOIN_PREFIX, "j", case.id, draft.token[:TOKEN_PART])
    mine = f"rc:{draft.token}"  # the report's own confirm: filed as it is
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(context.t("button-me-too"), callback_data=join)],
            [InlineKeyboardButton(context.t("button-file-mine"), callback_data=mine)],
        ]
    )
    text = context.t(
        "similar-open-case",
        code=_code(case, context),
        domain=domain or "",
        status=context.t(status_key(case.status, undeliverable=case.undeliverable)),
        date=format_date(case.created_at, context.language),
    )
    query = update.callback_query
    if query is not None:
        await acknowledge(query, keyboard_removed(query))
    await message_of(update).reply_text(text, reply_markup=markup)
    return True


async def join_pressed(update: Update, context: MahalleContext) -> object:
    """ "Me too" under the hint: the resident joins the case and their draft is closed, with
    no new case. Refused politely (nothing added) for their own case, one they joined, one no
    longer open, or a hint of a report already sent or cancelled."""
    query = update.callback_query
    assert query is not None
    parts = await signed(query, context, JOIN_PREFIX)
    if parts is None or len(parts) != 4 or parts[1] != "j":
        return None
    user_id = user_id_of(update)
    async with context.session() as session:
        draft = await drafts.load_draft(session=session, user_id=user_id)
        case = await casework.get_case(session, int(parts[2]))
        if draft is None or case is None or draft.token[:TOKEN_PART] != parts[3]:
            await alert(query, context.t("button-stale"))
            return None
        code = _code(case, context)
        outcome = await participation.join(session, case=case, user_id=user_id, now=utcnow())
        if outcome is not JoinOutcome.JOINED:
            await session.rollback()
            await alert(query, context.t(outcome.value, code=code))
            return None
        await casework.refresh_card(session, case, context.runtime.card_renderer)
        await drafts.discard_draft(session=session, user_id=user_id)  # commits
    context.runtime.wake_outbox()
    await acknowledge(query, keyboard_removed(query))
    await message_of(update).reply_text(
        context.t(JoinOutcome.JOINED.value, code=code),
        reply_markup=keyboards.main_menu(context.t),
    )
    return END


async def join_outside(update: Update, context: MahalleContext) -> None:
    """ "Me too" pressed when no report is waiting on it (sent, cancelled, or in another step)."""
    assert update.callback_query is not None
    await alert(update.callback_query, context.t("button-stale"))


async def show_joined(update: Update, context: MahalleContext) -> None:
    """Under /mine: the cases this resident joined, each with a button to leave it."""
    async with context.session() as session:
        joined = await participation.joined_cases(session, user_id=user_id_of(update))
    if not joined:
        return
    signer = context.runtime.card_renderer.signer
    lines = [context.t("joined-title", total=len(joined))]
    rows = []
    for case in joined[: keyboards.CASES_PAGE_SIZE * 2]:
        code = _code(case, context)
        status = context.t(status_key(case.status, undeliverable=case.undeliverable))
        lines.append(context.t("joined-line", code=code, status=status))
        data = signer.sign(JOIN_PREFIX, "l", case.id)
        label = context.t("button-leave", code=code)
        rows.append([InlineKeyboardButton(label, callback_data=data)])
    await message_of(update).reply_text("\n".join(lines), reply_markup=InlineKeyboardMarkup(rows))


async def leave_pressed(update: Update, context: MahalleContext) -> None:
    """Stop following a joined case: no more news of it, and the agency's count drops."""
    query = update.callback_query
    assert query is not None
    parts = await signed(query, context, JOIN_PREFIX)
    if parts is None or len(parts) != 3 or parts[1] != "l":
        if parts is not None:
            await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        case = await casework.get_case(session, int(parts[2]))
        left = case is not None and await participation.leave(
            session, case=case, user_id=query.from_user.id
        )
        if not left or case is None:
            await alert(query, context.t("leave-not-joined"))
            return
        code = _code(case, context)
        await casework.refresh_card(session, case, context.runtime.card_renderer)
        await session.commit()
    context.runtime.wake_outbox()
    await close_with(query, context.t("leave-done", code=code))


# --- local groups' offers of help -----------------------------------------------------------


async def help_offer(update: Update, context: MahalleContext) -> None:
    """/help_offer: for each approved group this person founded, the open cases of its
    neighbourhood, a button each."""
    signer = context.runtime.card_renderer.signer
    async with context.session() as session:
        founded = await offers.founded_groups(session, user_id=user_id_of(update))
        listed = [(group, await offers.open_cases(session, group=group)) for group in founded]
    if not founded:
        await message_of(update).reply_text(context.t("help-offer-no-group"))
        return
    for group, found in listed:
        if not found:
            await message_of(update).reply_text(
                context.t("help-offer-none", group=isolate(group.name))
            )
            continue
        lines = [context.t("help-offer-title", group=isolate(group.name))]
        rows = []
        for case, domain in found:
            code = _code(case, context)
            lines.append(
                context.t(
                    "help-offer-line", code=code, domain=domain,
                    date=format_date(case.created_at, context.language),
                )
            )  # fmt: skip
            data = signer.sign(offers.OFFER_PREFIX, "c", group.id, case.id)
            label = context.t("button-help-with", code=code)
            rows.append([InlineKeyboardButton(label, callback_data=data)])
        await message_of(update).reply_text(
            "\n".join(lines), reply_markup=InlineKeyboardMarkup(rows)
        )


async def offer_pressed(update: Update, context: MahalleContext) -> None:
    """A case picked (`ho:c`): which help; a kind picked (`ho:k`): the offer goes out."""
    query = update.callback_query
    assert query is not None
    parts = await signed(query, context, offers.OFFER_PREFIX)
    if parts is None:
        return
    if parts[1] == "c" and len(parts) == 4:
        await _ask_kind(update, context, int(parts[2]), int(parts[3]))
        return
    if parts[1] != "k" or len(parts) != 5:
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        outcome = await offers.make_offer(
            session, group_id=int(parts[2]), case_id=int(parts[3]), kind=parts[4],
            user_id=query.from_user.id, cards=context.runtime.card_renderer, now=utcnow(),
        )  # fmt: skip
        case = await casework.get_case(session, int(parts[3]))
        code = _code(case, context) if case else ""
        if outcome is not offers.OfferOutcome.SENT:
            await session.rollback()
            await alert(query, context.t(outcome.value, code=code))
            return
        await session.commit()
    context.runtime.wake_outbox()
    await close_with(query, context.t(outcome.value, code=code))


async def _ask_kind(update: Update, context: MahalleContext, group_id: int, case_id: int) -> None:
    """The kinds of help, as buttons under the case picked."""
    query = update.callback_query
    assert query is not None
    signer = context.runtime.card_renderer.signer
    async with context.session() as session:
        case = await casework.get_case(session, case_id)
    if case is None:
        await alert(query, context.t("button-stale"))
        return
    rows = [
        [
            InlineKeyboardButton(
                context.t(offers.KIND_KEYS[kind]),
                callback_data=signer.sign(offers.OFFER_PREFIX, "k", group_id, case_id, kind),
            )
        ]
        for kind in offers.KINDS
    ]
    text = context.t("help-offer-kind", code=_code(case, context))
    await acknowledge(query, query.edit_message_text(text, reply_markup=InlineKeyboardMarkup(rows)))


async def decide_pressed(update: Update, context: MahalleContext) -> None:
    """Accept or decline, pressed on an offer in the agency's chat: staff of the agency holding
    the case (or a coordinator of its county), once."""
    query = update.callback_query
    assert query is not None
    parts = await signed(query, context, offers.DECISION_PREFIX)
    if parts is None:
        return
    if len(parts) != 3 or parts[1] not in ("a", "d"):
        await alert(query, context.t("button-stale"))
        return
    name = display_name(query.from_user)
    async with context.session() as session:
        decision = await offers.decide(
            session, offer_id=int(parts[2]), accept=parts[1] == "a", actor_id=query.from_user.id,
            actor_name=name, settings=context.runtime.settings,
            cards=context.runtime.card_renderer, now=utcnow(),
        )  # fmt: skip
        if decision.outcome is not offers.DecisionOutcome.DONE:
            await session.rollback()
            key = decision.outcome.value
            if decision.outcome is offers.DecisionOutcome.ALREADY and decision.by:
                key = "offer-already-decided-by"
            await alert(query, context.t(key, name=isolate(decision.by or "")))
            return
        await session.commit()
    context.runtime.wake_outbox()
    key = "offer-decided-accepted" if parts[1] == "a" else "offer-decided-declined"
    await close_with(query, context.t(key, name=isolate(name)))
