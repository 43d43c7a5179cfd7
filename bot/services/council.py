"""The county's steering council: the next meeting's agenda (cases and patterns put on it by
coordinators), its date, the agenda sent to the members the day before, and its decisions
worked by the responsible agency on a card of their own, chased by deadlines.

Who may press what on a decision card is in the rules table (bot/rules.py); every change of a
decision is a compare-and-set with an audit row (DecisionEvent); every message goes through the
outbox. Times are kept as UTC; a meeting's date and a deadline are the start of a day in Tehran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, code_for_display
from bot.config import CountySettings, Settings
from bot.digits import isolate, persian_digits
from bot.fit import in_messages
from bot.jalali import TEHRAN, as_utc, format_date
from bot.rules import RULES, Act, Role, Verdict, allowed_from, decision_buttons, judge
from bot.services import outbox
from bot.services.reference import county_of_neighbourhood, neighbourhoods_of_county
from bot.services.transitions import TransitionRefusedError
from bot.services.worktime import WorkCalendar
from models.entities import (
    Agency,
    AgendaItem,
    Case,
    CouncilDecision,
    CouncilMeeting,
    CouncilStep,
    DecisionEvent,
    DecisionStatus,
    Domain,
    Neighbourhood,
    Staff,
)

DECISION_PREFIX = "dec"  # `dec:<act>:<decision id>` on a decision's card
AGENDA_CASE_PREFIX = "agc"  # `agc:<case id>`: a case onto the next meeting's agenda
DECISION_CARD = "decision-card"
COUNCIL_NOTE = outbox.COUNCIL_NOTE
MAX_TEXT = 1000
OPEN = (DecisionStatus.OPEN, DecisionStatus.ACCEPTED)
# The export's column headers, in order (locale keys).
EXPORT_HEADERS = (
    "council-export-number", "council-export-text", "council-export-agency",
    "council-export-deadline", "council-export-status", "council-export-progress",
    "council-export-meeting", "council-export-overdue",
)  # fmt: skip
# A decision's status as people read it (locale keys).
STATUS_KEYS = {
    DecisionStatus.OPEN: "decision-status-open",
    DecisionStatus.ACCEPTED: "decision-status-accepted",
    DecisionStatus.DONE: "decision-status-done",
}


class CouncilRefusedError(Exception):
    """Something asked of the council's desk may not be done; `reason` is a locale key."""

    def __init__(self, reason: str, **values: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.values = values


def members_of(county: CountySettings, role: str | None = None) -> list[int]:
    """The ids of a county's council members (of one role)."""
    return [m.id for m in county.council_members if role is None or m.role == role]


def secretaries(county: CountySettings) -> list[int]:
    """Who hears about overdue decisions: the secretary, else the coordinators' chats."""
    return members_of(county, "secretary") or county.coordinator_chats()


def day_start(moment: datetime) -> datetime:
    """The start of the Tehran day of `moment`, as UTC."""
    local = as_utc(moment).astimezone(TEHRAN)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(as_utc(moment).tzinfo)


async def next_meeting(session: AsyncSession, *, county_key: str, now: datetime) -> CouncilMeeting:
    """The meeting items go on: the latest one not yet held (no date, or a date from today on);
    a new one when the last has been held."""
    latest = await session.scalar(
        select(CouncilMeeting)
        .where(CouncilMeeting.county_key == county_key)
        .order_by(CouncilMeeting.id.desc())
        .limit(1)
    )
    if latest is not None and (
        latest.meets_at is None or as_utc(latest.meets_at) >= day_start(now)
    ):
        return latest
    meeting = CouncilMeeting(county_key=county_key, created_at=now)
    session.add(meeting)
    await session.flush()
    return meeting


async def last_held(session: AsyncSession, *, county_key: str, now: datetime) -> CouncilMeeting:
    """The meeting decisions are recorded for: the latest with a date up to today, else the
    next one."""
    held = await session.scalar(
        select(CouncilMeeting)
        .where(
            CouncilMeeting.county_key == county_key,
            CouncilMeeting.meets_at.is_not(None),
            CouncilMeeting.meets_at < day_start(now) + timedelta(days=1),
        )
        .order_by(CouncilMeeting.meets_at.desc())
        .limit(1)
    )
    return held or await next_meeting(session, county_key=county_key, now=now)


async def _add_item(
    session: AsyncSession,
    *,
    meeting: CouncilMeeting,
    topic: str,
    text: str,
    by: int,
    case_id: int | None,
    now: datetime,
) -> bool:
    """Put one topic on a meeting's agenda; False when it is there already."""
    exists = await session.scalar(
        select(AgendaItem.id).where(AgendaItem.meeting_id == meeting.id, AgendaItem.topic == topic)
    )
    if exists is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(
                AgendaItem(
                    meeting_id=meeting.id, topic=topic, case_id=case_id, text=text,
                    added_by=by, created_at=now,
                )
            )  # fmt: skip
    except IntegrityError:  # added by someone else at the same moment
        return False
    return True


async def add_case(
    session: AsyncSession, *, settings: Settings, user_id: int, code: str, now: datetime
) -> tuple[bool, Case]:
    """A coordinator puts a case (by its canonical code) on their county's next agenda; whether
    it was new there. Refused unless the rules table allows it."""
    case = await session.scalar(select(Case).where(Case.code == code))
    if case is None:
        raise CouncilRefusedError("agenda-case-unknown")
    return await put_case(session, settings=settings, user_id=user_id, case=case, now=now)


async def put_case(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: int,
    case: Case,
    now: datetime,
    refusal: str = "agenda-case-unknown",
) -> tuple[bool, Case]:
    """Put a case on its county's next agenda for this person, once (whether it was new
    there), if the rules table lets them (`Act.AGENDA_ADD`: a coordinator of the case's
    county); else CouncilRefusedError(`refusal`) with nothing changed."""
    county_key = await county_of_neighbourhood(session, case.neighbourhood_id)
    county = settings.county_named(county_key) if county_key else None
    roles = {Role.COORDINATOR} if county and user_id in county.coordinators else set()
    if judge(Act.AGENDA_ADD, roles, case.status) is not Verdict.ALLOWED or county is None:
        raise CouncilRefusedError(refusal)
    meeting = await next_meeting(session, county_key=county.key, now=now)
    text = isolate(case.text_original[:200])
    added = await _add_item(
        session, meeting=meeting, topic=f"case:{case.id}", text=text, by=user_id,
        case_id=case.id, now=now,
    )  # fmt: skip
    return added, case


@dataclass(frozen=True)
class Pattern:
    """Many reports of one domain in one neighbourhood over the last 30 days."""

    neighbourhood_id: int
    neighbourhood: str
    domain_key: str
    domain: str
    count: int


async def top_patterns(
    session: AsyncSession, *, county_key: str, now: datetime, limit: int = 3
) -> list[Pattern]:
    """The county's most reported neighbourhood × domain pairs of the last 30 days (2 or more)."""
    places = neighbourhoods_of_county(county_key)
    count = func.count(Case.id)
    rows = await session.execute(
        select(Neighbourhood.id, Neighbourhood.name, Domain.key, Domain.title, count)
        .join(Neighbourhood, Neighbourhood.id == Case.neighbourhood_id)
        .join(Domain, Domain.key == Case.domain_key)
        .where(Case.neighbourhood_id.in_(places), Case.created_at >= now - timedelta(days=30))
        .group_by(Neighbourhood.id, Neighbourhood.name, Domain.key, Domain.title)
        .having(count >= 2)
        .order_by(count.desc(), Neighbourhood.id, Domain.key)
        .limit(limit)
    )
    return [Pattern(int(n), str(name), str(d), str(title), int(c)) for n, name, d, title, c in rows]


async def add_pattern(
    session: AsyncSession,
    *,
    settings: Settings,
    user_id: int,
    neighbourhood_id: int,
    domain_key: str,
    cards: Cards,
    now: datetime,
) -> tuple[bool, str]:
    """A coordinator puts a pattern on their county's next agenda; whether it was new, and
    its text."""
    county_key = await county_of_neighbourhood(session, neighbourhood_id)
    county = settings.county_named(county_key) if county_key else None
    if county is None or user_id not in county.coordinators:
        raise CouncilRefusedError("coordinators-only")
    found = next(
        (
            p
            for p in await top_patterns(session, county_key=county.key, now=now, limit=50)
            if p.neighbourhood_id == neighbourhood_id and p.domain_key == domain_key
        ),
        None,
    )
    if found is None:
        raise CouncilRefusedError("agenda-pattern-gone")
    text = cards.t(
        "agenda-pattern-text", count=persian_digits(found.count) if cards.language == "fa"
        else found.count, domain=found.domain, neighbourhood=isolate(found.neighbourhood),
    )  # fmt: skip
    meeting = await next_meeting(session, county_key=county.key, now=now)
    added = await _add_item(
        session, meeting=meeting, topic=f"pattern:{neighbourhood_id}:{domain_key}", text=text,
        by=user_id, case_id=None, now=now,
    )  # fmt: skip
    return added, text


async def agenda_messages(
    session: AsyncSession, *, county_key: str, cards: Cards, now: datetime
) -> list[str]:
    """The next meeting's agenda as people read it, in as many messages as it takes (each
    item quotes up to 200 characters of its case: twenty items outgrow one message)."""
    meeting = await next_meeting(session, county_key=county_key, now=now)
    when = (
        cards.t("agenda-date", date=format_date(meeting.meets_at, cards.language))
        if meeting.meets_at
        else cards.t("agenda-no-date")
    )
    rows = await session.execute(
        select(AgendaItem.text, Case.code)
        .outerjoin(Case, Case.id == AgendaItem.case_id)
        .where(AgendaItem.meeting_id == meeting.id)
        .order_by(AgendaItem.id)
    )
    items = [
        cards.t("agenda-item-case", code=code_for_display(code, cards.language), text=text)
        if code
        else cards.t("agenda-item-pattern", text=text)
        for text, code in rows
    ]
    numbered = [f"{_number(i, cards.language)}. {line}" for i, line in enumerate(items, 1)]
    return in_messages([cards.t("agenda-title"), when, *(numbered or [cards.t("agenda-empty")])])


def _number(value: int, language: str) -> str:
    return persian_digits(value) if language == "fa" else str(value)


async def set_meeting_date(
    session: AsyncSession, *, county_key: str, meets_at: datetime, now: datetime
) -> CouncilMeeting:
    """The secretary sets the next meeting's day (today or later); its agenda goes again."""
    if meets_at < day_start(now):
        raise CouncilRefusedError("meeting-date-past")
    meeting = await next_meeting(session, county_key=county_key, now=now)
    meeting.meets_at = meets_at
    meeting.agenda_sent_at = None
    return meeting


async def send_agendas(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> int:
    """On the day before a meeting (Tehran), queue its agenda to each council member, once."""
    tomorrow = day_start(now) + timedelta(days=1)
    sent = 0
    for county in settings.counties:
        meeting = await session.scalar(
            select(CouncilMeeting).where(
                CouncilMeeting.county_key == county.key,
                CouncilMeeting.meets_at.is_not(None),
                CouncilMeeting.meets_at >= tomorrow - timedelta(hours=1),
                CouncilMeeting.meets_at < tomorrow + timedelta(hours=1),
                CouncilMeeting.agenda_sent_at.is_(None),
            )
        )
        if meeting is None:
            continue
        claimed = await session.execute(
            update(CouncilMeeting)
            .where(CouncilMeeting.id == meeting.id, CouncilMeeting.agenda_sent_at.is_(None))
            .values(agenda_sent_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        parts = await agenda_messages(session, county_key=county.key, cards=cards, now=now)
        for member in members_of(county):
            for number, text in enumerate(parts):
                outbox.enqueue(
                    session, chat_id=member, purpose=COUNCIL_NOTE, payload={"text": text},
                    dedupe_key=f"council-agenda:{meeting.id}:{member}"
                    + (f":{number}" if number else ""),
                )  # fmt: skip
            sent += 1
    return sent


def check_text(typed: str) -> str | None:
    """A decision's text or progress report, trimmed; None when empty or too long."""
    text = typed.strip()
    return text if 0 < len(text) <= MAX_TEXT else None


async def record_decision(
    session: AsyncSession,
    *,
    settings: Settings,
    cards: Cards,
    county_key: str,
    text: str,
    agency_key: str,
    deadline_at: datetime,
    by: int,
    now: datetime,
) -> CouncilDecision:
    """Record a decision of the last meeting and queue its card to the responsible agency."""
    if deadline_at < day_start(now):
        raise CouncilRefusedError("decision-deadline-past")
    agency = await session.get(Agency, agency_key)
    county = settings.county_named(county_key)
    if agency is None or all(a.key != agency_key for a in county.agencies):
        raise CouncilRefusedError("decision-agency-unknown")
    meeting = await last_held(session, county_key=county_key, now=now)
    decision = CouncilDecision(
        meeting_id=meeting.id, county_key=county_key, text=text, agency_key=agency_key,
        deadline_at=deadline_at, status=DecisionStatus.OPEN, created_by=by, created_at=now,
    )  # fmt: skip
    session.add(decision)
    await session.flush()
    session.add(
        DecisionEvent(
            decision_id=decision.id, from_status=None, to_status=DecisionStatus.OPEN,
            actor_id=by, created_at=now,
        )
    )  # fmt: skip
    if agency.chat_id is not None:
        outbox.enqueue(
            session, chat_id=agency.chat_id, purpose=DECISION_CARD,
            payload=card(decision, agency.name, cards), dedupe_key=f"decision-card:{decision.id}",
        )  # fmt: skip
    return decision


def card(decision: CouncilDecision, agency: str, cards: Cards) -> dict[str, Any]:
    """A decision's card in the responsible agency's chat: what, by when, where it stands."""
    lines = [
        cards.t("decision-card-title", number=_number(decision.id, cards.language)),
        isolate(decision.text),
        cards.t("decision-card-agency", agency=agency),
        cards.t("decision-card-deadline", date=format_date(decision.deadline_at, cards.language)),
        cards.t(
            "decision-card-status", status=cards.t(STATUS_KEYS[DecisionStatus(decision.status)])
        ),
    ]
    if decision.progress:
        lines.append(cards.t("decision-card-progress", text=isolate(decision.progress)))
    buttons = [
        {
            "text": cards.t(label),
            "callback_data": cards.signer.sign(DECISION_PREFIX, act.value, decision.id),
        }
        for act, label in decision_buttons(decision.status)
    ]
    payload: dict[str, Any] = {"text": "\n".join(lines)}
    payload["reply_markup"] = {"inline_keyboard": [buttons] if buttons else []}
    return payload


async def decision_verdict(
    session: AsyncSession, *, user_id: int, act: Act, decision: CouncilDecision
) -> Verdict:
    """Whether this person may do `act` to the decision now, by the rules table."""
    staff = await session.get(Staff, (user_id, decision.agency_key))
    roles = {Role.RESPONSIBLE} if staff is not None else set()
    return judge(act, roles, decision.status)


async def work_on(
    session: AsyncSession,
    *,
    decision: CouncilDecision,
    act: Act,
    actor_id: int,
    actor_name: str,
    now: datetime,
    note: str | None = None,
) -> CouncilDecision:
    """Apply an act: compare-and-set on the decision's status, with an audit row."""
    rule = RULES[act]
    before = decision.status
    values: dict[str, Any] = {}
    if rule.to is not None:
        values["status"] = rule.to
    if act is Act.DECISION_ACCEPT:
        values["accepted_at"] = now
    if act is Act.DECISION_DONE:
        values["done_at"] = now
    if note is not None:
        values["progress"] = note
    moved = await session.execute(
        update(CouncilDecision)
        .where(CouncilDecision.id == decision.id, CouncilDecision.status.in_(allowed_from(act)))
        .values(**values)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        latest = await session.scalar(
            select(DecisionEvent.actor_name)
            .where(DecisionEvent.decision_id == decision.id)
            .order_by(DecisionEvent.id.desc())
            .limit(1)
        )
        raise TransitionRefusedError(decision.status, latest)
    session.add(
        DecisionEvent(
            decision_id=decision.id, from_status=before, to_status=rule.to or before,
            actor_id=actor_id, actor_name=actor_name, note=note, created_at=now,
        )
    )  # fmt: skip
    await session.flush()
    fresh = await session.get(CouncilDecision, decision.id, populate_existing=True)
    assert fresh is not None
    return fresh


def tell_secretaries(
    session: AsyncSession, *, decision: CouncilDecision, settings: Settings, text: str
) -> None:
    """Queue `text` about a decision to those who follow the council's decisions (the
    secretary, else the coordinators' chats)."""
    for chat in secretaries(settings.county_named(decision.county_key)):
        outbox.enqueue(session, chat_id=chat, purpose=COUNCIL_NOTE, payload={"text": text})


def due_end(decision: CouncilDecision) -> datetime:
    """When a decision becomes overdue: the end of its deadline's day."""
    return as_utc(decision.deadline_at) + timedelta(days=1)


async def send_decision_alerts(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> int:
    """A reminder to the agency a working day before a decision's deadline ends, and an
    escalation to the secretary once it is overdue; each once."""
    calendar = WorkCalendar.configured(settings.deadlines)
    queued = 0
    for decision in await session.scalars(
        select(CouncilDecision).where(CouncilDecision.status.in_(OPEN))
    ):
        agency = await session.get(Agency, decision.agency_key)
        name = agency.name if agency else decision.agency_key
        values = {
            "number": _number(decision.id, cards.language),
            "text": isolate(decision.text[:200]),
            "agency": name,
            "date": format_date(decision.deadline_at, cards.language),
        }
        end = due_end(decision)
        if now >= end:
            county = settings.county_named(decision.county_key)
            for chat in secretaries(county):
                key = f"decision-overdue:{decision.id}:{chat}"
                if await outbox.already_enqueued(session, key):
                    continue
                outbox.enqueue(
                    session, chat_id=chat, purpose=COUNCIL_NOTE,
                    payload={"text": cards.t("decision-overdue", **values)}, dedupe_key=key,
                )  # fmt: skip
                queued += 1
        elif calendar.elapsed(now, end) <= calendar.days(1):
            key = f"decision-remind:{decision.id}"
            if (
                agency is None
                or agency.chat_id is None
                or await outbox.already_enqueued(session, key)
            ):
                continue
            outbox.enqueue(
                session, chat_id=agency.chat_id, purpose=COUNCIL_NOTE,
                payload={"text": cards.t("decision-remind", **values)}, dedupe_key=key,
            )  # fmt: skip
            queued += 1
    return queued


async def open_decisions(
    session: AsyncSession, *, county_key: str, now: datetime
) -> list[tuple[CouncilDecision, str, bool]]:
    """A county's open decisions with their agency's name, overdue first, then by deadline."""
    rows = await session.execute(
        select(CouncilDecision, Agency.name)
        .join(Agency, Agency.key == CouncilDecision.agency_key)
        .where(CouncilDecision.county_key == county_key, CouncilDecision.status.in_(OPEN))
        .order_by(CouncilDecision.deadline_at, CouncilDecision.id)
    )
    found = [(d, str(name), now >= due_end(d)) for d, name in rows]
    return sorted(found, key=lambda row: not row[2])


async def weekly_lines(
    session: AsyncSession, *, county_key: str, cards: Cards, now: datetime
) -> list[str]:
    """The weekly report's part on decisions, line by line: each open one, overdue first."""
    found = await open_decisions(session, county_key=county_key, now=now)
    if not found:
        return [cards.t("weekly-decisions-none")]
    lines = [cards.t("weekly-decisions-title", count=_number(len(found), cards.language))]
    for decision, agency, overdue in found:
        flat = " ".join(decision.text.split())[:120]  # one line: a message may end after any
        lines.append(
            cards.t(
                "weekly-decision-overdue" if overdue else "weekly-decision-open",
                number=_number(decision.id, cards.language), text=isolate(flat),
                agency=agency, date=format_date(decision.deadline_at, cards.language),
                status=cards.t(STATUS_KEYS[DecisionStatus(decision.status)]),
            )
        )  # fmt: skip
    return lines


async def export_rows(
    session: AsyncSession, *, county_key: str, now: datetime
) -> list[tuple[int, str, str, datetime, str, str | None, datetime | None, bool]]:
    """Every decision of a county for the minutes: number, text, agency, deadline, status,
    latest progress, meeting day, and whether it is overdue."""
    rows = await session.execute(
        select(CouncilDecision, Agency.name, CouncilMeeting.meets_at)
        .join(Agency, Agency.key == CouncilDecision.agency_key)
        .join(CouncilMeeting, CouncilMeeting.id == CouncilDecision.meeting_id)
        .where(CouncilDecision.county_key == county_key)
        .order_by(CouncilDecision.id)
    )
    return [
        (
            d.id, d.text, str(name), d.deadline_at, d.status, d.progress, meets,
            d.status != DecisionStatus.DONE and now >= due_end(d),
        )
        for d, name, meets in rows
    ]  # fmt: skip


async def get_step(session: AsyncSession, user_id: int) -> CouncilStep | None:
    """The typed step this person owes the council's desk, if any."""
    return await session.get(CouncilStep, user_id, populate_existing=True)


async def wait_for(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    county_key: str,
    now: datetime,
    decision_id: int | None = None,
    text: str | None = None,
    agency_key: str | None = None,
) -> None:
    """Wait for this person's next private message as a step (replacing one owed before)."""
    old = await session.get(CouncilStep, user_id)
    if old is not None:
        await session.delete(old)
        await session.flush()
    session.add(
        CouncilStep(
            user_id=user_id, kind=kind, county_key=county_key, decision_id=decision_id,
            text=text, agency_key=agency_key, created_at=now,
        )
    )  # fmt: skip


async def earlier_weeks(
    session: AsyncSession, *, county_key: str | None, start: datetime, weeks: int = 4
) -> list[int]:
    """How many cases were filed in each of the `weeks` Saturday-to-Friday weeks before the
    week that begins at `start` (a Saturday 00:00 in Tehran), the latest first, for the weekly
    report's comparison."""
    counts = []
    for back in range(1, weeks + 1):
        begins = start - timedelta(days=7 * back)
        query = select(func.count(Case.id)).where(
            Case.created_at >= begins, Case.created_at < begins + timedelta(days=7)
        )
        if county_key is not None:
            query = query.where(Case.neighbourhood_id.in_(neighbourhoods_of_county(county_key)))
        counts.append(int(await session.scalar(query) or 0))
    return counts
