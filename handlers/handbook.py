"""/handbook: the network's executive framework and each agency's duties per domain, browsed
with buttons by agency or by domain; "I have read it" under each new version; and
/handbook_status, the coordinators' view of who has and has not confirmed, per agency.

Everyone reads the version stored in the database (the one published), never the files as they
are being edited, so a staff member and a council member read the same text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.config import AgencySettings, CountySettings
from bot.context import MahalleContext
from bot.digits import isolate
from bot.fit import TEXT_LIMIT, cut
from bot.jalali import format_date, utcnow
from bot.rules import Verdict
from bot.services import handbook
from handlers.buttons import acknowledge, alert
from handlers.common import message_of
from models.entities import HandbookVersion, Staff

PREFIX = "hb"
PER_PAGE = 8  # buttons of a list page
PAGE_LIMIT = TEXT_LIMIT - 600  # room for the title and the page line
Keyboard = list[list[InlineKeyboardButton]]


async def reader_county(update: Update, context: MahalleContext) -> CountySettings | None:
    """The county whose handbook this person reads: a coordinator's, a council member's, or
    their agency's as staff; None for anyone else."""
    user = update.effective_user
    if user is None:
        return None
    settings = context.runtime.settings
    county = settings.county_of_coordinator(user.id) or settings.council_county_of(user.id)
    if county is not None:
        return county
    async with context.session() as session:
        agency: str | None = await session.scalar(select_staff(user.id))
    return settings.county_of_agency(agency) if agency else None


def select_staff(user_id: int) -> Select[Any]:
    """The first agency this person is staff of."""
    return select(Staff.agency_key).where(Staff.user_id == user_id).order_by(Staff.added_at)


def pages(text: str, limit: int = PAGE_LIMIT) -> list[str]:
    """A long text in pages within `limit`, split between paragraphs (or lines) where it can."""
    found: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        split = rest.rfind("\n\n", 0, limit)
        split = split if split > limit // 3 else rest.rfind("\n", 0, limit)
        split = split if split > limit // 3 else limit
        found.append(rest[:split].strip())
        rest = rest[split:].strip()
    return [*found, rest] if rest or not found else found


def _n(context: MahalleContext, value: object) -> str:
    """A number in the reader's digits."""
    return handbook.numeral(value, context.language)


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def _pager(context: MahalleContext, page: int, count: int, data: str) -> list[InlineKeyboardButton]:
    """◀️/▶️ between the pages of a text or a list (data: the page's callback without it)."""
    row = []
    if page > 0:
        row.append(_button(context.t("button-handbook-previous"), f"{data}:{page - 1}"))
    if page < count - 1:
        row.append(_button(context.t("button-handbook-next"), f"{data}:{page + 1}"))
    return row


def _page_line(context: MahalleContext, page: int, count: int) -> str:
    if count <= 1:
        return ""
    return "\n\n" + context.t("handbook-page", page=_n(context, page + 1), pages=_n(context, count))


async def _current(context: MahalleContext) -> tuple[HandbookVersion | None, dict[str, str]]:
    """The newest version and its files."""
    async with context.session() as session:
        version = await handbook.latest(session)
        files = await handbook.files_of(session, version_id=version.id) if version else {}
    return version, files


async def _menu(
    update: Update, context: MahalleContext, county: CountySettings
) -> tuple[str, InlineKeyboardMarkup] | str:
    """The handbook's first screen, or why there is nothing to read yet."""
    version, _ = await _current(context)
    if version is None:
        return context.t("handbook-none-yet")
    user = update.effective_user
    assert user is not None
    async with context.session() as session:
        _, reading = await handbook.reading_of(session, number=version.number, user_id=user.id)
    text = context.t(
        "handbook-menu",
        number=_n(context, version.number),
        date=format_date(version.published_at, context.language),
    )
    rows: Keyboard = [
        [_button(context.t("button-handbook-framework"), "hb:f:0")],
        [
            _button(context.t("button-handbook-by-agency"), "hb:a:0"),
            _button(context.t("button-handbook-by-domain"), "hb:d:0"),
        ],
    ]
    if reading is not None and reading.confirmed_at is None:
        text += "\n\n" + context.t("handbook-menu-unconfirmed")
        data = f"{handbook.CONFIRM_PREFIX}{version.number}"
        rows.append([_button(context.t("button-handbook-read"), data)])
    if user.id in county.coordinators:
        rows.append([_button(context.t("button-handbook-status"), "hb:s")])
    return text, InlineKeyboardMarkup(rows)


