"""Cases: submitting a report, the audit log, and what a reporter may see."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.schema import ColumnDefault

from bot.fit import units
from bot.jalali import TrackingCode, jalali_year, utcnow
from bot.normalize import normalize
from bot.rules import Act, allowed_from
from bot.services.drafts import ReportDraft
from models.db import dialect_insert, dialect_of, table_of
from models.entities import Case, CaseEvent, CaseSequence, CaseStatus, Draft, User

RATE_WINDOW = timedelta(hours=1)
GLOBAL_WINDOW = timedelta(minutes=1)
MIN_TEXT, MAX_TEXT = 10, 2000
# A description needs this many letters or digits anyone can see: one made of zero-width,
# filler or space characters would reach an agency as a blank card.
MIN_VISIBLE = 10
# Letters to Unicode that show as nothing: the Hangul fillers and the Arabic tatweel.
_FILLERS = frozenset(map(chr, (0x3164, 0x115F, 0x1160, 0xFFA0, 0x0640)))


class DraftIncompleteError(Exception):
    """The draft lacks a neighbourhood or a description."""


@dataclass(frozen=True)
class Submission:
    """The outcome of confirming a draft."""

    case: Case
    created: bool  # False: this draft had already been submitted (double tap, redelivery)


def description_problem(text: str) -> tuple[str, int] | None:
    """('short' | 'blank' | 'long', length) when a description is out of bounds, else None.
    'blank': fewer than MIN_VISIBLE letters or digits anyone can see (`visible_count`). The
    upper bound holds for the text as shown (what the person typed, in Telegram's UTF-16
    units), not only as normalised: normalising drops diacritics, tatweel and direction marks,
    which the agency's card still shows."""
    length, visible = len(normalize(text)), visible_count(text)
    if visible == 0:  # nothing to see: "too short" with a count would puzzle
        return "blank", 0
    if length < MIN_TEXT:
        return "short", length
    if visible < MIN_VISIBLE:
        return "blank", visible
    shown = units(text.strip())
    if max(length, shown) > MAX_TEXT:
        return "long", max(length, shown)
    return None


def visible_count(text: str) -> int:
    """Letters and digits anyone can see: invisible and filler characters (format controls,
    spaces, combining marks, the Hangul fillers, tatweel) are not counted."""
    return sum(
        1
        for character in text
        if unicodedata.category(character)[0] in "LN" and character not in _FILLERS
    )


@dataclass(frozen=True)
class Allowance:
    """Whether a report may be filed now: the minutes until the reporter's hourly limit lets
    them (0: it does), and whether everyone's cases of the last minute reached theirs."""

    minutes: int
    everyone_busy: bool


async def allowance(
    *,
    session: AsyncSession,
    reporter_id: int,
    limit: int,
    limit_all: int,
    now: datetime | None = None,
) -> Allowance:
    """The reporter's limit of `limit` cases an hour and everyone's of `limit_all` a minute,
    read in one statement."""
    now = now or utcnow()
    counted = _limits(reporter_id, limit, now, limit_all)
    oldest, filed = (await session.execute(_ALLOWANCE, counted)).one()
    return Allowance(_minutes_until(oldest, now), int(filed or 0) >= limit_all)


def _oldest_counted() -> Any:
    """The reporter's limit-th newest case of the hour (none: they may file). Its parameters:
    `_limits`."""
    return (
        select(Case.created_at)
        .where(
            Case.reporter_id == bindparam("reporter_id"),
            Case.created_at >= bindparam("hour_ago", type_=Case.created_at.type),
        )
        .order_by(Case.created_at.desc())
        .offset(bindparam("skipped", type_=Integer()))
        .limit(1)
        .scalar_subquery()
    )


