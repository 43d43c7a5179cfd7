"""Composing a broadcast (coordinators, private chat): content, audience, time, preview, send."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.broadcasting import send_content
from bot.context import MahalleContext
from bot.digits import isolate, ltr
from bot.fit import units, within
from bot.jalali import format_datetime, parse_jalali_datetime, utcnow
from bot.normalize import split_list
from bot.pipeline import start_campaign
from bot.services import broadcasts, places
from bot.services.reference import list_agencies, snapshot
from handlers import keyboards
from handlers.buttons import acknowledge, alert, keyboard_removed, tidying
from handlers.common import message_of, user_id_of
from handlers.coordinator import coordinator_button, county_scope, other_bot
from handlers.report import END
from models.entities import Campaign

CONTENT, AUDIENCE, NEIGHBOURHOODS, SCHEDULE, CONFIRM = (
    "bc-content", "bc-audience", "bc-neighbourhoods", "bc-schedule", "bc-confirm",
)  # fmt: skip
AUDIENCE_KEYS = {
    "all": "audience-all",
    "districts": "audience-districts",
    "neighbourhoods": "audience-neighbourhoods",
    "groups": "audience-groups",
    "staff": "audience-staff",
}


async def _draft(update: Update, context: MahalleContext) -> Campaign | None:
    async with context.session() as session:
        return await broadcasts.current_draft(session, created_by=user_id_of(update))


async def _save(campaign: Campaign, context: MahalleContext, **changes: Any) -> None:
    async with context.session() as session:
        row = await session.get(Campaign, campaign.id)
        assert row is not None
        for name, value in changes.items():
            setattr(row, name, value)
            setattr(campaign, name, value)
        await session.commit()


async def start(update: Update, context: MahalleContext) -> object:
    """/broadcast: ask for the content."""
    if bot := other_bot(update, context):
        await message_of(update).reply_text(context.t("coordinator-other-bot", bot=ltr(bot)))
        return END
    async with context.session() as session:
        await broadcasts.start_draft(session, created_by=user_id_of(update))
        await session.commit()
    await message_of(update).reply_text(
        context.t("broadcast-ask-content"), reply_markup=keyboards.cancel_only(context.t)
    )
    return CONTENT


async def take_content(update: Update, context: MahalleContext) -> object:
    """Text, or a photo with a caption; formatting entities are kept."""
    message = message_of(update)
    if message.photo:
        caption = message.caption or ""
        content: dict[str, Any] = {
            "photo": message.photo[-1].file_id,
            "caption": caption,
            "caption_entities": [e.to_dict() for e in message.caption_entities],
        }
        too_long = units(caption) > broadcasts.MAX_CAPTION  # as Telegram counts
    else:
        text = message.text or ""
        content = {"text": text, "entities": [e.to_dict() for e in message.entities]}
        too_long = units(text) > broadcasts.MAX_TEXT
    if too_long:
        limit = broadcasts.MAX_CAPTION if message.photo else broadcasts.MAX_TEXT
        await message.reply_text(context.t("broadcast-too-long", high=limit))
        return CONTENT
    campaign = await _draft(update, context)
    if campaign is None:
        return await _lost(update, context)
    await _save(campaign, context, content=content)
    await message.reply_text(
        context.t("broadcast-ask-audience"), reply_markup=_audience_menu(context)
    )
    return AUDIENCE


def _audience_menu(context: MahalleContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(context.t(key), callback_data=f"ba:{kind}")]
            for kind, key in AUDIENCE_KEYS.items()
        ]
    )


async def choose_audience(update: Update, context: MahalleContext) -> object:
    """Pick the kind of audience; districts and agencies are then toggled, places typed."""
    query = update.callback_query
    assert query is not None and query.data is not None
    kind = query.data.removeprefix("ba:")
    campaign = await _draft(update, context)
    if campaign is None or kind not in AUDIENCE_KEYS:
        return await _lost(update, context)
    await acknowledge(query)
    audience: dict[str, Any] = {
        "kind": kind, "ids": [], "agencies": [], "county": county_scope(update, context),
    }  # fmt: skip
    await _save(campaign, context, audience=audience)
    if kind == "neighbourhoods":
        await query.edit_message_text(context.t("broadcast-type-neighbourhoods"))
        return NEIGHBOURHOODS
    if kind in ("districts", "staff"):
        await query.edit_message_text(
            context.t("broadcast-pick"), reply_markup=await _toggles(context, campaign)
        )
        return AUDIENCE
    await keyboard_removed(query)
    return await _ask_schedule(update, context)


async def _toggles(context: MahalleContext, campaign: Campaign) -> InlineKeyboardMarkup:
    audience = campaign.audience
    county = audience.get("county")
    async with context.session() as session:
        if audience["kind"] == "districts":
            options = [
                (f"d:{d.id}", d.name, d.id in audience["ids"])
                for d in await places.list_districts(session=session, county_key=county)
            ]
        else:
            agencies = await list_agencies(session=session, county_key=county)
            options = [(f"a:{a.key}", a.name, a.key in audience["agencies"]) for a in agencies]
    rows = [
        [InlineKeyboardButton(("✅ " if on else "▫️ ") + name, callback_data=f"bt:{key}")]
        for key, name, on in options
    ]
    rows.append([InlineKeyboardButton(context.t("button-done"), callback_data="bt:done")])
    return InlineKeyboardMarkup(rows)


async def toggle(update: Update, context: MahalleContext) -> object:
    """Switch one district or agency in or out of the audience, or finish choosing."""
    query = update.callback_query
    assert query is not None and query.data is not None
    campaign = await _draft(update, context)
    if campaign is None:
        return await _lost(update, context)
    choice = query.data.removeprefix("bt:")
    audience = dict(campaign.audience)
    if choice == "done":
        if not (audience.get("ids") or audience.get("agencies")):
            await alert(query, context.t("broadcast-pick-one"))
            return AUDIENCE
        await acknowledge(query, keyboard_removed(query))
        return await _ask_schedule(update, context)
    kind, _, value = choice.partition(":")
    field, item = ("ids", int(value)) if kind == "d" else ("agencies", value)
    chosen = list(audience.get(field, []))
    chosen.remove(item) if item in chosen else chosen.append(item)
    audience[field] = chosen
    await _save(campaign, context, audience=audience)
    await acknowledge(
        query, query.edit_message_reply_markup(reply_markup=await _toggles(context, campaign))
    )
    return AUDIENCE


async def take_neighbourhoods(update: Update, context: MahalleContext) -> object:
    """Neighbourhood names, separated by commas or lines; each is matched forgivingly."""
    message = message_of(update)
    campaign = await _draft(update, context)
    if campaign is None:
        return await _lost(update, context)
    names = split_list(message.text or "")
    found, unmatched = [], []
    county = county_scope(update, context)
    async with context.session() as session:
        for name in names:
            matches = await places.search_neighbourhoods(
                session=session, typed=name, limit=1, county_key=county
            )
            found += [m for m in matches if m not in found]
            unmatched += [] if matches else [name]
    if not found:
        await message.reply_text(context.t("search-nothing"))
        return NEIGHBOURHOODS
    await _save(
        campaign,
        context,
        audience={
            "kind": "neighbourhoods",
            "ids": [p.id for p in found],
            "agencies": [],
            "county": county,
        },
    )
    chosen = context.t(
        "broadcast-neighbourhoods-chosen", names="\n".join(f"• {p.name}" for p in found)
    )
    if unmatched:  # said, not silently left out of the audience
        left_out = "\n".join(f"• {isolate(name)}" for name in unmatched)
        chosen += "\n\n" + context.t("broadcast-neighbourhoods-unmatched", names=left_out)
    await message.reply_text(within(chosen))
    return await _ask_schedule(update, context)


async def _ask_schedule(update: Update, context: MahalleContext) -> object:
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(context.t("button-send-now"), callback_data="bs:now")]]
    )
    await message_of(update).reply_text(context.t("broadcast-ask-time"), reply_markup=markup)
    return SCHEDULE


async def send_now(update: Update, context: MahalleContext) -> object:
    """No schedule: preview and send right after confirming."""
    assert update.callback_query is not None
    await acknowledge(update.callback_query, keyboard_removed(update.callback_query))
    return await _preview(update, context, scheduled=None)


async def take_time(update: Update, context: MahalleContext) -> object:
    """A Jalali date and Tehran time; past or malformed ones are refused with an example."""
    message = message_of(update)
    moment = parse_jalali_datetime(message.text or "")
    if moment is None or moment <= utcnow():
        key = "broadcast-time-past" if moment is not None else "broadcast-time-invalid"
        await message.reply_text(context.t(key))
        return SCHEDULE
    return await _preview(update, context, scheduled=moment)


async def _preview(update: Update, context: MahalleContext, scheduled: Any) -> object:
    campaign = await _draft(update, context)
    if campaign is None:
        return await _lost(update, context)
    async with context.session() as session:
        count = await broadcasts.count_audience(session, campaign.audience)
    await _save(campaign, context, scheduled_at=scheduled or utcnow())
    chat_id = message_of(update).chat.id
    await context.bot.send_message(chat_id, context.t("broadcast-preview-intro"))
    await send_content(context.bot, chat_id, campaign.content)
    when = format_datetime(scheduled, context.language) if scheduled else context.t("broadcast-now")
    go = InlineKeyboardButton(context.t("button-broadcast-go"), callback_data="bg:go")
    cancel = InlineKeyboardButton(context.t("button-cancel-report"), callback_data="bg:cancel")
    async with context.session() as session:
        audience = await _audience_named(context, session, campaign.audience)
    summary = context.t("broadcast-summary", count=count, audience=audience, when=when)
    if count == 0:  # nothing to send: no button that would "queue" it for nobody
        summary += "\n\n" + context.t("broadcast-nobody")
    markup = InlineKeyboardMarkup([[go, cancel] if count else [cancel]])
    await context.bot.send_message(chat_id, summary, reply_markup=markup)
    return CONFIRM


# How many chosen places or agencies the summary names before it says how many more.
NAMED_AT_MOST = 15


async def _audience_named(
    context: MahalleContext, session: AsyncSession, audience: dict[str, Any]
) -> str:
    """The audience as the summary names it: its kind, and the districts, neighbourhoods or
    agencies chosen (the first NAMED_AT_MOST, then how many more)."""
    kind = context.t(AUDIENCE_KEYS[audience["kind"]])
    if audience["kind"] == "districts":
        listed = await places.list_districts(session=session, county_key=audience.get("county"))
        names = [d.name for d in listed if d.id in audience["ids"]]
    elif audience["kind"] == "neighbourhoods":
        known = (await snapshot(session)).places
        names = [known[i].name for i in audience["ids"] if i in known]
    elif audience["kind"] == "staff":
        agencies = await list_agencies(session=session, county_key=audience.get("county"))
        names = [a.name for a in agencies if a.key in audience["agencies"]]
    else:
        return kind
    shown = context.t("list-separator").join(isolate(name) for name in names[:NAMED_AT_MOST])
    if len(names) > NAMED_AT_MOST:
        shown += context.t("broadcast-and-more", count=len(names) - NAMED_AT_MOST)
    return context.t("broadcast-audience-named", kind=kind, names=shown)


async def confirm(update: Update, context: MahalleContext) -> object:
    """Freeze the recipients, post the progress message, and start (or wait for the time)."""
    query = update.callback_query
    assert query is not None
    campaign = await _draft(update, context)
    if campaign is None:
        return await _lost(update, context)
    await acknowledge(query, keyboard_removed(query))
    progress = await message_of(update).reply_text(
        context.t("broadcast-queued"), reply_markup=keyboards.main_menu(context.t)
    )
    async with context.session() as session:
        row = await session.get(Campaign, campaign.id)
        assert row is not None
        count = await broadcasts.launch(
            session, campaign=row, scheduled_at=row.scheduled_at, progress_chat_id=progress.chat.id
        )
        row.progress_message_id = progress.message_id
        await session.commit()
    await start_campaign(context.runtime, campaign.id)
    await progress.edit_text(
        context.t("broadcast-launched", count=count),
        reply_markup=cancel_button(context, campaign.id),
    )
    return END


def cancel_button(context: MahalleContext, campaign_id: int) -> InlineKeyboardMarkup:
    """Stops a running or scheduled campaign."""
    data = context.runtime.card_renderer.signer.sign("bx", campaign_id)
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(context.t("button-stop-broadcast"), callback_data=data)]]
    )


async def abandon(update: Update, context: MahalleContext) -> object:
    """Drop the draft."""
    if update.callback_query:
        await acknowledge(update.callback_query, keyboard_removed(update.callback_query))
    async with context.session() as session:
        await broadcasts.discard_draft(session, created_by=user_id_of(update))
        await session.commit()
    await message_of(update).reply_text(
        context.t("broadcast-cancelled"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


async def stop(update: Update, context: MahalleContext) -> None:
    """The progress message's stop button."""
    query = update.callback_query
    assert query is not None
    parts = await coordinator_button(update, context, "bx")
    if parts is None:
        return
    async with context.session() as session:
        stopped = await broadcasts.set_status(
            session, int(parts[1]), to="cancelled", allowed_from={"scheduled", "running"}
        )
        counts = await broadcasts.progress(session, int(parts[1])) if stopped else None
        await session.commit()
    await alert(query, context.t("broadcast-stopped" if stopped else "already-done"))
    if counts is not None:  # the message says so itself, not "queued" any more
        stopped_text = context.t(
            "broadcast-final-cancelled", sent=counts.sent, failed=counts.failed,
            blocked=counts.blocked, total=counts.total, remaining=counts.pending,
        )  # fmt: skip
        await tidying(query.edit_message_text(stopped_text))


async def _lost(update: Update, context: MahalleContext) -> object:
    await message_of(update).reply_text(
        context.t("draft-missing"), reply_markup=keyboards.main_menu(context.t)
    )
    return END
