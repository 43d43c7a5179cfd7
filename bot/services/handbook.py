"""The network's handbook: the executive framework and each agency's duties per domain, read
the same way by everyone.

The secretariat keeps the handbook as Markdown files in a folder (framework.md and one
<agency>.md per agency, each with a section per domain headed `## [<domain key>] <title>`).
Publishing stores the folder as a numbered version (hash and text per file) when anything
changed, and asks every agency's staff member and every council member to confirm they have
read it, telling them which files changed. Those who have not confirmed after a few working
days are reminded once; coordinators see who has and has not confirmed, per agency.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards
from bot.config import AgencySettings, Settings
from bot.digits import isolate, persian_digits
from bot.fit import TEXT_LIMIT, cut
from bot.ids import as_written
from bot.jalali import as_utc
from bot.rules import READ, UNREAD, Act, Role, Verdict, judge
from bot.services import outbox
from bot.services.worktime import WorkCalendar
from models.entities import HandbookFile, HandbookReading, HandbookVersion, Staff, User

FRAMEWORK = "framework.md"
HANDBOOK_NOTICE = "handbook-notice"
CONFIRM_PREFIX = "hb:ok:"
MENU_DATA = "hb:m"
CHANGE_KEYS = {
    "added": "handbook-change-added",
    "removed": "handbook-change-removed",
    "changed": "handbook-change-changed",
}
# A domain's section in an agency's file: "## [municipal] امور شهری".
_SECTION = re.compile(r"^##\s*\[([a-z0-9_-]+)\]\s*(.*)$")


class FolderError(Exception):
    """The handbook folder is missing or holds nothing to publish."""


def read_folder(path: Path) -> dict[str, str]:
    """The folder's Markdown files by name, their text as UTF-8 with Unix line ends."""
    if not path.is_dir():
        raise FolderError(f"[handbook] path {str(path)!r} is not a folder")
    files = {
        item.name: item.read_text(encoding="utf-8").replace("\r\n", "\n").strip() + "\n"
        for item in sorted(path.glob("*.md"))
    }
    if FRAMEWORK not in files:
        raise FolderError(f"{FRAMEWORK} is missing from {str(path)!r}")
    return files


def file_of(agency: AgencySettings) -> str:
    """The file that holds an agency's duties: named by its kind (its key in one county)."""
    return f"{agency.role}.md"


@dataclass(frozen=True)
class Duties:
    """An agency's file: its general part, and its duties per domain (key -> (title, text))."""

    general: str
    domains: dict[str, tuple[str, str]] = field(default_factory=dict)


def parse(text: str) -> Duties:
    """Split an agency's file into its general part and its domains' sections."""
    general: list[str] = []
    domains: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = general
    for line in text.splitlines():
        found = _SECTION.match(line.strip())
        if found:
            current = []
            domains[found.group(1)] = (found.group(2).strip(), current)
        else:
            current.append(line)
    return Duties(
        general="\n".join(general).strip(),
        domains={key: (title, "\n".join(body).strip()) for key, (title, body) in domains.items()},
    )


def plain(markdown: str) -> str:
    """Markdown as a chat shows plain text: headings and emphasis marks off, bullets as •."""
    lines = []
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            line = stripped.lstrip("#").strip()
        elif stripped.startswith(("- ", "* ")):
            line = "• " + stripped[2:]
        lines.append(line.replace("**", "").replace("__", ""))
    return "\n".join(lines).strip()


def numeral(value: object, language: str) -> str:
    """A number in the reader's digits: Persian for Persian, as written otherwise."""
    return persian_digits(value) if language == "fa" else str(value)


def digest(text: str) -> str:
    """A file's SHA-256, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Change(NamedTuple):
    """One file that differs from the version before."""

    name: str
    kind: str  # "added", "removed" or "changed"
    added: int  # lines
    removed: int


def changes(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """What differs between two versions' files, by name."""
    found = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        lines = list(
            difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(), n=0)
        )
        plus = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
        minus = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
        kind = "added" if before is None else "removed" if after is None else "changed"
        found.append(Change(name, kind, plus, minus))
    return found


async def latest(session: AsyncSession) -> HandbookVersion | None:
    """The newest published version."""
    return await session.scalar(select(HandbookVersion).order_by(HandbookVersion.number.desc()))