def _allowance() -> Select[Any]:
    """The reporter's limit-th newest case of the hour, and everyone's cases of the minute (up
    to their limit). Its parameters: `_limits`."""
    recent = (
        select(Case.id)
        .where(Case.created_at >= bindparam("minute_ago", type_=Case.created_at.type))
        .limit(bindparam("limit_all", type_=Integer()))
    )
    everyone = select(func.count()).select_from(recent.subquery()).scalar_subquery()
    return select(_oldest_counted().label("oldest"), everyone.label("everyone"))


def _limits(reporter_id: int, limit: int, now: datetime, limit_all: int = 0) -> dict[str, Any]:
    """The parameters of the statements that read a reporter's limits (built once, below)."""
    return {
        "reporter_id": reporter_id,
        "hour_ago": now - RATE_WINDOW,
        "skipped": limit - 1,
        "minute_ago": now - GLOBAL_WINDOW,
        "limit_all": limit_all,
    }


def _code_if_allowed() -> Select[Any]:
    """`_allowance` with the year's next code taken in the same statement when both limits
    allow (PostgreSQL). Its parameters: `_limits` and the Jalali `year`."""
    limits = _allowance().cte("limits")
    under = select(bindparam("year", type_=Integer()), literal(1, Integer())).where(
        limits.c.oldest.is_(None), limits.c.everyone < bindparam("limit_all", type_=Integer())
    )
    taken = postgresql.insert(CaseSequence).from_select(["year", "last"], under)
    bumped = (
        taken.on_conflict_do_update(
            index_elements=[CaseSequence.year], set_={"last": CaseSequence.last + 1}
        )
        .returning(CaseSequence.last)
        .cte("bumped")
    )
    return select(limits.c.oldest, limits.c.everyone, select(bumped.c.last).scalar_subquery())


# Built once: building a statement costs more than running it does.
_ALLOWANCE = _allowance()
_CODE_IF_ALLOWED = _code_if_allowed()
_OLDEST_COUNTED = select(_oldest_counted())
_WITH_REPORTER = select(User, _oldest_counted()).where(User.id == bindparam("reporter_id"))


async def take_code_if_allowed(
    *,
    session: AsyncSession,
    reporter_id: int,
    limit: int,
    limit_all: int,
    now: datetime | None = None,
) -> tuple[Allowance, TrackingCode | None]:
    """`allowance`, and when it allows, `take_code`: on PostgreSQL in one statement, whose
    code is taken only if the limits allow (a refused filing uses up no code)."""
    now = now or utcnow()
    if dialect_of(session) != "postgresql":
        allowed = await allowance(
            session=session, reporter_id=reporter_id, limit=limit, limit_all=limit_all, now=now
        )
        if allowed.minutes or allowed.everyone_busy:
            return allowed, None
        return allowed, await take_code(session=session, now=now)
    counted = _limits(reporter_id, limit, now, limit_all) | {"year": jalali_year(now)}
    oldest, filed, sequence = (await session.execute(_CODE_IF_ALLOWED, counted)).one()
    await session.commit()
    allowed = Allowance(_minutes_until(oldest, now), int(filed or 0) >= limit_all)
    return allowed, TrackingCode(counted["year"], sequence) if sequence is not None else None


async def minutes_until_allowed(
    *, session: AsyncSession, reporter_id: int, limit: int, now: datetime | None = None
) -> int:
    """0 when the reporter may file now, else the minutes until the hourly limit lets them."""
    now = now or utcnow()
    counted = _limits(reporter_id, limit, now)
    oldest = await session.scalar(_OLDEST_COUNTED, counted)
    return _minutes_until(oldest, now)


async def minutes_with_reporter(
    *, session: AsyncSession, reporter_id: int, limit: int, now: datetime | None = None
) -> tuple[int, User | None]:
    """`minutes_until_allowed`, and the reporter's row (None: not one yet) read in the same
    statement; the row stays in the session while the caller holds it."""
    now = now or utcnow()
    found = (await session.execute(_WITH_REPORTER, _limits(reporter_id, limit, now))).first()
    if found is None:  # no row: no case to count either (forgetting a person drops the link)
        return 0, None
    user, counted = found
    return _minutes_until(counted, now), user


