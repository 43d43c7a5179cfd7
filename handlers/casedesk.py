"""The desk of agency staff and coordinators: a case by the code read out on the phone, with its
whole history; an agency's open cases (overdue first) and the triage queue, paged and narrowed
with buttons; a search of descriptions; and the card of a listed case, sent again to act on.

Where someone asks decides what they see: in an agency's group, that agency's cases (its staff
and its county's coordinators); in a private chat, the cases of every agency the person is staff
of and, for a coordinator, their county. Every press is checked again against the presser.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest

from bot.cards import CASE_PREFIX, STATUS_KEYS, code_for_display, map_links
from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import TEXT_LIMIT, cut, units, within
from bot.jalali import (
    TrackingCode,
    format_date,
    format_datetime,
    jalali_year,
    spoken_codes,
    utcnow,
)
from bot.rules import Act, Verdict
from bot.services import casework, council, lookup, outbox, routing
from bot.services.lookup import Filters, Scope
from bot.services.reference import list_agencies
from handlers import common, keyboards
from handlers.buttons import acknowledge, alert, tidying
from models.entities import Agency, Case, CaseStatus, Domain, Neighbourhood, Staff

PAGE_SIZE = 6
SNIPPET = 50
NOTE = 500  # a step's note is cut to this in the history
TRIAGE = "~t"  # the list token of the triage queue
LIST, PICK, OPEN, CARD, MENU = "dl", "df", "do", "dc", "dm"
FILTER_KEYS = {"n": "button-filter-place", "d": "button-filter-domain", "s": "button-filter-status"}
PICK_KEYS = {"n": "desk-pick-n", "d": "desk-pick-d", "s": "desk-pick-s"}


@dataclass(frozen=True)
class Desk:
    """Who asks, where: the scope they see, and the agency whose group this is (if one)."""

    scope: Scope
    agency: Agency | None
    county_key: str | None  # the county they coordinate, if they do


async def desk_of(update: Update, context: MahalleContext) -> Desk | None:
    """The asker's desk here, or None when they have none (a resident, a passer-by)."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return None
    settings = context.runtime.settings
    county = settings.county_of_coordinator(user.id)
    async with context.session() as session:
        if chat.type == ChatType.PRIVATE:
            agency = None
            staff_of = list(
                await session.scalars(select(Staff.agency_key).where(Staff.user_id == user.id))
            )
        else:
            agency = await session.scalar(select(Agency).where(Agency.chat_id == chat.id))
            staff = await session.get(Staff, (user.id, agency.key)) if agency is not None else None
            staff_of = [agency.key] if agency is not None and staff is not None else []
    if agency is not None:
        # An agency's group sees that agency's cases only, whoever asks there.
        if county is not None and agency.county_key == county.key:
            staff_of = [agency.key]
        return Desk(Scope(frozenset(staff_of)), agency, None) if staff_of else None
    # A county's cases show in a private chat or in the county's coordinators' group only.
    private = chat.type == ChatType.PRIVATE
    coordinates = county is not None and (private or chat.id == county.coordinator_chat_id)
    counties = frozenset({county.key}) if coordinates and county is not None else frozenset()
    scope = Scope(frozenset(staff_of), counties)
    if not scope:
        return None
    return Desk(scope, None, county.key if counties and county is not None else None)


def _code(case: Case | str, language: str) -> str:
    """A case's code as people read it."""
    return code_for_display(case if isinstance(case, str) else case.code, language)


