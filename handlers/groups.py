"""Local groups: a resident registers one, coordinators decide, members join by link."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ConversationHandler

from bot.context import MahalleContext
from bot.digits import isolate
from bot.jalali import utcnow
from bot.normalize import clean_text
from bot.services import groups, outbox, reference
from handlers import keyboards, picker
from handlers.buttons import alert, close_with
from handlers.common import message_of, user_id_of
from handlers.coordinator import coordinator_button
from handlers.staff import display_name
from models.entities import GroupStatus, LocalGroup

NAME, FIELD, PLACE = "group-name", "group-field", "group-place"
END = ConversationHandler.END
PREFIX = "gn"


async def start(update: Update, context: MahalleContext) -> object:
    """/group: register a local group (not while the founder's last request still waits: a
    second would reach the coordinators as another request for the same group)."""
    async with context.session() as session:
        waiting = await groups.waiting_request(session, user_id=user_id_of(update))
        if waiting is None:
            await groups.start_registration(session, user_id=user_id_of(update))
            await session.commit()
    if waiting is not None:
        await message_of(update).reply_text(
            context.t("group-still-waiting", name=isolate(waiting)),
            reply_markup=keyboards.main_menu(context.t),
        )
        return END
    await message_of(update).reply_text(
        context.t("group-ask-name"), reply_markup=keyboards.cancel_only(context.t)
    )
    return NAME


async def _registration(update: Update, context: MahalleContext) -> LocalGroup | None:
    async with context.session() as session:
        return await groups.registration(session, user_id=user_id_of(update))


async def _update(group: LocalGroup, context: MahalleContext, **values: object) -> None:
    async with context.session() as session:
        row = await session.get(LocalGroup, group.id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        await session.commit()


async def _take_text(
    update: Update, context: MahalleContext, *, column: str, limit: int, state: str
) -> object | None:
    """Store one typed field of the registration: None when stored, else the state to return."""
    text = clean_text(message_of(update).text or "").strip()
    if not 3 <= len(text) <= limit:
        await message_of(update).reply_text(context.t("group-length", low=3, high=limit))
        return state
    group = await _registration(update, context)
    if group is None:
        return await _lost(update, context)
    await _update(group, context, **{column: text})
    return None


async def take_name(update: Update, context: MahalleContext) -> object:
    """The group's name."""
    stay = await _take_text(update, context, column="name", limit=groups.MAX_NAME, state=NAME)
    if stay is not None:
        return stay
    await message_of(update).reply_text(context.t("group-ask-field"))
    return FIELD


async def take_field(update: Update, context: MahalleContext) -> object:
    """What the group works on."""
    stay = await _take_text(update, context, column="field", limit=groups.MAX_FIELD, state=FIELD)
    if stay is not None:
        return stay
    await picker.send_picker(update, context, PREFIX)
    return PLACE


async def take_place(update: Update, context: MahalleContext) -> object:
    """The group's neighbourhood: the request goes to the coordinators."""
    assert update.callback_query is not None
    place = await picker.picked(update.callback_query, context)
    if place is None:
        return PLACE
    group = await _registration(update, context)
    if group is None:
        return await _lost(update, context)
    async with context.session() as session:
        row = await session.get(LocalGroup, group.id)
        assert row is not None
        row.neighbourhood_id, row.status = place.id, GroupStatus.PENDING
        card = _decision_card(context, row, place.name)
        county = await reference.county_of_neighbourhood(session, place.id)
        for chat_id in context.runtime.settings.county_named(county).coordinator_chats():
            outbox.enqueue(
                session, chat_id=chat_id, purpose=outbox.COORDINATOR_NOTICE, payload=card
            )
        await session.commit()
    context.runtime.wake_outbox()
    await message_of(update).reply_text(
        context.t("group-submitted", name=isolate(group.name)),
        reply_markup=keyboards.main_menu(context.t),
    )
    return END


