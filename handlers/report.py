"""The resident's new-report conversation: neighbourhood, description, media, privacy, confirm."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from enum import StrEnum
from typing import Any

from telegram import Update
from telegram.ext import ConversationHandler

from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import fit
from bot.jalali import TrackingCode
from bot.normalize import clean_text, squash
from bot.pipeline import place_in_background
from bot.services import cases, drafts, places, users
from bot.services.drafts import MAX_PHOTOS, MAX_VOICE_SECONDS, MAX_VOICES, ReportDraft
from handlers import keyboards, participation, picker
from handlers.buttons import acknowledge, alert, keyboard_removed
from handlers.common import message_of, step_ahead, unexpected_kind, user_id_of
from handlers.danger import emergency_text
from handlers.groups import on_behalf_buttons, reporter_groups
from models.entities import Neighbourhood

PREFIX = "rn"
DESCRIPTION_PROBLEM_KEYS = {
    "short": "description-too-short",
    "blank": "description-few-letters",
    "long": "description-too-long",
}
END = ConversationHandler.END


class Step(StrEnum):
    """Named states of the report conversation (stored in the database as their value)."""

    NEIGHBOURHOOD = "neighbourhood"
    DESCRIPTION = "description"
    MEDIA = "media"
    PRIVACY = "privacy"
    GROUP = "group"
    CONFIRM = "confirm"


async def _load(update: Update, context: MahalleContext) -> ReportDraft | None:
    async with context.autocommit() as session:
        return await drafts.load_draft(session=session, user_id=user_id_of(update))


async def _save(
    update: Update, context: MahalleContext, draft: ReportDraft, then: Step | None = None
) -> None:
    """Save the draft; `then`: the step the handler went on to, its question already sent,
    written with it (one statement for the whole update, which also records it as handled)."""
    also = step_ahead(update, context, then) if then is not None else None
    async with context.autocommit() as session:  # one statement
        await drafts.save_draft(session=session, user_id=user_id_of(update), draft=draft, also=also)


async def _answered(
    update: Update,
    context: MahalleContext,
    draft: ReportDraft,
    answer: Callable[[], Coroutine[Any, Any, Step]],
) -> Step:
    """Answer the step (`answer` sends the next question and returns its step), then save the
    draft with that step in one statement, which also records the update as handled. Answered
    first: a process that dies between the two has recorded nothing, so Telegram's second
    delivery of the update is handled again (the question may come twice; no one is left
    without it). A reply that fails still saves the draft, the step left where it was: nothing
    typed is lost."""
    try:
        step = await answer()
    except Exception:
        await _save(update, context, draft)
        raise
    await _save(update, context, draft, step)
    return step


async def _draft_lost(update: Update, context: MahalleContext) -> object:
    """The conversation outlived its draft (already submitted, or cancelled): start over."""
    if update.callback_query:
        await acknowledge(update.callback_query)
    await message_of(update).reply_text(
        context.t("draft-missing"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


# --- prompts: what each step asks ----------------------------------------------------------


async def _ask_neighbourhood(
    update: Update, context: MahalleContext, saved: Neighbourhood | None
) -> Step:
    if saved is not None:
        await message_of(update).reply_text(
            context.t("ask-neighbourhood-saved", name=isolate(saved.name)),
            reply_markup=keyboards.saved_neighbourhood_offer(context.t, saved, PREFIX),
        )
    else:
        await picker.send_picker(update, context, PREFIX)
    return Step.NEIGHBOURHOOD


async def _ask_description(update: Update, context: MahalleContext) -> Step:
    await message_of(update).reply_text(
        context.t("ask-description", low=cases.MIN_TEXT, high=cases.MAX_TEXT),
        reply_markup=keyboards.cancel_only(context.t),
    )
    return Step.DESCRIPTION


async def _ask_media(update: Update, context: MahalleContext) -> Step:
    await message_of(update).reply_text(
        context.t("ask-media", limit=MAX_PHOTOS, voices=MAX_VOICES),
        reply_markup=keyboards.media_keyboard(context.t),
    )
    return Step.MEDIA


async def _ask_privacy(update: Update, context: MahalleContext) -> Step:
    await message_of(update).reply_text(
        context.t("ask-privacy"), reply_markup=keyboards.privacy_keyboard(context.t)
    )
    return Step.PRIVACY


async def _show_summary(update: Update, context: MahalleContext, draft: ReportDraft) -> Step:
    draft.editing = False
    async with context.autocommit() as session:
        place = await places.get_neighbourhood(
            session=session, neighbourhood_id=draft.neighbourhood_id or 0,
            counties=context.runtime.served_counties,
        )  # fmt: skip
    if place is None:  # removed from the config since it was picked
        draft.neighbourhood_id, draft.editing = None, True  # then straight back to the summary

        async def ask_again() -> Step:
            """Say the neighbourhood is gone, and ask for one."""
            await message_of(update).reply_text(context.t("neighbourhood-gone"))
            return await _ask_neighbourhood(update, context, None)

        return await _answered(update, context, draft, ask_again)
    on_behalf, name, district = "", place.name, place.district_name
    if draft.group_id:
        names = {g.id: g.name for g in await reporter_groups(context, user_id_of(update))}
        if draft.group_id in names:
            on_behalf = context.t("summary-on-behalf", group=isolate(names[draft.group_id]))

    def render(text: str) -> str:
        """The summary around the description (cut, if need be, to fit a message)."""
        summary = context.t(
            "report-summary",
            neighbourhood=isolate(name),
            district=isolate(district),
            text=isolate(text),
            photos=len(draft.photo_file_ids),
            voices=len(draft.voice_file_ids),
            location=context.t("yes" if draft.has_location else "no"),
            privacy=context.t("privacy-shared" if draft.share_phone else "privacy-anonymous"),
        )
        return f"{on_behalf}\n{summary}" if on_behalf else summary

    async def show() -> Step:
        """The summary, with its confirm and edit buttons."""
        summary = fit(render, draft.text or "")
        await message_of(update).reply_text(
            context.t("summary-intro"), reply_markup=keyboards.cancel_only(context.t)
        )
        await message_of(update).reply_text(
            summary, reply_markup=keyboards.summary_actions(context.t, draft.token)
        )
        return Step.CONFIRM

    return await _answered(update, context, draft, show)


async def _after(update: Update, context: MahalleContext, draft: ReportDraft, done: Step) -> Step:
    """The next step in order, or straight back to the summary when one part was edited."""
    if done is Step.PRIVACY and not draft.editing:
        member_of = await reporter_groups(context, user_id_of(update))
        if member_of:

            async def ask_on_behalf() -> Step:
                """Ask whether to report for one of their groups."""
                await message_of(update).reply_text(
                    context.t("ask-on-behalf"), reply_markup=on_behalf_buttons(context, member_of)
                )
                return Step.GROUP

            return await _answered(update, context, draft, ask_on_behalf)
    if draft.editing or done in (Step.PRIVACY, Step.GROUP):
        return await _show_summary(update, context, draft)
    ask = {Step.NEIGHBOURHOOD: _ask_description, Step.DESCRIPTION: _ask_media}.get(
        done, _ask_privacy
    )
    return await _answered(update, context, draft, lambda: ask(update, context))


# --- entry ----------------------------------------------------------------------------------


async def new_report(update: Update, context: MahalleContext) -> object:
    """Start a report, unless the hourly limit is reached."""
    limit = context.runtime.settings.bot.reports_per_hour
    # Reads, and writes whole in one statement each (the person's row when new, the draft).
    async with context.autocommit() as session:
        wait, known = await cases.minutes_with_reporter(
            session=session, reporter_id=user_id_of(update), limit=limit
        )
        if wait:
            await message_of(update).reply_text(
                context.t("rate-limited", limit=limit, minutes=wait),
                reply_markup=keyboards.main_menu(context.t),
            )
            return END
        user = await users.get_or_create_user(  # `known` is in the session: no second read
            session=session, user_id=user_id_of(update), language=context.language
        )
        assert known is None or known is user
        await session.commit()  # a new person's row, or one who unblocked the bot
        saved = user.neighbourhood if user.neighbourhood and user.neighbourhood.active else None
        if not places.served(saved, context.runtime.served_counties):
            saved = None  # saved in another bot of the deployment, for another county
    context.remember_language(user.language)

    async def ask_first() -> Step:
        """Say the report has begun, and ask where."""
        await message_of(update).reply_text(
            context.t("report-started"), reply_markup=keyboards.cancel_only(context.t)
        )
        return await _ask_neighbourhood(update, context, saved)

    return await _answered(update, context, ReportDraft(), ask_first)


# --- neighbourhood --------------------------------------------------------------------------


async def pick_neighbourhood(update: Update, context: MahalleContext) -> object:
    """Store the chosen neighbourhood and move on."""
    assert update.callback_query is not None
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    place = await picker.picked(update.callback_query, context)
    if place is None:
        return Step.NEIGHBOURHOOD
    draft.neighbourhood_id = place.id
    return await _after(update, context, draft, Step.NEIGHBOURHOOD)


# --- description ----------------------------------------------------------------------------


async def take_description(update: Update, context: MahalleContext) -> object:
    """Accept the description when its length is within bounds."""
    message = message_of(update)
    text = clean_text(message.text or message.caption or "")
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    if message.photo:
        draft.add_photo(message.photo[-1].file_id)
    if problem := cases.description_problem(text):
        kind, length = problem
        key = DESCRIPTION_PROBLEM_KEYS[kind]
        if message.photo:
            await _save(update, context, draft)
            key = key if text else "photo-kept-need-text"
        await message.reply_text(
            context.t(key, length=length, low=cases.MIN_TEXT, high=cases.MAX_TEXT)
        )
        return Step.DESCRIPTION
    draft.text = text.strip()
    return await _after(update, context, draft, Step.DESCRIPTION)


async def replace_description(update: Update, context: MahalleContext) -> object:
    """Text typed at the photos step that makes a description is the description sent again
    (after an edit the bot does not read, say): it replaces the one kept. Anything shorter is
    answered as any unexpected text there."""
    message = message_of(update)
    text = clean_text(message.text or "")
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    if cases.description_problem(text):  # a word or two ("ok"), not a description
        return await unexpected(Step.MEDIA, EXPECT_KEYS[Step.MEDIA])(update, context)
    draft.text = text.strip()
    await _save(update, context, draft)
    await message.reply_text(context.t("description-replaced"))
    return Step.MEDIA


# --- photos and location --------------------------------------------------------------------


async def add_photo(update: Update, context: MahalleContext) -> object:
    """Keep a photo, up to the limit. An album (many photos sent together, each its own message)
    is answered once, at its first photo, and once more if some of it was left out."""
    message = message_of(update)
    assert message.photo
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    album = message.media_group_id
    if album is not None and album == draft.album:
        return await _add_album_photo(update, context, draft, message.photo[-1].file_id)
    draft.album, draft.album_overflow_told = album, False
    if not draft.add_photo(message.photo[-1].file_id):
        draft.album_overflow_told = True
        await _save(update, context, draft)
        await message.reply_text(context.t("photo-limit", limit=MAX_PHOTOS))
        return Step.MEDIA
    await _save(update, context, draft)
    if album is not None:
        await message.reply_text(context.t("album-received", limit=MAX_PHOTOS))
        return Step.MEDIA
    await message.reply_text(
        context.t("photo-received", count=len(draft.photo_file_ids), limit=MAX_PHOTOS)
    )
    return Step.MEDIA


async def _add_album_photo(
    update: Update, context: MahalleContext, draft: ReportDraft, file_id: str
) -> object:
    """A later photo of an album already answered: kept silently, or past the limit left out
    (said once for the album)."""
    if draft.add_photo(file_id):
        await _save(update, context, draft)
        return Step.MEDIA
    if not draft.album_overflow_told:
        draft.album_overflow_told = True
        await _save(update, context, draft)
        await message_of(update).reply_text(context.t("album-limit", limit=MAX_PHOTOS))
    return Step.MEDIA


async def add_voice(update: Update, context: MahalleContext) -> object:
    """Keep a short voice message with the report, up to the limit; the written description
    stays what the agency reads first."""
    return await _keep_voice(update, context, Step.MEDIA)


async def voice_before_description(update: Update, context: MahalleContext) -> object:
    """A voice message sent when the description is asked for: kept, as a photo would be, and
    the description still asked for in writing."""
    return await _keep_voice(update, context, Step.DESCRIPTION)


async def _keep_voice(update: Update, context: MahalleContext, step: Step) -> object:
    """Keep the voice message in the draft (within the length and count limits) and stay at
    `step`, saying what was kept and, before the description, that it is still wanted."""
    message = message_of(update)
    assert message.voice is not None
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    length = message.voice.duration
    seconds = length.total_seconds() if isinstance(length, timedelta) else length
    if seconds > MAX_VOICE_SECONDS:
        await message.reply_text(context.t("voice-too-long", minutes=MAX_VOICE_SECONDS // 60))
        return step
    if not draft.add_voice(message.voice.file_id):
        key = "voice-limit" if step is Step.MEDIA else "voice-limit-need-text"
        await message.reply_text(context.t(key, limit=MAX_VOICES, low=cases.MIN_TEXT))
        return step
    await _save(update, context, draft)
    said = context.t("voice-received", count=len(draft.voice_file_ids), limit=MAX_VOICES)
    if step is Step.DESCRIPTION:
        said += "\n" + context.t("voice-kept-need-text", low=cases.MIN_TEXT)
    await message.reply_text(said)
    return step


async def add_location(update: Update, context: MahalleContext) -> object:
    """Keep a location if it lies inside the county."""
    message = message_of(update)
    assert message.location is not None
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    async with context.session() as session:
        box = await places.bounding_box(
            session=session,
            settings=context.runtime.settings,
            neighbourhood_id=draft.neighbourhood_id,
        )
    if box is not None and not box.contains(message.location.latitude, message.location.longitude):
        await message.reply_text(context.t("location-outside"))
        return Step.MEDIA
    draft.latitude, draft.longitude = message.location.latitude, message.location.longitude
    await _save(update, context, draft)
    await message.reply_text(context.t("location-received"))
    return Step.MEDIA


async def media_done(update: Update, context: MahalleContext) -> object:
    """Photos and location are done (or skipped)."""
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    return await _after(update, context, draft, Step.MEDIA)


# --- privacy --------------------------------------------------------------------------------


async def share_contact(update: Update, context: MahalleContext) -> object:
    """Accept the user's own phone number, and only theirs."""
    message = message_of(update)
    assert message.contact is not None
    if message.contact.user_id != user_id_of(update):
        await message.reply_text(context.t("contact-not-yours"))
        return Step.PRIVACY
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    draft.share_phone, draft.phone = True, message.contact.phone_number
    return await _after(update, context, draft, Step.PRIVACY)