def _snippet(text: str) -> str:
    """The start of a description, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _button(context: MahalleContext, text: str, *parts: object) -> InlineKeyboardButton:
    """A button whose data is signed (checked again when pressed)."""
    return InlineKeyboardButton(
        text, callback_data=context.runtime.card_renderer.signer.sign(*parts)
    )


# --- looking a case up ------------------------------------------------------------------------


def _actor(context: MahalleContext, case: Case, actor_id: int | None, name: str | None) -> str:
    """Who took a step, as staff read it."""
    if name:
        return isolate(name)
    if actor_id is None:
        return context.t("desk-actor-system")
    return context.t("desk-actor-reporter")


def _history(context: MahalleContext, case: Case) -> list[str]:
    """One line per step, oldest first: when, what, who, and what they wrote."""
    lines = []
    for event in case.events:
        line = context.t(
            "desk-history-line",
            date=format_datetime(event.created_at, context.language),
            status=context.t(STATUS_KEYS[CaseStatus(event.to_status)]),
            actor=_actor(context, case, event.actor_id, event.actor_name),
        )
        if event.note and event.to_status != CaseStatus.REROUTED:
            line += "\n" + context.t("desk-history-note", note=isolate(cut(event.note, NOTE)))
        lines.append(line)
    return lines


async def case_text(context: MahalleContext, case: Case) -> str:
    """The case and its whole history, within a message: the oldest steps give way first."""
    async with context.session() as session:
        view = await routing.case_view(session, case.id)
    head = [
        context.t("desk-case-title", code=_code(case, context.language)),
        context.t("card-domain", domain=view.domain_title or "—"),
        context.t("desk-case-agency", agency=isolate(view.agency_name or "—")),
        context.t(
            "card-place", neighbourhood=isolate(view.neighbourhood), district=isolate(view.district)
        ),
        context.t("card-date", date=format_datetime(case.created_at, context.language)),
        context.t("card-status", status=context.t(STATUS_KEYS[CaseStatus(case.status)])),
    ]
    if case.latitude is not None and case.longitude is not None:
        osm, neshan = map_links(case.latitude, case.longitude)
        head.append(context.t("card-map", osm=osm, neshan=neshan))
    head += ["", isolate(cut(case.text_original, 800)), "", context.t("desk-history")]
    lines = _history(context, case)
    dropped = 0
    while lines:
        tail = [context.t("desk-history-earlier", count=dropped)] if dropped else []
        text = "\n".join([*head, *tail, *lines])
        if units(text) <= TEXT_LIMIT:
            return text
        lines.pop(0)
        dropped += 1
    return within("\n".join(head))


async def _holds_now(context: MahalleContext, user_id: int, case: Case, desk: Desk) -> bool:
    """Whether this person may have the case's card here (bot/rules.py, `Act.CARD`): in the
    group of the agency that holds it now, as its staff or a coordinator of its county."""
    if desk.agency is None or case.agency_key != desk.agency.key:
        return False
    async with context.session() as session:
        found = await casework.verdict(
            session, user_id=user_id, act=Act.CARD, case=case, settings=context.runtime.settings
        )
    return found is Verdict.ALLOWED


async def show_case(update: Update, context: MahalleContext, desk: Desk, case: Case) -> None:
    """The case with its history, and a button for its card where it can be acted on."""
    message = update.effective_message
    user = update.effective_user
    assert message is not None and user is not None
    rows = []
    if await _holds_now(context, user.id, case, desk):
        rows.append([_button(context, context.t("button-desk-card"), CARD, case.id)])
    elif case.status == CaseStatus.TRIAGE and desk.county_key is not None:
        rows.append([_button(context, context.t("button-desk-place"), CARD, case.id)])
    else:
        rows += await _reroute_row(context, user.id, desk, case)
    rows += _agenda_row(context, desk, case)
    text = await case_text(context, case)
    await message.reply_text(text, reply_markup=InlineKeyboardMarkup(rows) if rows else None)


async def _reroute_row(
    context: MahalleContext, user_id: int, desk: Desk, case: Case
) -> list[list[InlineKeyboardButton]]:
    """Under a case a coordinator looks at away from its agency's chat (an overdue one, say):
    the button that sends it to another domain's agency, as its card's would. The picker and
    the reroute are the card's own, checked again by the rules table."""
    if desk.county_key is None:
        return []
    async with context.session() as session:
        found = await casework.verdict(
            session, user_id=user_id, act=Act.REROUTE, case=case,
            settings=context.runtime.settings,
        )  # fmt: skip
    if found is not Verdict.ALLOWED:
        return []
    data = context.runtime.card_renderer.signer.sign(CASE_PREFIX, Act.REROUTE.value, case.id)
    return [[InlineKeyboardButton(context.t("button-reroute"), callback_data=data)]]