async def show(update: Update, context: MahalleContext) -> None:
    """/handbook: the first screen, for agency staff, coordinators and council members."""
    message = message_of(update)
    county = await reader_county(update, context)
    if county is None:
        await message.reply_text(context.t("handbook-not-for-you"))
        return
    shown = await _menu(update, context, county)
    if isinstance(shown, str):
        await message.reply_text(shown)
        return
    await message.reply_text(shown[0], reply_markup=shown[1])


def _agencies(county: CountySettings, files: dict[str, str]) -> list[AgencySettings]:
    """The county's agencies that have a file in the version."""
    return [agency for agency in county.agencies if handbook.file_of(agency) in files]


async def pressed(update: Update, context: MahalleContext) -> None:
    """Any browsing button (hb:m, hb:f, hb:a, hb:g, hb:d, hb:o, hb:x, hb:s)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    county = await reader_county(update, context)
    if county is None:
        await alert(query, context.t("handbook-not-for-you"))
        return
    parts = query.data.split(":")
    if parts[1] == "s":
        await _status_pressed(update, context, county)
        return
    version, files = await _current(context)
    if version is None:
        await alert(query, context.t("handbook-none-yet"))
        return
    screen = _screen(context, county, files, parts)
    if parts[1] == "m":
        menu = await _menu(update, context, county)
        screen = menu if not isinstance(menu, str) else (menu, InlineKeyboardMarkup([]))
    if screen is None:
        await alert(query, context.t("button-stale"))
        return
    await acknowledge(query)
    try:
        await query.edit_message_text(cut(screen[0], TEXT_LIMIT), reply_markup=screen[1])
    except BadRequest as error:  # the same screen pressed twice
        if "not modified" not in str(error).lower():
            raise


def _screen(
    context: MahalleContext, county: CountySettings, files: dict[str, str], parts: list[str]
) -> tuple[str, InlineKeyboardMarkup] | None:
    """The text and buttons a browsing button leads to; None for a button that no longer
    matches the version (a file or domain gone)."""
    try:
        kind, *rest = parts[1:]
        if kind == "f":
            return _framework(context, files, int(rest[0]))
        if kind == "a":
            return _agency_list(context, _agencies(county, files), int(rest[0]))
        if kind == "g":
            return _agency(context, county, files, rest[0], int(rest[1]))
        if kind == "d":
            return _domain_list(context, int(rest[0]))
        if kind == "o":
            return _domain(context, county, files, rest[0])
        if kind == "x":
            return _duties(context, county, files, rest[0], rest[1], int(rest[2]))
    except (IndexError, ValueError, KeyError):
        return None
    return None if kind != "m" else ("", InlineKeyboardMarkup([]))


def _back(context: MahalleContext, data: str = handbook.MENU_DATA) -> list[InlineKeyboardButton]:
    return [_button(context.t("button-handbook-back"), data)]


def _framework(
    context: MahalleContext, files: dict[str, str], page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The executive framework, a page at a time."""
    texts = pages(handbook.plain(files[handbook.FRAMEWORK]))
    page = min(max(page, 0), len(texts) - 1)
    text = context.t("handbook-framework-title") + "\n\n" + texts[page]
    rows = [_pager(context, page, len(texts), "hb:f"), _back(context)]
    return text + _page_line(context, page, len(texts)), InlineKeyboardMarkup(rows)