async def files_of(session: AsyncSession, *, version_id: int) -> dict[str, str]:
    """A version's files by name."""
    rows = await session.execute(
        select(HandbookFile.name, HandbookFile.text).where(HandbookFile.version_id == version_id)
    )
    return {name: text for name, text in rows}


def describe(found: Iterable[Change], t: Any, language: str) -> str:
    """The changes, one line each, in the reader's language."""
    return "\n".join(
        t(
            CHANGE_KEYS[change.kind],
            file=isolate(change.name),
            added=numeral(change.added, language),
            removed=numeral(change.removed, language),
        )
        for change in found
    )


@dataclass(frozen=True)
class Published:
    """A new version: its number, what changed, and how many were asked to confirm."""

    number: int
    changes: list[Change]
    asked: int


async def publish(
    session: AsyncSession,
    *,
    files: dict[str, str],
    by: int | None,
    settings: Settings,
    cards: Cards,
    now: datetime,
) -> Published | None:
    """Store `files` as a new version and ask everyone concerned to confirm it; None when
    nothing changed since the newest version (nothing stored, nobody told)."""
    previous = await latest(session)
    old = await files_of(session, version_id=previous.id) if previous else {}
    found = changes(old, files)
    if not found:
        return None
    number = (previous.number if previous else 0) + 1
    version = HandbookVersion(
        number=number, published_by=by, published_at=now,
        summary="\n".join(f"{c.kind} {c.name} +{c.added} -{c.removed}" for c in found),
    )  # fmt: skip
    session.add(version)
    await session.flush()
    for name, text in files.items():
        session.add(HandbookFile(version_id=version.id, name=name, sha256=digest(text), text=text))
    readers = await _readers(session, settings)
    languages = await _languages(session, [user for user, *_ in readers])
    for user_id, county_key, agency_key, name in readers:
        session.add(
            HandbookReading(
                version_id=version.id, user_id=user_id, county_key=county_key,
                agency_key=agency_key, name=name, asked_at=now,
            )
        )  # fmt: skip
        language = languages.get(user_id, cards.language)
        _tell(session, cards, user_id, language, number, "handbook-new-version", found)
    await session.flush()
    return Published(number, found, len(readers))


async def _readers(
    session: AsyncSession, settings: Settings
) -> list[tuple[int, str, str | None, str]]:
    """Who reads a version: (user id, county, agency or None for the council, name); each
    person once, as staff of their first agency before as a council member."""
    seen: set[int] = set()
    readers: list[tuple[int, str, str | None, str]] = []
    staff = await session.execute(
        select(Staff.user_id, Staff.agency_key, Staff.name).order_by(Staff.added_at, Staff.user_id)
    )
    for user_id, agency_key, name in staff:
        county = settings.county_of_agency(agency_key)
        if county is None or user_id in seen:
            continue
        seen.add(user_id)
        readers.append((user_id, county.key, agency_key, name))
    for county in settings.counties:
        for user_id in county.council_ids:
            if user_id not in seen:
                seen.add(user_id)
                readers.append((user_id, county.key, None, ""))
    return readers


async def _languages(session: AsyncSession, users: list[int]) -> dict[int, str]:
    """The languages of the people the bot has met, by id."""
    if not users:
        return {}
    rows = await session.execute(select(User.id, User.language).where(User.id.in_(users)))
    return {user: language for user, language in rows}


def _tell(
    session: AsyncSession,
    cards: Cards,
    user_id: int,
    language: str,
    number: int,
    key: str,
    found: Iterable[Change] = (),
) -> None:
    """Queue a new version's notice (or a reminder) with its "I have read it" button."""

    def t(name: str, /, **values: object) -> str:
        return cards.translate(name, language, **values)

    text = t(key, number=numeral(number, language), changes=describe(found, t, language))
    buttons = [
        [{"text": t("button-handbook-read"), "callback_data": f"{CONFIRM_PREFIX}{number}"}],
        [{"text": t("button-handbook-open"), "callback_data": MENU_DATA}],
    ]
    outbox.enqueue(
        session, chat_id=user_id, purpose=HANDBOOK_NOTICE,
        payload={"text": cut(text, TEXT_LIMIT), "reply_markup": {"inline_keyboard": buttons}},
        dedupe_key=f"{key}:{number}:{user_id}",
    )  # fmt: skip