def _agenda_row(
    context: MahalleContext, desk: Desk, case: Case
) -> list[list[InlineKeyboardButton]]:
    """Under a case a coordinator looks at (their private chat or the county's coordinators'
    group): the button that puts it on the council's next agenda. Whoever presses it is
    checked again by the rules table where the item is added."""
    if desk.county_key is None:
        return []
    label = context.t("button-agenda-add")
    return [[_button(context, label, council.AGENDA_CASE_PREFIX, case.id)]]


async def find(update: Update, context: MahalleContext) -> None:
    """`/find <code or words>`: a case by its code, or a search of descriptions."""
    message = update.effective_message
    assert message is not None
    desk = await desk_of(update, context)
    if desk is None:
        await _no_desk(update, context)
        return
    typed = " ".join(context.args or [])
    if not typed.strip():
        await message.reply_text(context.t("desk-find-usage"))
        return
    codes = spoken_codes(typed, this_year=jalali_year(utcnow()))
    if codes:
        await _look_up(update, context, desk, codes)
    else:
        await _search(update, context, desk, typed)


async def typed_code(update: Update, context: MahalleContext) -> None:
    """A code typed on its own in an agency's group, or in a coordinator's private chat (there,
    one of their own reports is shown if no case of their county has the code)."""
    message = update.effective_message
    assert message is not None and message.text is not None
    desk = await desk_of(update, context)
    codes = spoken_codes(message.text, this_year=jalali_year(utcnow()))
    private = message.chat.type == ChatType.PRIVATE
    if desk is None or not codes:
        if private:
            from handlers.resident import typed_code as residents_code

            await residents_code(update, context)
        return
    async with context.session() as session:
        case = await lookup.find_case(session, codes=codes, scope=desk.scope)
    if case is None and private:
        from handlers.resident import typed_code as residents_code

        await residents_code(update, context)
        return
    await _look_up(update, context, desk, codes, case=case)


async def _look_up(
    update: Update,
    context: MahalleContext,
    desk: Desk,
    codes: list[TrackingCode],
    *,
    case: Case | None = None,
) -> None:
    """The case one of `codes` names within the desk's scope, or the same polite refusal
    whether it is outside the scope or does not exist."""
    message = update.effective_message
    assert message is not None
    if case is None:
        async with context.session() as session:
            case = await lookup.find_case(session, codes=codes, scope=desk.scope)
    if case is None:
        key = "desk-not-found-agency" if desk.agency is not None else "desk-not-found"
        await message.reply_text(context.t(key, code=_code(codes[0].canonical, context.language)))
        return
    await show_case(update, context, desk, case)


async def _search(update: Update, context: MahalleContext, desk: Desk, words: str) -> None:
    """The newest cases within the scope whose description holds the words."""
    message = update.effective_message
    assert message is not None
    async with context.session() as session:
        found, total = await lookup.search(session, words=words, scope=desk.scope)
    if not found:
        await message.reply_text(context.t("desk-search-none", words=isolate(words[:100])))
        return
    lines = [
        context.t("desk-search-title", words=isolate(words[:100]), total=total, shown=len(found))
    ]
    rows = []
    for case in found:
        code = _code(case, context.language)
        lines.append(
            context.t(
                "desk-search-line", code=code,
                status=context.t(STATUS_KEYS[CaseStatus(case.status)]),
                date=format_date(case.created_at, context.language),
                text=isolate(_snippet(case.text_original)),
            )
        )  # fmt: skip
        rows.append(
            [_button(context, f"{code} · {_snippet(case.text_original)[:24]}", OPEN, case.id)]
        )
    await message.reply_text(within("\n\n".join(lines)), reply_markup=InlineKeyboardMarkup(rows))


