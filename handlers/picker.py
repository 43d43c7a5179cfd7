"""The neighbourhood picker shared by the report flow (prefix "rn") and settings ("mn")."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Update

from bot.context import MahalleContext
from bot.digits import isolate
from bot.services import places
from bot.services.reference import Place
from handlers import keyboards
from handlers.buttons import acknowledge, alert, tidying


async def _district_menu(context: MahalleContext, prefix: str) -> tuple[str, InlineKeyboardMarkup]:
    async with context.autocommit() as session:
        districts = await places.list_districts(
            session=session, counties=context.runtime.served_counties
        )
    if len(districts) == 1:
        return await _page_menu(context, prefix, districts[0].id, 0)
    served = context.runtime.served_counties
    counties = [c for c in context.runtime.settings.counties if served is None or c.key in served]
    names = {county.key: county.name for county in counties} if len(counties) > 1 else None
    return context.t("pick-district"), keyboards.district_list(context.t, districts, prefix, names)


async def _page_menu(
    context: MahalleContext, prefix: str, district_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    async with context.autocommit() as session:
        districts = await places.list_districts(
            session=session, counties=context.runtime.served_counties
        )
        district = next((d for d in districts if d.id == district_id), None)
        if district is None:
            return await _district_menu(context, prefix)
        found, pages = await places.neighbourhood_page(
            session=session,
            district_id=district_id,
            page=page,
            page_size=keyboards.PICKER_PAGE_SIZE,
        )
    markup = keyboards.neighbourhood_list(
        context.t, found, prefix=prefix, district_id=district_id, page=min(page, pages - 1),
        pages=pages, back_to_districts=len(districts) > 1,
    )  # fmt: skip
    return context.t("pick-neighbourhood-in", district=district.name), markup


async def send_picker(update: Update, context: MahalleContext, prefix: str) -> None:
    """Send the district list (or the only district's neighbourhoods) as a new message."""
    text, markup = await _district_menu(context, prefix)
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        context.t("pick-hint-typing") + "\n" + text, reply_markup=markup
    )


async def browse(query: CallbackQuery, context: MahalleContext, prefix: str) -> None:
    """Answer a `<prefix>:d` or `<prefix>:d:<district>:<page>` press by editing the picker."""
    parts = (query.data or "").split(":")
    if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
        text, markup = await _page_menu(context, prefix, int(parts[2]), int(parts[3]))
    else:
        text, markup = await _district_menu(context, prefix)
    await acknowledge(query, query.edit_message_text(text, reply_markup=markup))


async def picked(query: CallbackQuery, context: MahalleContext) -> Place | None:
    """The neighbourhood a `<prefix>:n:<id>` press names, or None after telling the user why.

    The picker's message becomes the choice ("neighbourhood: …"), its buttons gone."""
    raw_id = (query.data or "").rsplit(":", 1)[-1]
    place = None
    if raw_id.isdigit():
        async with context.autocommit() as session:
            place = await places.get_neighbourhood(
                session=session, neighbourhood_id=int(raw_id),
                counties=context.runtime.served_counties,
            )  # fmt: skip
    if place is None:
        await alert(query, context.t("neighbourhood-gone"))
        return None
    chosen = context.t("neighbourhood-chosen", name=isolate(place.name))
    await acknowledge(query, tidying(query.edit_message_text(chosen)))
    return place


async def reply_search(update: Update, context: MahalleContext, prefix: str) -> None:
    """Offer the neighbourhoods whose names match what the user typed."""
    message = update.effective_message
    assert message is not None and message.text is not None
    async with context.autocommit() as session:
        found = await places.search_neighbourhoods(
            session=session, typed=message.text, counties=context.runtime.served_counties
        )
    if found:
        await message.reply_text(
            context.t("search-results"),
            reply_markup=keyboards.search_results(context.t, found, prefix),
        )
        return
    text, markup = await _district_menu(context, prefix)
    await message.reply_text(context.t("search-nothing") + "\n" + text, reply_markup=markup)


Callback = Callable[[Update, MahalleContext], Coroutine[Any, Any, object]]


def browse_handler(prefix: str, state: object) -> Callback:
    """A conversation callback paging through districts and neighbourhoods, staying in `state`."""

    async def browse_places(update: Update, context: MahalleContext) -> object:
        """Page through districts and neighbourhoods."""
        assert update.callback_query is not None
        await browse(update.callback_query, context, prefix)
        return state

    return browse_places


def search_handler(prefix: str, state: object) -> Callback:
    """A conversation callback offering neighbourhoods for a typed name, staying in `state`."""

    async def search_places(update: Update, context: MahalleContext) -> object:
        """Offer neighbourhoods matching a typed name."""
        await reply_search(update, context, prefix)
        return state

    return search_places