def _minutes_until(oldest: datetime | None, now: datetime) -> int:
    if oldest is None:
        return 0
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
    return max(1, int((oldest + RATE_WINDOW - now).total_seconds() // 60) + 1)


async def _next_sequence(*, session: AsyncSession, year: int) -> int:
    # One statement; the row lock it takes serialises concurrent submitters on PostgreSQL.
    upsert = dialect_insert(session, CaseSequence).values(year=year, last=1)
    bumped = await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[CaseSequence.year], set_={"last": CaseSequence.last + 1}
        ).returning(CaseSequence.last)
    )
    return int(bumped.scalar_one())


async def _case_by_draft(*, session: AsyncSession, token: str) -> Case | None:
    return await session.scalar(select(Case).where(Case.draft_token == token))


async def take_code(*, session: AsyncSession, now: datetime | None = None) -> TrackingCode:
    """The next tracking code of the year, taken and committed at once: one statement, whose
    row lock no other filing waits on beyond it (taken inside the filing's transaction, every
    filing at a busy moment queued behind the one before until it committed). A filing that
    then fails leaves a code unused."""
    year = jalali_year(now or utcnow())
    code = TrackingCode(year, await _next_sequence(session=session, year=year))
    await session.commit()
    return code


async def submit_report(
    *,
    session: AsyncSession,
    reporter_id: int,
    draft: ReportDraft,
    now: datetime | None = None,
    code: TrackingCode | None = None,
) -> Submission:
    """Turn a draft into a case, once: the case, its first audit row, the draft's removal and
    the reporter's default opt-in to broadcasts are written together (on PostgreSQL in one
    statement, so the confirm may run it outside a transaction), and a draft confirmed again
    returns the case it already became (its token is unique: the second filing fails, and
    finds the first's case). `code`: taken beforehand (`take_code`); else taken here first."""
    if draft.neighbourhood_id is None or not draft.text:
        raise DraftIncompleteError
    now = now or utcnow()
    if code is None:
        year = jalali_year(now)
        code = TrackingCode(year, await _next_sequence(session=session, year=year))
    values: dict[str, Any] = {
        "code": code.canonical,
        "year": code.year,
        "sequence": code.sequence,
        "draft_token": draft.token,
        "reporter_id": reporter_id,
        "neighbourhood_id": draft.neighbourhood_id,
        "text_original": draft.text,
        "text_normalized": normalize(draft.text),
        "latitude": draft.latitude,
        "longitude": draft.longitude,
        "photo_file_ids": list(draft.photo_file_ids),
        "voice_file_ids": list(draft.voice_file_ids),
        "share_phone": draft.share_phone,
        "reporter_phone": draft.phone if draft.share_phone else None,
        "group_id": draft.group_id,
        "status": CaseStatus.SUBMITTED,
        "created_at": now,
        "updated_at": now,
    }
    try:
        if dialect_of(session) == "postgresql":
            values = _whole_row(values)
            case = Case(**values)
            named = {f"case_{name}": value for name, value in values.items()}
            case.id = await session.scalar(_FILING, named)
        else:
            case = await _file_in_steps(session, values, reporter_id, now)
        await session.commit()
    except IntegrityError:
        # Another process submitted the same draft a moment ago.
        await session.rollback()
        if existing := await _case_by_draft(session=session, token=draft.token):
            return Submission(existing, created=False)
        raise
    return Submission(case, created=True)


def _opting_in(reporter_id: Any) -> Any:
    """Opted in to broadcasts by default after the first report, unless they chose."""
    return (
        update(User)
        .where(User.id == reporter_id, User.broadcasts_chosen.is_(False))
        .values(broadcasts_opt_in=True)
    )


