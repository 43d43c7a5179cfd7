"""The resident's other screens: my reports, one case, a typed code, my neighbourhood."""

from __future__ import annotations

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import ConversationHandler

from bot.cards import reporter_buttons, status_key
from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import TEXT_LIMIT, cut, units, within
from bot.jalali import TrackingCode, format_date, format_datetime
from bot.services import cases, places, users
from handlers import common, keyboards, participation, picker
from handlers.buttons import acknowledge, alert, keyboard_removed, show_in_place
from handlers.common import remember_user
from handlers.report import END
from models.entities import Case, CaseStatus

NEIGHBOURHOOD_PREFIX = "mn"
PICKING = "picking"
SNIPPET = 60


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _code(case: Case, language: str) -> str:
    return TrackingCode.from_canonical(case.code).display(language)


async def _render_list(
    context: MahalleContext, user_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text and buttons of one page of the user's cases (no buttons when there are none)."""
    async with context.session() as session:
        found, total = await cases.list_reporter_cases(
            session=session,
            reporter_id=user_id,
            offset=page * keyboards.CASES_PAGE_SIZE,
            limit=keyboards.CASES_PAGE_SIZE,
        )
    if total == 0:
        return context.t("my-reports-empty"), None
    pages = -(-total // keyboards.CASES_PAGE_SIZE)
    if page >= pages:  # a page that is no more (cases forgotten) or a forged one: the last
        return await _render_list(context, user_id, pages - 1)
    lines = [context.t("my-reports-title", total=total, page=page + 1, pages=pages)]
    lines += [
        context.t(
            "my-reports-line",
            code=_code(case, context.language),
            status=context.t(status_key(case.status, undeliverable=case.undeliverable)),
            date=format_date(case.created_at, context.language),
            text=isolate(_snippet(case.text_original)),
        )
        for case in found
    ]
    markup = keyboards.case_list(
        context.t, found, page=page, pages=pages, language=context.language
    )
    return "\n\n".join(lines), markup


async def my_reports(update: Update, context: MahalleContext) -> None:
    """The first page of the resident's own cases, newest first."""
    assert update.effective_message is not None and update.effective_user is not None
    await remember_user(update, context)
    text, markup = await _render_list(context, update.effective_user.id, 0)
    await update.effective_message.reply_text(
        text, reply_markup=markup or keyboards.main_menu(context.t)
    )
    await participation.show_joined(update, context)


async def my_reports_page(update: Update, context: MahalleContext) -> None:
    """Another page of the list, edited in place."""
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_user is not None
    page = int(query.data.rsplit(":", 1)[-1])
    text, markup = await _render_list(context, update.effective_user.id, max(page, 0))
    await acknowledge(query, show_in_place(query, text, markup))


# A step's note (a question, an answer, a resolution) is cut to this many units in the case
# view, so any one step fits a page beside the case's own lines.
HISTORY_NOTE = 1500
# Units kept free on a history page for its page numbers.
PAGE_NUMBERS = 16


def _history_lines(context: MahalleContext, case: Case) -> list[str]:
    """One line per step of the case, oldest first."""
    latest = len(case.events) - 1
    return [
        context.t(
            "case-history-line",
            date=format_datetime(event.created_at, context.language),
            status=context.t(
                status_key(event.to_status, undeliverable=case.undeliverable and i == latest)
            ),
            note=(
                f"— {isolate(cut(event.note, HISTORY_NOTE))}"
                if event.note and event.to_status in WORDS_FOR_THE_REPORTER
                else ""
            ),
        ).rstrip(" :")
        for i, event in enumerate(case.events)
    ]


# The steps whose note is words written for the reporter to read: the agency's question,
# resolution or reason, and the reporter's own answer. Other steps keep notes for the records
# (the domain a case was rerouted to, who placed it), in the system's own terms.
WORDS_FOR_THE_REPORTER = frozenset(
    {CaseStatus.NEEDS_INFO, CaseStatus.RESOLVED, CaseStatus.REJECTED, CaseStatus.ACCEPTED}
)


def _first_page(context: MahalleContext, case: Case, history: str) -> str:
    """The case itself (its description cut to the bound descriptions have) and `history`."""
    return context.t(
        "case-detail",
        code=_code(case, context.language),
        status=context.t(status_key(case.status, undeliverable=case.undeliverable)),
        neighbourhood=isolate(case.neighbourhood.name),
        date=format_datetime(case.created_at, context.language),
        text=isolate(cut(case.text_original, cases.MAX_TEXT)),
        photos=len(case.photo_file_ids),
        location=context.t("yes" if case.latitude is not None else "no"),
        history=history,
    )


def _later_page(context: MahalleContext, case: Case, history: str, page: int, pages: int) -> str:
    """A page of older steps."""
    return context.t(
        "case-history-page",
        code=_code(case, context.language),
        page=page + 1,
        pages=pages,
        history=history,
    )


def _history_pages(context: MahalleContext, case: Case) -> list[list[str]]:
    """The steps split into pages that each fit a message, the newest steps on the first page
    (beside the case itself), older ones on the next; oldest first within a page."""
    rooms = [
        TEXT_LIMIT - units(_first_page(context, case, "")),
        TEXT_LIMIT - units(_later_page(context, case, "", 0, 1)) - PAGE_NUMBERS,
    ]
    pages: list[list[str]] = [[]]
    room = rooms[0]
    for line in reversed(_history_lines(context, case)):
        need = units(line) + 1
        if need > room and pages[-1]:
            pages.append([])
            room = rooms[1]
        pages[-1].insert(0, line)
        room -= need
    return pages


def _render_case(
    context: MahalleContext, case: Case, page: int = 0
) -> tuple[str, list[InlineKeyboardButton]]:
    """One page of the case view, and its paging buttons (older, newer steps).

    The view fits a message however long the history grows: each step's note is cut to
    HISTORY_NOTE, and the steps run over pages, older ones a button away."""
    pages = _history_pages(context, case)
    page = min(max(page, 0), len(pages) - 1)
    history = "\n".join(pages[page])
    if page == 0:
        text = _first_page(context, case, history)
    else:
        text = _later_page(context, case, history, page, len(pages))
    nav = []
    if page + 1 < len(pages):
        older = context.t("button-history-older")
        nav.append(InlineKeyboardButton(older, callback_data=f"my:c:{case.id}:{page + 1}"))
    if page > 0:
        newer = context.t("button-history-newer")
        nav.append(InlineKeyboardButton(newer, callback_data=f"my:c:{case.id}:{page - 1}"))
    return within(text), nav


async def open_case(update: Update, context: MahalleContext) -> None:
    """One of the resident's cases with its history (a page of it); someone else's case is
    simply not found."""
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_user is not None
    parts = query.data.split(":")
    async with context.session() as session:
        case = await cases.get_reporter_case(
            session=session, reporter_id=update.effective_user.id, case_id=int(parts[2])
        )
    if case is None:
        await alert(query, context.t("case-not-found"))
        return
    text, nav = _render_case(context, case, int(parts[3]) if len(parts) > 3 else 0)
    back = keyboards.back_to_cases(context.t).inline_keyboard
    markup = InlineKeyboardMarkup([*_owed(context, case), *([nav] if nav else []), *back])
    await acknowledge(query, show_in_place(query, text, markup))


async def typed_code(update: Update, context: MahalleContext) -> None:
    """A tracking code typed in any digits: shown only to its reporter."""
    message = update.effective_message
    assert message is not None and message.text is not None and update.effective_user is not None
    if await common.took_owed_step(update, context):  # a clerk's reason may quote a code
        return
    code = TrackingCode.parse(message.text)
    case = None
    if code is not None:
        async with context.session() as session:
            case = await cases.get_reporter_case(
                session=session, reporter_id=update.effective_user.id, code=code
            )
    if case is None:
        await message.reply_text(
            context.t("case-not-found"), reply_markup=keyboards.main_menu(context.t)
        )
        return
    text, nav = _render_case(context, case)
    # What the case waits for from its reporter and older steps, a button away; else the main
    # menu, as after any answer.
    rows = [*_owed(context, case), *([nav] if nav else [])]
    markup = InlineKeyboardMarkup(rows) if rows else keyboards.main_menu(context.t)
    await message.reply_text(text, reply_markup=markup)


def _owed(context: MahalleContext, case: Case) -> list[list[InlineKeyboardButton]]:
    """The buttons of what the case waits for from its reporter (answer, "was it fixed?", a
    rating), as its notice carried them, for one who reads the case rather than the notice."""
    found = reporter_buttons(
        case.id, case.status, case.rating is not None, context.t,
        context.runtime.card_renderer.signer,
    )  # fmt: skip
    if found is None:
        return []
    return [list(row) for row in InlineKeyboardMarkup.de_json(found, None).inline_keyboard]


# --- my neighbourhood -----------------------------------------------------------------------


async def my_neighbourhood(update: Update, context: MahalleContext) -> str:
    """Show the saved neighbourhood and the picker to change it."""
    assert update.effective_message is not None and update.effective_user is not None
    async with context.session() as session:
        user = await users.get_or_create_user(
            session=session, user_id=update.effective_user.id, language=context.language
        )
        await session.commit()
        mine = places.served(user.neighbourhood, context.runtime.served_counties)
        current = user.neighbourhood.name if user.neighbourhood and mine else None
    context.remember_language(user.language)
    key = "my-neighbourhood-current" if current else "my-neighbourhood-none"
    await update.effective_message.reply_text(
        context.t(key, name=isolate(current or "")), reply_markup=keyboards.cancel_only(context.t)
    )
    await picker.send_picker(update, context, NEIGHBOURHOOD_PREFIX)
    return PICKING


async def save_picked(update: Update, context: MahalleContext) -> object:
    """Save the chosen neighbourhood as the user's own."""
    assert update.callback_query is not None and update.effective_user is not None
    place = await picker.picked(update.callback_query, context)
    if place is None:
        return PICKING
    async with context.session() as session:
        user = await users.get_or_create_user(
            session=session, user_id=update.effective_user.id, language=context.language
        )
        await users.save_neighbourhood(session=session, user=user, neighbourhood_id=place.id)
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        context.t("my-neighbourhood-saved", name=isolate(place.name)),
        reply_markup=keyboards.main_menu(context.t),
    )
    return END


async def keep_neighbourhood(update: Update, context: MahalleContext) -> object:
    """Leave the saved neighbourhood as it was."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        context.t("my-neighbourhood-unchanged"), reply_markup=keyboards.main_menu(context.t)
    )
    return END


# --- settings -------------------------------------------------------------------------------


def _settings_view(context: MahalleContext, opted_in: bool) -> tuple[str, InlineKeyboardMarkup]:
    state = context.t("broadcasts-on" if opted_in else "broadcasts-off")
    button = context.t("button-broadcasts-off" if opted_in else "button-broadcasts-on")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(button, callback_data="st:b")]])
    return context.t("settings", broadcasts=state), markup


async def settings_menu(update: Update, context: MahalleContext) -> None:
    """/settings: whether the resident receives broadcasts."""
    assert update.effective_message is not None and update.effective_user is not None
    async with context.session() as session:
        user = await users.get_or_create_user(
            session=session, user_id=update.effective_user.id, language=context.language
        )
        await session.commit()
    text, markup = _settings_view(context, user.broadcasts_opt_in)
    await update.effective_message.reply_text(text, reply_markup=markup)


async def toggle_broadcasts(update: Update, context: MahalleContext) -> None:
    """Switch broadcasts on or off."""
    query = update.callback_query
    assert query is not None
    async with context.session() as session:
        opted_in = await users.toggle_broadcasts(session=session, user_id=query.from_user.id)
    text, markup = _settings_view(context, opted_in)
    await acknowledge(query, query.edit_message_text(text, reply_markup=markup))


# --- forgetting a resident ------------------------------------------------------------------


async def forget_me(update: Update, context: MahalleContext) -> None:
    """/forget_me: explain what is removed and ask to confirm."""
    assert update.effective_message is not None
    markup = InlineKeyboardMarkup(
        [[
            InlineKeyboardButton(context.t("button-forget-yes"), callback_data="fm:yes"),
            InlineKeyboardButton(context.t("button-forget-no"), callback_data="fm:no"),
        ]]
    )  # fmt: skip
    await update.effective_message.reply_text(context.t("forget-explain"), reply_markup=markup)


async def forget_confirmed_in_flow(update: Update, context: MahalleContext) -> object:
    """The forget buttons pressed mid-flow: forgotten, the flow ends; kept, it goes on."""
    await forget_confirmed(update, context)
    query = update.callback_query
    return ConversationHandler.END if query is not None and query.data == "fm:yes" else None


async def forget_confirmed(update: Update, context: MahalleContext) -> None:
    """Remove the presser's identity and contact; their cases stay, anonymised."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await acknowledge(query, keyboard_removed(query))
    if query.data != "fm:yes":
        await context.bot.send_message(query.from_user.id, context.t("forget-kept"))
        return
    async with context.session() as session:
        cases_kept = await users.forget(
            session=session, user_id=query.from_user.id, cards=context.runtime.card_renderer
        )
        await session.commit()
    if context.user_data is not None:
        context.user_data.clear()
    context.runtime.presses.forget(query.from_user.id)
    context.runtime.messages.forget(query.from_user.id)
    await context.bot.send_message(
        query.from_user.id,
        context.t("forget-done", cases=cases_kept),
        reply_markup=ReplyKeyboardRemove(),
    )