async def _no_desk(update: Update, context: MahalleContext) -> None:
    """Someone without a desk used a desk command: in a private chat it is an unknown command;
    in a group, a short word that it is for the agency's staff."""
    chat = update.effective_chat
    if chat is not None and chat.type == ChatType.PRIVATE:
        await common.unexpected_outside_flow(update, context)
        return
    message = update.effective_message
    if message is not None:
        await message.reply_text(context.t("desk-staff-only"))


# --- lists ------------------------------------------------------------------------------------


def _encode(filters: Filters) -> tuple[str, str, str]:
    """Filters as callback data parts: neighbourhood id, domain key, status index."""
    status = (
        ""
        if filters.status is None
        else str(lookup.LIST_STATUSES.index(CaseStatus(filters.status)))
    )
    return (
        "" if filters.neighbourhood_id is None else str(filters.neighbourhood_id),
        filters.domain_key or "",
        status,
    )


def _decode(place: str, domain: str, status: str) -> Filters | None:
    """Filters from callback data parts; None when malformed."""
    if (place and not place.isdigit()) or (status and not status.isdigit()):
        return None
    if status and int(status) >= len(lookup.LIST_STATUSES):
        return None
    return Filters(
        int(place) if place else None,
        domain or None,
        lookup.LIST_STATUSES[int(status)].value if status else None,
    )


async def cases_command(update: Update, context: MahalleContext) -> None:
    """`/cases`: in an agency's group its open cases; in a private chat the agency's (one) or
    a choice of agencies and the triage queue."""
    message = update.effective_message
    assert message is not None
    desk = await desk_of(update, context)
    if desk is None:
        await _no_desk(update, context)
        return
    if desk.agency is not None:
        text, markup = await _list_page(context, desk, desk.agency.key, Filters(), 0)
    elif desk.county_key is None and len(desk.scope.agencies) == 1:
        [only] = desk.scope.agencies
        text, markup = await _list_page(context, desk, only, Filters(), 0)
    else:
        text, markup = await _menu(context, desk)
    await message.reply_text(text, reply_markup=markup)


async def _agencies_of(context: MahalleContext, desk: Desk) -> list[Agency]:
    """The agencies whose lists this desk may open."""
    async with context.session() as session:
        if desk.county_key is not None:
            county = context.runtime.settings.case_filter_county(desk.county_key)
            agencies = await list_agencies(session=session, county_key=county)
        else:
            agencies = []
        known = {a.key for a in agencies}
        for key in sorted(desk.scope.agencies - known):
            agency = await session.get(Agency, key)
            if agency is not None:
                agencies.append(agency)
    return agencies


async def _menu(context: MahalleContext, desk: Desk) -> tuple[str, InlineKeyboardMarkup]:
    """One button per agency (open and overdue counts), and the triage queue for coordinators."""
    now, settings = utcnow(), context.runtime.settings
    rows = []
    async with context.session() as session:
        for agency in await _agencies_of(context, desk):
            page = await lookup.list_cases(
                session, base=lookup.agency_cases(agency.key), filters=Filters(),
                settings=settings, now=now, page=0, size=1,
            )  # fmt: skip
            label = context.t(
                "button-desk-agency", agency=agency.name, open=page.total, overdue=page.overdue
            )
            rows.append([_button(context, label, LIST, agency.key, 0, "", "", "")])
        if desk.county_key is not None:
            queue = await lookup.list_cases(
                session, base=lookup.triage_queue(desk.county_key), filters=Filters(),
                settings=settings, now=now, page=0, size=1, default_open=False,
            )  # fmt: skip
            label = context.t("button-desk-triage", count=queue.total)
            rows.append([_button(context, label, LIST, TRIAGE, 0, "", "", "")])
    return context.t("desk-menu"), InlineKeyboardMarkup(rows)


def _base(desk: Desk, token: str) -> tuple[ColumnElement[bool], bool] | None:
    """The list a token names, if this desk may open it: (condition, open ones by default)."""
    if token == TRIAGE:
        if desk.county_key is None:
            return None
        return lookup.triage_queue(desk.county_key), False
    if desk.agency is not None and token != desk.agency.key:
        return None
    return lookup.agency_cases(token), True