def _filing() -> Any:
    """The case, its first audit row, the draft's removal and the reporter's opt-in, in one
    statement (PostgreSQL: data-modifying CTEs, each run once whether read or not); it
    returns the case's id. Its parameters: the case's columns by name, each after "case_"
    (a parameter named as a column of users would be set by the UPDATE too)."""
    cases, events = table_of(Case), table_of(CaseEvent)
    named = {column: bindparam(f"case_{column.name}", type_=column.type) for column in _filed()}
    filed = insert(cases).values(named).returning(cases.c.id).cte("filed")
    audited = insert(events).from_select(
        ["case_id", "to_status", "actor_id", "created_at"],
        select(
            filed.c.id,
            bindparam("case_status", type_=events.c.to_status.type),
            bindparam("case_reporter_id", type_=events.c.actor_id.type),
            bindparam("case_created_at", type_=events.c.created_at.type),
        ),
    )
    reporter = bindparam("case_reporter_id", type_=cases.c.reporter_id.type)
    return select(filed.c.id).add_cte(
        audited.cte("audited"),
        delete(Draft).where(Draft.user_id == reporter).cte("dropped"),
        _opting_in(reporter).cte("opted"),
    )


def _filed() -> list[Column[Any]]:
    """The columns a new case's row is written with: all but its id."""
    return [column for column in table_of(Case).c if column.name != "id"]


def _whole_row(values: dict[str, Any]) -> dict[str, Any]:
    """A new case's values for every column `_filed` names: the given, else the column's
    default (a statement in a CTE gets no defaults filled in)."""
    row = {}
    for column in _filed():
        default = column.default
        fallback = default.arg if isinstance(default, ColumnDefault) and default.is_scalar else None
        row[column.name] = values.get(column.name, fallback)
    return row


_FILING = _filing()


async def _file_in_steps(
    session: AsyncSession, values: dict[str, Any], reporter_id: int, now: datetime
) -> Case:
    """The same writes as `_filing`, one statement each, in the session's transaction."""
    case = Case(**values)
    session.add(case)
    session.add(
        CaseEvent(case=case, to_status=CaseStatus.SUBMITTED, actor_id=reporter_id, created_at=now)
    )
    # the statements below flush the case first: a duplicate shows at either
    await session.execute(delete(Draft).where(Draft.user_id == reporter_id))
    await session.execute(_opting_in(reporter_id))
    return case


async def find_case_by_draft(*, session: AsyncSession, reporter_id: int, token: str) -> Case | None:
    """The case a reporter's confirmed draft became, if any."""
    case = await _case_by_draft(session=session, token=token)
    return case if case is not None and case.reporter_id == reporter_id else None


async def list_reporter_cases(
    *, session: AsyncSession, reporter_id: int, offset: int, limit: int
) -> tuple[list[Case], int]:
    """One page of the reporter's own cases, newest first, and how many they have."""
    total = await session.scalar(
        select(func.count()).select_from(Case).where(Case.reporter_id == reporter_id)
    )
    query = (
        select(Case)
        .where(Case.reporter_id == reporter_id)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.scalars(query)).all()), int(total or 0)


async def waiting_on_reporter(*, session: AsyncSession, reporter_id: int) -> list[Case]:
    """The reporter's cases that wait for them, the latest moved first: a question of the
    agency's to answer, a resolution to confirm or deny."""
    waiting = allowed_from(Act.ANSWER) | allowed_from(Act.CONFIRM_FIXED)
    query = (
        select(Case)
        .where(Case.reporter_id == reporter_id, Case.status.in_(waiting))
        .order_by(Case.updated_at.desc(), Case.id.desc())
    )
    return list((await session.scalars(query)).all())


async def get_reporter_case(
    *,
    session: AsyncSession,
    reporter_id: int,
    case_id: int | None = None,
    code: TrackingCode | None = None,
) -> Case | None:
    """A case with its history, only when it belongs to this reporter (else None, as if absent)."""
    query = select(Case).options(selectinload(Case.events)).where(Case.reporter_id == reporter_id)
    if case_id is not None:
        query = query.where(Case.id == case_id)
    elif code is not None:
        query = query.where(Case.code == code.canonical)
    else:
        return None
    return await session.scalar(query)