async def reading_of(
    session: AsyncSession, *, number: int, user_id: int
) -> tuple[HandbookVersion | None, HandbookReading | None]:
    """A version by number and this person's reading of it, if they were asked."""
    version = await session.scalar(select(HandbookVersion).where(HandbookVersion.number == number))
    if version is None:
        return None, None
    reading = await session.scalar(
        select(HandbookReading).where(
            HandbookReading.version_id == version.id, HandbookReading.user_id == user_id
        )
    )
    return version, reading


async def confirm(session: AsyncSession, *, number: int, user_id: int, now: datetime) -> Verdict:
    """The person confirms they have read version `number`: only the person it was sent to,
    once (the rules table's READ_HANDBOOK), by a compare-and-set on their reading."""
    _, reading = await reading_of(session, number=number, user_id=user_id)
    roles = {Role.READER} if reading is not None else set()
    status = UNREAD if reading is not None and reading.confirmed_at is None else READ
    verdict = judge(Act.READ_HANDBOOK, roles, status)
    if verdict is not Verdict.ALLOWED or reading is None:
        return verdict
    done = await session.execute(
        update(HandbookReading)
        .where(HandbookReading.id == reading.id, HandbookReading.confirmed_at.is_(None))
        .values(confirmed_at=now)
    )
    return Verdict.ALLOWED if done.rowcount == 1 else Verdict.NOT_NOW  # type: ignore[attr-defined]


class Share(NamedTuple):
    """How many of those asked to read a version have confirmed."""

    confirmed: int
    asked: int

    @property
    def fraction(self) -> float | None:
        """Confirmed over asked; None when nobody was asked."""
        return self.confirmed / self.asked if self.asked else None


async def confirmation_share(
    session: AsyncSession, county_key: str | None, version: int | None = None
) -> Share | None:
    """The share of a county's readers (all counties' with None) who confirmed version
    number `version` (the newest by default); None when nothing was published."""
    found = (
        await latest(session)
        if version is None
        else await session.scalar(select(HandbookVersion).where(HandbookVersion.number == version))
    )
    if found is None:
        return None
    query = select(func.count(HandbookReading.id), func.count(HandbookReading.confirmed_at)).where(
        HandbookReading.version_id == found.id
    )
    if county_key is not None:
        query = query.where(HandbookReading.county_key == county_key)
    asked, confirmed = (await session.execute(query)).one()
    return Share(int(confirmed or 0), int(asked or 0))


@dataclass(frozen=True)
class AgencyReadings:
    """Per agency (None: the council), who confirmed and who has not yet."""

    agency_key: str | None
    confirmed: list[str]
    waiting: list[str]


async def readings_by_agency(
    session: AsyncSession, *, version_id: int, county_key: str
) -> list[AgencyReadings]:
    """A county's readings of a version, grouped by agency, the council last."""
    rows = await session.execute(
        select(HandbookReading)
        .where(HandbookReading.version_id == version_id, HandbookReading.county_key == county_key)
        .order_by(HandbookReading.agency_key, HandbookReading.user_id)
    )
    groups: dict[str | None, AgencyReadings] = {}
    for reading in rows.scalars():
        group = groups.setdefault(reading.agency_key, AgencyReadings(reading.agency_key, [], []))
        who = reading.name or str(as_written(reading.user_id))
        (group.confirmed if reading.confirmed_at else group.waiting).append(who)
    return sorted(groups.values(), key=lambda g: (g.agency_key is None, g.agency_key or ""))


async def send_reminders(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> int:
    """Remind, once, everyone who has not confirmed the newest version after [handbook]
    remind_days working days (in office hours when working days are counted); how many."""
    version = await latest(session)
    calendar = WorkCalendar.configured(settings.deadlines)
    if version is None or not calendar.is_working(now):
        return 0
    waiting = await session.scalars(
        select(HandbookReading).where(
            HandbookReading.version_id == version.id,
            HandbookReading.confirmed_at.is_(None),
            HandbookReading.reminded_at.is_(None),
        )
    )
    due = calendar.days(settings.handbook.remind_days)
    late = [r for r in waiting if calendar.elapsed(as_utc(r.asked_at), now) >= due]
    languages = await _languages(session, [r.user_id for r in late])
    for reading in late:
        done = await session.execute(
            update(HandbookReading)
            .where(HandbookReading.id == reading.id, HandbookReading.reminded_at.is_(None))
            .values(reminded_at=now)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            language = languages.get(reading.user_id, cards.language)
            _tell(session, cards, reading.user_id, language, version.number, "handbook-reminder")
    return len(late)