async def _coordinates_group(
    session: AsyncSession, context: MahalleContext, group_id: int, user_id: int
) -> bool:
    """Whether this coordinator looks after the county the group's neighbourhood lies in."""
    found = await session.get(LocalGroup, group_id)
    if found is None or found.neighbourhood_id is None:
        return True  # nothing to decide; groups.decide says so
    county = await reference.county_of_neighbourhood(session, found.neighbourhood_id)
    return user_id in context.runtime.settings.county_named(county).coordinators


def _decision_card(context: MahalleContext, group: LocalGroup, place: str) -> dict[str, object]:
    signer = context.runtime.card_renderer.signer
    cards = context.runtime.card_renderer
    text = cards.t(
        "group-request", name=isolate(group.name), field=isolate(group.field), place=isolate(place)
    )
    buttons = [
        {"text": cards.t("button-approve"), "callback_data": signer.sign("ga", "a", group.id)},
        {"text": cards.t("button-refuse"), "callback_data": signer.sign("ga", "r", group.id)},
    ]
    return {"text": text, "reply_markup": {"inline_keyboard": [buttons]}}


async def decide(update: Update, context: MahalleContext) -> None:
    """A coordinator approves or refuses; the founder hears (with the members' link if approved)."""
    query = update.callback_query
    assert query is not None
    parts = await coordinator_button(update, context, "ga")
    if parts is None:
        return
    approve = parts[1] == "a"
    async with context.session() as session:
        if not await _coordinates_group(session, context, int(parts[2]), query.from_user.id):
            await alert(query, context.t("coordinators-only"))
            return
        group = await groups.decide(
            session,
            group_id=int(parts[2]),
            approve=approve,
            coordinator=query.from_user.id,
            now=utcnow(),
        )
        if group is None:
            await alert(query, context.t("already-done"))
            return
        settings = context.runtime.settings
        bot_link = f"{settings.telegram.deep_link_base}{context.bot.username}"
        link = f"{bot_link}?start=grp_{group.invite_token}"
        notice = (
            context.t("group-approved", name=isolate(group.name), link=link)
            if approve
            else context.t("group-refused", name=isolate(group.name))
        )
        if group.created_by:  # None: the founder asked to be forgotten
            outbox.enqueue(
                session,
                chat_id=group.created_by,
                purpose=outbox.REPORTER_NOTICE,
                payload={"text": notice},
            )
        await session.commit()
    context.runtime.wake_outbox()
    verdict = context.t(
        "group-decided-approved" if approve else "group-decided-refused",
        name=isolate(display_name(query.from_user)),
    )
    await close_with(query, verdict)


async def join(update: Update, context: MahalleContext, token: str) -> None:
    """`/start grp_<token>`: become a member of an approved group."""
    async with context.session() as session:
        group = await groups.join(session, token=token, user_id=user_id_of(update), now=utcnow())
        await session.commit()
    key = "group-joined" if group is not None else "group-link-invalid"
    await message_of(update).reply_text(context.t(key, name=isolate(group.name) if group else ""))


async def cancel(update: Update, context: MahalleContext) -> object:
    """Leave the registration."""
    async with context.session() as session:
        group = await groups.registration(session, user_id=user_id_of(update))
        if group is not None:
            await session.delete(group)
            await session.commit()
    await message_of(update).reply_text(
        context.t("group-cancelled"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


async def _lost(update: Update, context: MahalleContext) -> object:
    await message_of(update).reply_text(
        context.t("draft-missing"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


def on_behalf_buttons(context: MahalleContext, member_of: list[LocalGroup]) -> InlineKeyboardMarkup:
    """ "Myself" or one of the reporter's approved groups."""
    rows = [[InlineKeyboardButton(context.t("button-as-myself"), callback_data="rg:0")]]
    rows += [
        [
            InlineKeyboardButton(
                context.t("button-as-group", name=isolate(g.name)), callback_data=f"rg:{g.id}"
            )
        ]
        for g in member_of
    ]
    return InlineKeyboardMarkup(rows)


async def reporter_groups(context: MahalleContext, user_id: int) -> list[LocalGroup]:
    """The approved groups this reporter belongs to."""
    async with context.autocommit() as session:
        return await groups.memberships(session, user_id=user_id)