def _agency_list(
    context: MahalleContext, agencies: list[AgencySettings], page: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The agencies, a page of buttons at a time."""
    count = max((len(agencies) + PER_PAGE - 1) // PER_PAGE, 1)
    page = min(max(page, 0), count - 1)
    shown = agencies[page * PER_PAGE : (page + 1) * PER_PAGE]
    rows: Keyboard = [[_button(a.name, f"hb:g:{a.key}:0")] for a in shown]
    rows += [_pager(context, page, count, "hb:a"), _back(context)]
    text = context.t("handbook-pick-agency") + _page_line(context, page, count)
    return text, InlineKeyboardMarkup(rows)


def _agency(
    context: MahalleContext, county: CountySettings, files: dict[str, str], key: str, page: int
) -> tuple[str, InlineKeyboardMarkup] | None:
    """An agency's card: its general duties, and a button per domain it has duties in."""
    agency = next((a for a in county.agencies if a.key == key), None)
    if agency is None or handbook.file_of(agency) not in files:
        return None
    duties = handbook.parse(files[handbook.file_of(agency)])
    texts = pages(handbook.plain(duties.general) or context.t("handbook-no-general"))
    page = min(max(page, 0), len(texts) - 1)
    text = context.t("handbook-agency-title", agency=agency.name) + "\n\n" + texts[page]
    if duties.domains:
        text += "\n\n" + context.t("handbook-agency-domains")
    rows: Keyboard = [
        [_button(_domain_title(context, domain, title), f"hb:x:{key}:{domain}:0")]
        for domain, (title, _) in duties.domains.items()
    ]
    rows += [_pager(context, page, len(texts), f"hb:g:{key}"), _back(context, "hb:a:0")]
    return text + _page_line(context, page, len(texts)), InlineKeyboardMarkup(rows)


def _domain_title(context: MahalleContext, key: str, fallback: str) -> str:
    """A domain's configured title (the file's heading for one not configured)."""
    titles = {d.key: d.title for d in context.runtime.settings.domains}
    return titles.get(key) or fallback or key


def _domain_list(context: MahalleContext, page: int) -> tuple[str, InlineKeyboardMarkup]:
    """The domains, a page of buttons at a time."""
    domains = context.runtime.settings.domains
    count = max((len(domains) + PER_PAGE - 1) // PER_PAGE, 1)
    page = min(max(page, 0), count - 1)
    rows: Keyboard = [
        [_button(d.title, f"hb:o:{d.key}")]
        for d in domains[page * PER_PAGE : (page + 1) * PER_PAGE]
    ]
    rows += [_pager(context, page, count, "hb:d"), _back(context)]
    text = context.t("handbook-pick-domain") + _page_line(context, page, count)
    return text, InlineKeyboardMarkup(rows)


def _domain(
    context: MahalleContext, county: CountySettings, files: dict[str, str], domain: str
) -> tuple[str, InlineKeyboardMarkup] | None:
    """A domain: the agencies with duties in it, each a button to those duties."""
    settings = context.runtime.settings
    if domain not in {d.key for d in settings.domains}:
        return None
    having = [
        agency
        for agency in _agencies(county, files)
        if domain in handbook.parse(files[handbook.file_of(agency)]).domains
    ]
    title = _domain_title(context, domain, domain)
    key = "handbook-domain-agencies" if having else "handbook-domain-empty"
    rows: Keyboard = [[_button(a.name, f"hb:x:{a.key}:{domain}:0")] for a in having]
    rows.append(_back(context, "hb:d:0"))
    return context.t(key, domain=title), InlineKeyboardMarkup(rows)


def _duties(
    context: MahalleContext,
    county: CountySettings,
    files: dict[str, str],
    key: str,
    domain: str,
    page: int,
) -> tuple[str, InlineKeyboardMarkup] | None:
    """This agency's duties for this domain."""
    agency = next((a for a in county.agencies if a.key == key), None)
    if agency is None or handbook.file_of(agency) not in files:
        return None
    section = handbook.parse(files[handbook.file_of(agency)]).domains.get(domain)
    if section is None:
        return None
    title = _domain_title(context, domain, section[0])
    texts = pages(handbook.plain(section[1]))
    page = min(max(page, 0), len(texts) - 1)
    text = context.t("handbook-duties-title", agency=agency.name, domain=title)
    text += "\n\n" + texts[page] + _page_line(context, page, len(texts))
    rows = [
        _pager(context, page, len(texts), f"hb:x:{key}:{domain}"),
        [
            _button(context.t("button-handbook-agency"), f"hb:g:{key}:0"),
            _button(context.t("button-handbook-domain"), f"hb:o:{domain}"),
        ],
    ]
    return text, InlineKeyboardMarkup(rows)


async def confirm_pressed(update: Update, context: MahalleContext) -> None:
    """ "I have read it" (hb:ok:<version>): only the person it was sent to, once."""
    query = update.callback_query
    assert query is not None and query.data is not None
    user = update.effective_user
    assert user is not None
    try:
        number = int(query.data.removeprefix(handbook.CONFIRM_PREFIX))
    except ValueError:
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        verdict = await handbook.confirm(session, number=number, user_id=user.id, now=utcnow())
        await session.commit()
    if verdict is Verdict.NOT_YOURS:
        await alert(query, context.t("handbook-confirm-not-yours"))
    elif verdict is Verdict.NOT_NOW:
        await alert(query, context.t("handbook-confirm-already", number=_n(context, number)))
    else:
        await acknowledge(query, toast=context.t("handbook-confirmed-toast"))
        await message_of(update).reply_text(
            context.t("handbook-confirmed", number=_n(context, number))
        )


async def publish(update: Update, context: MahalleContext) -> None:
    """/handbook_publish: a coordinator publishes the handbook folder as it is on the server
    (as `mahalle handbook publish` does), when anything in it changed."""
    user = update.effective_user
    message = message_of(update)
    if user is None or user.id not in context.runtime.settings.coordinators:
        await message.reply_text(context.t("coordinators-only"))
        return
    try:
        files = handbook.read_folder(context.runtime.settings.handbook.path)
    except handbook.FolderError:
        await message.reply_text(context.t("handbook-folder-missing"))
        return
    async with context.session() as session:
        published = await handbook.publish(
            session, files=files, by=user.id, settings=context.runtime.settings,
            cards=context.runtime.card_renderer, now=utcnow(),
        )  # fmt: skip
        await session.commit()
    if published is None:
        await message.reply_text(context.t("handbook-unchanged"))
        return
    context.runtime.wake_outbox()
    await message.reply_text(
        context.t(
            "handbook-published",
            number=_n(context, published.number),
            files=_n(context, len(published.changes)),
            asked=_n(context, published.asked),
        )
    )


async def status(update: Update, context: MahalleContext) -> None:
    """/handbook_status: per agency, who has and has not confirmed the newest version."""
    user = update.effective_user
    county = context.runtime.settings.county_of_coordinator(user.id) if user else None
    if county is None:
        await message_of(update).reply_text(context.t("coordinators-only"))
        return
    await message_of(update).reply_text(await _status_text(context, county))


async def _status_pressed(update: Update, context: MahalleContext, county: CountySettings) -> None:
    """The status button under a coordinator's /handbook."""
    query = update.callback_query
    assert query is not None and update.effective_user is not None
    if update.effective_user.id not in county.coordinators:
        await alert(query, context.t("coordinators-only"))
        return
    await acknowledge(query)
    await message_of(update).reply_text(await _status_text(context, county))


def _who(context: MahalleContext, name: str) -> str:
    """A reader's name, or their user id in the reader's digits (a council member)."""
    return isolate(_n(context, name) if name.isdigit() else name)


async def _status_text(context: MahalleContext, county: CountySettings) -> str:
    """Who confirmed the newest version in a county, per agency, then the council."""
    async with context.session() as session:
        version = await handbook.latest(session)
        if version is None:
            return context.t("handbook-none-yet")
        groups = await handbook.readings_by_agency(
            session, version_id=version.id, county_key=county.key
        )
        share = await handbook.confirmation_share(session, county.key, version.number)
    names = {a.key: a.name for a in county.agencies}
    comma = context.t("handbook-name-separator")
    lines = [
        context.t(
            "handbook-status-title",
            number=_n(context, version.number),
            confirmed=_n(context, share.confirmed if share else 0),
            asked=_n(context, share.asked if share else 0),
        )
    ]
    for group in groups:
        who = names.get(group.agency_key or "", group.agency_key or "")
        lines.append(
            context.t(
                "handbook-status-agency" if group.agency_key else "handbook-status-council",
                agency=who,
                confirmed=comma.join(_who(context, n) for n in group.confirmed) or "—",
                waiting=comma.join(_who(context, n) for n in group.waiting) or "—",
            )
        )
    if not groups:
        lines.append(context.t("handbook-status-nobody"))
    return cut("\n\n".join(lines), TEXT_LIMIT)


async def stats_line(context: MahalleContext, county_key: str | None) -> str:
    """The line /stats carries: the share of the newest version confirmed ("" before any)."""
    async with context.session() as session:
        share = await handbook.confirmation_share(session, county_key)
    if share is None or share.fraction is None:
        return ""
    return context.t(
        "stats-handbook-share",
        number=_n(context, share.confirmed),
        asked=_n(context, share.asked),
        percent=_n(context, round(share.fraction * 100)),
    )