async def stay_anonymous(update: Update, context: MahalleContext) -> object:
    """Keep the reporter's identity from the agency."""
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    draft.share_phone, draft.phone = False, None
    return await _after(update, context, draft, Step.PRIVACY)


async def choose_group(update: Update, context: MahalleContext) -> object:
    """Report as oneself, or on behalf of one of one's approved groups."""
    query = update.callback_query
    assert query is not None and query.data is not None
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    wanted = int(query.data.removeprefix("rg:"))
    member_of = {g.id for g in await reporter_groups(context, user_id_of(update))}
    if wanted and wanted not in member_of:
        await alert(query, context.t("button-stale"))
        return Step.GROUP
    await acknowledge(query, keyboard_removed(query))
    draft.group_id = wanted or None
    return await _after(update, context, draft, Step.GROUP)


# --- summary: confirm, edit, cancel ---------------------------------------------------------


async def confirm(update: Update, context: MahalleContext) -> object:
    """Commit the case, then (only then) tell the reporter its tracking code."""
    query = update.callback_query
    assert query is not None and query.data is not None
    draft = await _load(update, context)
    if draft is None or query.data != f"rc:{draft.token}":
        return await already_confirmed(update, context)
    if (missing := await _missing_part(context, draft)) is not None:
        # Changed since its summary was shown: its place left the config, or the person's
        # draft was taken on in another bot of the deployment. Ask for the part again.
        await acknowledge(query, keyboard_removed(query))
        return await missing(update, context, draft)
    if await participation.offer_to_join(update, context, draft):
        return Step.CONFIRM
    limit = context.runtime.settings.bot.reports_per_hour
    async with context.autocommit() as session:  # one statement on PostgreSQL
        allowed, taken = await cases.take_code_if_allowed(
            session=session, reporter_id=user_id_of(update), limit=limit,
            limit_all=context.runtime.settings.bot.reports_per_minute_all,
        )  # fmt: skip
    if allowed.minutes:
        await alert(query, context.t("rate-limited", limit=limit, minutes=allowed.minutes))
        return Step.CONFIRM
    if allowed.everyone_busy or taken is None:
        await alert(query, context.t("busy-everyone"))
        return Step.CONFIRM
    async with context.autocommit() as session:  # one statement on PostgreSQL
        submission = await cases.submit_report(
            session=session, reporter_id=user_id_of(update), draft=draft, code=taken
        )
    # Committed: the case exists whatever happens next. It is placed in the background, in a
    # transaction of its own; the reporter hears where it went from the outbox.
    if submission.created:
        place_in_background(context.runtime, submission.case.id)
    await acknowledge(query, keyboard_removed(query))
    code = TrackingCode.from_canonical(submission.case.code).display(context.language)
    await message_of(update).reply_text(
        context.t("report-submitted", code=code), reply_markup=keyboards.main_menu(context.t)
    )
    if submission.created and (warning := emergency_text(submission.case.text_original, context.t)):
        await message_of(update).reply_text(warning)
    return END