async def _may_open(context: MahalleContext, desk: Desk, token: str) -> bool:
    """Whether this desk may open the list `token` names."""
    if token == TRIAGE:
        return desk.county_key is not None
    if token in desk.scope.agencies:
        return True
    if desk.county_key is None:
        return False
    async with context.session() as session:
        agency = await session.get(Agency, token)
    county = context.runtime.settings.county_of_agency(token)
    return agency is not None and county is not None and county.key == desk.county_key


async def _list_page(
    context: MahalleContext, desk: Desk, token: str, filters: Filters, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """One page of a list: its lines, a button per case, paging, and the filters."""
    found = _base(desk, token)
    assert found is not None
    base, default_open = found
    async with context.session() as session:
        listed = await lookup.list_cases(
            session, base=base, filters=filters, settings=context.runtime.settings,
            now=utcnow(), page=page, size=PAGE_SIZE, default_open=default_open,
        )  # fmt: skip
        agency = await session.get(Agency, token) if token != TRIAGE else None
        place = await _filter_labels(session, context, filters)
    title = agency.name if agency is not None else context.t("desk-triage-queue")
    lines = [
        context.t(
            "desk-list-title", name=isolate(title), total=listed.total, overdue=listed.overdue,
            page=listed.page + 1, pages=listed.pages,
        )
    ]  # fmt: skip
    if place:
        lines.append(context.t("desk-list-filters", filters=" · ".join(place)))
    if not listed.items:
        lines.append(context.t("desk-list-empty"))
    rows: list[list[InlineKeyboardButton]] = []
    for item in listed.items:
        code = _code(item.code, context.language)
        mark = "🔴 " if item.overdue else ""
        lines.append(
            mark + context.t(
                "desk-list-line", code=code,
                status=context.t(STATUS_KEYS[CaseStatus(item.status)]),
                neighbourhood=isolate(item.neighbourhood),
                since=format_date(item.since, context.language),
                text=isolate(_snippet(item.text)),
            )
        )  # fmt: skip
        label = f"{mark}{code} · {item.neighbourhood}"
        rows.append([_button(context, label, OPEN, item.case_id)])
    encoded = _encode(filters)
    nav = []
    if listed.page > 0:
        nav.append(
            _button(
                context, context.t("button-desk-previous"), LIST, token, listed.page - 1, *encoded
            )
        )
    if listed.page + 1 < listed.pages:
        nav.append(
            _button(context, context.t("button-desk-next"), LIST, token, listed.page + 1, *encoded)
        )
    if nav:
        rows.append(nav)
    rows.append(
        [
            _button(context, context.t(key), PICK, what, token, *encoded)
            for what, key in FILTER_KEYS.items()
        ]
    )
    if filters != Filters():
        rows.append(
            [_button(context, context.t("button-filter-clear"), LIST, token, 0, "", "", "")]
        )
    if desk.agency is None and (desk.county_key is not None or len(desk.scope.agencies) > 1):
        rows.append([_button(context, context.t("button-desk-menu"), MENU)])
    return within("\n\n".join(lines)), InlineKeyboardMarkup(rows)


async def _filter_labels(
    session: AsyncSession, context: MahalleContext, filters: Filters
) -> list[str]:
    """The filters in force, as people read them."""
    shown = []
    if filters.neighbourhood_id is not None:
        place = await session.get(Neighbourhood, filters.neighbourhood_id)
        shown.append(isolate(place.name if place else "—"))
    if filters.domain_key is not None:
        domain = await session.get(Domain, filters.domain_key)
        shown.append(isolate(domain.title if domain else filters.domain_key))
    if filters.status is not None:
        shown.append(context.t(STATUS_KEYS[CaseStatus(filters.status)]))
    return shown


async def _press_desk(
    update: Update, context: MahalleContext, action: str
) -> tuple[Desk, list[str]] | None:
    """The desk of a genuine `action` press, or None after saying why."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or parts[0] != action:
        await alert(query, context.t("button-stale"))
        return None
    desk = await desk_of(update, context)
    if desk is None:
        await alert(query, context.t("desk-staff-only"))
        return None
    return desk, parts


async def _edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    """Show a page in the pressed message; the same page again is no error."""
    shown = query.message
    if (
        isinstance(shown, Message)
        and (shown.text or "").strip() == text.strip()
        and shown.reply_markup == markup
    ):
        await acknowledge(query)
        return

    async def change() -> None:
        try:
            await query.edit_message_text(text, reply_markup=markup)
        except BadRequest as error:
            if "message is not modified" not in str(error).lower():
                raise

    await acknowledge(query, change())


async def list_pressed(update: Update, context: MahalleContext) -> None:
    """A page of a list, or the list narrowed: `dl:<list>:<page>:<place>:<domain>:<status>`."""
    query = update.callback_query
    assert query is not None
    pressed = await _press_desk(update, context, LIST)
    if pressed is None:
        return
    desk, parts = pressed
    filters = _decode(*parts[3:6]) if len(parts) == 6 and parts[2].isdigit() else None
    if (
        filters is None
        or not await _may_open(context, desk, parts[1])
        or _base(desk, parts[1]) is None
    ):
        await alert(query, context.t("desk-staff-only"))
        return
    text, markup = await _list_page(context, desk, parts[1], filters, int(parts[2]))
    await _edit(query, text, markup)


async def menu_pressed(update: Update, context: MahalleContext) -> None:
    """Back to the choice of agencies."""
    query = update.callback_query
    assert query is not None
    pressed = await _press_desk(update, context, MENU)
    if pressed is None:
        return
    text, markup = await _menu(context, pressed[0])
    await _edit(query, text, markup)


async def pick_pressed(update: Update, context: MahalleContext) -> None:
    """The values a filter may take: `df:<n|d|s>:<list>:<place>:<domain>:<status>`."""
    query = update.callback_query
    assert query is not None
    pressed = await _press_desk(update, context, PICK)
    if pressed is None:
        return
    desk, parts = pressed
    filters = _decode(*parts[3:6]) if len(parts) == 6 and parts[1] in FILTER_KEYS else None
    token = parts[1 if filters is None else 2]
    found = _base(desk, token) if filters is not None else None
    if filters is None or found is None or not await _may_open(context, desk, token):
        await alert(query, context.t("desk-staff-only"))
        return
    what = parts[1]
    async with context.session() as session:
        values = await lookup.facets(session, base=found[0], filters=filters, what=what)
        titles = {d.key: d.title for d in (await session.scalars(select(Domain))).all()}
    rows = []
    for value, label, count in values[:24]:
        shown = {
            "n": label,
            "d": titles.get(label, label),
            "s": context.t(STATUS_KEYS[CaseStatus(label)]) if what == "s" else label,
        }[what]
        chosen = Filters(
            int(value) if what == "n" else filters.neighbourhood_id,
            value if what == "d" else filters.domain_key,
            value if what == "s" else filters.status,
        )
        rows.append(
            [
                _button(
                    context,
                    context.t("button-filter-value", value=shown, count=count),
                    LIST,
                    token,
                    0,
                    *_encode(chosen),
                )
            ]
        )
    rows.append([_button(context, context.t("button-back"), LIST, token, 0, *_encode(filters))])
    text = context.t(PICK_KEYS[what]) if values else context.t("desk-pick-none")
    await _edit(query, text, InlineKeyboardMarkup(rows))


async def _pressed_case(context: MahalleContext, desk: Desk, parts: list[str]) -> Case | None:
    """The case a desk button (`<prefix>:<case id>`) names, if it is in the presser's scope."""
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    async with context.session() as session:
        return await lookup.case_in_scope(session, case_id=int(parts[1]), scope=desk.scope)


async def open_pressed(update: Update, context: MahalleContext) -> None:
    """A listed case: its card again where it is acted on, else the case and its history."""
    query = update.callback_query
    assert query is not None
    pressed = await _press_desk(update, context, OPEN)
    if pressed is None:
        return
    desk, parts = pressed
    case = await _pressed_case(context, desk, parts)
    if case is None:
        await alert(query, context.t("desk-gone"))
        return
    await acknowledge(query)
    if await _holds_now(context, query.from_user.id, case, desk) or (
        case.status == CaseStatus.TRIAGE and desk.county_key is not None
    ):
        await _send_card(context, query, desk, case)
        return
    assert query.message is not None
    rows = await _reroute_row(context, query.from_user.id, desk, case)
    rows += _agenda_row(context, desk, case)
    await context.bot.send_message(
        query.message.chat.id,
        await case_text(context, case),
        reply_markup=InlineKeyboardMarkup(rows) if rows else None,
    )


async def card_pressed(update: Update, context: MahalleContext) -> None:
    """`dc:<case>`: the case's card sent again under the history, to act on it."""
    query = update.callback_query
    assert query is not None
    pressed = await _press_desk(update, context, CARD)
    if pressed is None:
        return
    desk, parts = pressed
    case = await _pressed_case(context, desk, parts)
    acting = case is not None and (
        await _holds_now(context, query.from_user.id, case, desk)
        or (case.status == CaseStatus.TRIAGE and desk.county_key is not None)
    )
    if case is None or not acting:
        await alert(query, context.t("desk-card-elsewhere"))
        return
    await acknowledge(query)
    await _send_card(context, query, desk, case)


async def _send_card(context: MahalleContext, query: CallbackQuery, desk: Desk, case: Case) -> None:
    """Send the case's card into this chat: an agency's card, which becomes the one the bot
    keeps up to date (the old one loses its buttons), or a triage card for a coordinator."""
    assert query.message is not None
    chat_id = query.message.chat.id
    cards = context.runtime.card_renderer
    async with context.session() as session:
        view = await routing.case_view(session, case.id)
        if case.status == CaseStatus.TRIAGE:
            card = cards.triage(view, await routing.domain_choices(session), "desk-triage-reason")
        else:
            card = cards.agency(view)
    markup = InlineKeyboardMarkup.de_json(card["reply_markup"], None)
    sent = await context.bot.send_message(chat_id, card["text"], reply_markup=markup)
    if case.status == CaseStatus.TRIAGE:  # kept, to be closed when a colleague places it
        async with context.session() as session:
            outbox.record_sent(
                session, chat_id=chat_id, purpose=outbox.TRIAGE_CARD,
                payload={"text": card["text"]}, message_id=sent.message_id, case_id=case.id,
                now=utcnow(),
            )  # fmt: skip
            await session.commit()
        return
    async with context.session() as session:
        old = await session.get(Case, case.id, populate_existing=True)
        assert old is not None
        previous = (old.card_chat_id, old.card_message_id)
        old.card_chat_id, old.card_message_id = chat_id, sent.message_id
        await session.commit()
    if previous[0] == chat_id and previous[1] is not None and previous[1] != sent.message_id:
        await tidying(
            context.bot.edit_message_reply_markup(chat_id, previous[1], reply_markup=None)
        )


# --- help -------------------------------------------------------------------------------------


async def show_help(update: Update, context: MahalleContext) -> None:
    """`/help`: what this person can do here: staff in their agency's group, a coordinator or
    a council member in a private chat; a resident's help otherwise."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None or user is None or message is None:
        return
    private = chat.type == ChatType.PRIVATE
    coordinator = context.runtime.settings.county_of_coordinator(user.id) is not None
    if private and coordinator:
        await message.reply_text(context.t("help-coordinator"))
        return
    council_county = context.runtime.settings.council_county_of(user.id)
    if private and council_county is not None:
        secretary = user.id in council.members_of(council_county, "secretary")
        await message.reply_text(
            context.t("help-council-secretary" if secretary else "help-council"),
            reply_markup=keyboards.main_menu(context.t),
        )
        return
    if private:
        await common.show_help(update, context)
        return
    desk = await desk_of(update, context)
    if desk is not None and desk.agency is not None:
        await message.reply_text(context.t("help-staff", agency=isolate(desk.agency.name)))
    elif coordinator:
        await message.reply_text(context.t("help-coordinator"))