async def _missing_part(
    context: MahalleContext, draft: ReportDraft
) -> Callable[[Update, MahalleContext, ReportDraft], Coroutine[Any, Any, Step]] | None:
    """What asks again for a part a draft at its confirm lacks (its description, or a place
    this bot serves), or None when it has both."""
    if not draft.text:
        return _ask_description_again
    async with context.autocommit() as session:
        place = await places.get_neighbourhood(
            session=session, neighbourhood_id=draft.neighbourhood_id or 0,
            counties=context.runtime.served_counties,
        )  # fmt: skip
    return _show_summary if place is None else None  # the summary asks for a place


async def _ask_description_again(
    update: Update, context: MahalleContext, draft: ReportDraft
) -> Step:
    """Ask for the description, then go back to the summary."""
    draft.editing = True
    return await _answered(update, context, draft, lambda: _ask_description(update, context))


async def already_confirmed(update: Update, context: MahalleContext) -> object:
    """A confirm press for a draft that is no longer open: name the case it became, if any."""
    query = update.callback_query
    assert query is not None and query.data is not None
    token = query.data.removeprefix("rc:")
    async with context.session() as session:
        case = await cases.find_case_by_draft(
            session=session, reporter_id=user_id_of(update), token=token
        )
    if case is None:
        await alert(query, context.t("button-stale"))
        return None
    code = TrackingCode.from_canonical(case.code).display(context.language)
    await alert(query, context.t("already-submitted", code=code))
    return None


async def choose_edit(update: Update, context: MahalleContext) -> Step:
    """Offer the parts of the report that can be changed."""
    query = update.callback_query
    assert query is not None
    await acknowledge(
        query, query.edit_message_reply_markup(reply_markup=keyboards.edit_choices(context.t))
    )
    return Step.CONFIRM


async def edit_part(update: Update, context: MahalleContext) -> object:
    """Go back to one step; finishing it returns to the summary."""
    query = update.callback_query
    assert query is not None and query.data is not None
    draft = await _load(update, context)
    if draft is None:
        return await _draft_lost(update, context)
    await acknowledge(query, keyboard_removed(query))
    part = query.data.removeprefix("re:")
    if part == "summary":
        return await _show_summary(update, context, draft)
    draft.editing = True
    if part == "media":
        draft.photo_file_ids, draft.latitude, draft.longitude = [], None, None
        draft.voice_file_ids = []
    await _save(update, context, draft)
    if part == "neighbourhood":
        return await _ask_neighbourhood(update, context, None)
    if part == "description":
        return await _ask_description(update, context)
    if part == "media":
        return await _ask_media(update, context)
    return await _ask_privacy(update, context)


async def cancel(update: Update, context: MahalleContext) -> object:
    """Drop the draft and return to the main menu."""
    if update.callback_query:
        await acknowledge(update.callback_query, keyboard_removed(update.callback_query))
    async with context.session() as session:
        await drafts.discard_draft(session=session, user_id=user_id_of(update))
    await message_of(update).reply_text(
        context.t("report-cancelled"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


# --- anything else --------------------------------------------------------------------------

EXPECT_KEYS = {
    Step.NEIGHBOURHOOD: "expect-neighbourhood",
    Step.DESCRIPTION: "expect-description",
    Step.MEDIA: "expect-media",
    Step.PRIVACY: "expect-privacy",
    Step.GROUP: "expect-buttons",
    Step.CONFIRM: "expect-confirm",
}


# The main menu's labels: pressed mid-flow from a keyboard shown before the flow began.
_MENU_KEYS = ("menu-new-report", "menu-my-reports", "menu-my-neighbourhood")


def _a_menu_label(text: str | None, context: MahalleContext) -> bool:
    """Whether `text` is one of the main menu's labels, tapped or typed."""
    typed = squash(text or "")
    return bool(typed) and any(typed == squash(context.t(key)) for key in _MENU_KEYS)


def unexpected(
    state: str, expect_key: str
) -> Callable[[Update, MahalleContext], Coroutine[Any, Any, str]]:
    """A handler for whatever a state cannot take: say what it expects, keep the draft."""

    async def reply_unexpected(update: Update, context: MahalleContext) -> str:
        """Say what this state expects instead."""
        message = message_of(update)
        kind = unexpected_kind(message)
        lines = [context.t(kind), context.t(expect_key)]
        if kind == "unexpected-command":  # /start, /forget_me…: first this, or leave it
            lines.append(context.t("expect-finish-or-cancel"))
        elif _a_menu_label(message.text, context):  # the main menu, pressed from before
            lines.append(
                context.t("expect-finish-or-cancel-menu", cancel=context.t("button-cancel"))
            )
        await message.reply_text("\n".join(lines))
        return state

    return reply_unexpected
