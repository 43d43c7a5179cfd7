"""Deadlines: reminders to agencies, escalations to coordinators, the daily digest, and resolved
cases whose reporter never says whether they were fixed, which close themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards, code_for_display
from bot.config import DeadlineSettings, Settings
from bot.digits import isolate
from bot.jalali import as_utc, format_date, format_datetime
from bot.services import casework, outbox
from bot.services.reference import county_of_neighbourhood, neighbourhoods_of_county
from bot.services.transitions import TransitionRefusedError, transition
from bot.services.worktime import WorkCalendar
from models.entities import Agency, Case, CaseEvent, CaseStatus

WAITING_FOR_ACCEPT = (CaseStatus.FORWARDED, CaseStatus.REOPENED)
ESCALATION_KEYS = {
    "escalate-accept": "deadline-escalate-accept",
    "escalate-resolve": "deadline-escalate-resolve",
}
OPEN_AT_AGENCY = (
    CaseStatus.FORWARDED,
    CaseStatus.REOPENED,
    CaseStatus.ACCEPTED,
    CaseStatus.NEEDS_INFO,
)


@dataclass(frozen=True)
class Overdue:
    """One threshold a case has passed."""

    case_id: int
    code: str
    kind: str  # "remind", "escalate-accept" or "escalate-resolve"
    since: datetime  # when it reached its agency
    handed_over_event: int  # a reroute starts the clock again, with a new event
    domain_key: str | None = None


async def _open_cases(session: AsyncSession, *where: Any) -> list[Any]:
    """Open cases at an agency (optionally narrowed): id, code, status, domain, and the id and
    time of their latest hand-over audit row (found per case through its index, not by
    grouping the whole audit log)."""
    latest = (
        select(func.max(CaseEvent.id))
        .where(CaseEvent.case_id == Case.id, CaseEvent.to_status.in_(WAITING_FOR_ACCEPT))
        .correlate(Case)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Case.id, Case.code, Case.status, Case.domain_key, CaseEvent.id, CaseEvent.created_at)
        .join(CaseEvent, CaseEvent.id == latest)
        .where(Case.status.in_(OPEN_AT_AGENCY), *where)
    )
    return list(rows)


class OverdueCheck:
    """Which deadlines a case at an agency has passed: the rules per domain worked out once,
    and working time counted once per day for all cases."""

    def __init__(self, rules: DeadlineSettings) -> None:
        self.rules = rules
        self.calendar = WorkCalendar.configured(rules)
        self._thresholds: dict[str | None, tuple[timedelta, timedelta, timedelta]] = {}

    def _limits(self, domain_key: str | None) -> tuple[timedelta, timedelta, timedelta]:
        """(to accept, to escalation, to resolve) for a domain."""
        if domain_key not in self._thresholds:
            accept_hours, escalate_hours, resolve_days = self.rules.rule_for(domain_key)
            self._thresholds[domain_key] = (
                timedelta(hours=accept_hours),
                timedelta(hours=escalate_hours),
                self.calendar.days(resolve_days),
            )
        return self._thresholds[domain_key]

    def late_if_handed_over_by(
        self, *, waiting: bool, domain_key: str | None, now: datetime
    ) -> datetime:
        """The latest hand-over for which a case (waiting to be accepted, or not) has passed,
        by `now`, a deadline that `kinds` escalates to the coordinators."""
        _, to_escalate, to_resolve = self._limits(domain_key)
        soonest = min(to_escalate, to_resolve) if waiting else to_resolve
        return self.calendar.latest_start(now, soonest)

    def escalated_clause(self, now: datetime) -> ColumnElement[bool]:
        """Whether a case has passed a deadline that goes to the coordinators, as SQL: two
        moments per domain are worked out here, so the database counts a month of open cases
        without handing them over one by one."""
        waiting = Case.status.in_(WAITING_FOR_ACCEPT)
        latest_late = case(
            (waiting, self._late_by_domain(waiting=True, now=now)),
            else_=self._late_by_domain(waiting=False, now=now),
        )
        return and_(Case.status.in_(OPEN_AT_AGENCY), Case.handed_over_at <= latest_late)

    def _late_by_domain(self, *, waiting: bool, now: datetime) -> ColumnElement[datetime]:
        """The latest late hand-over for the case's domain, as SQL."""

        def moment(domain_key: str | None) -> ColumnElement[datetime]:
            found = self.late_if_handed_over_by(waiting=waiting, domain_key=domain_key, now=now)
            return literal(found.astimezone(UTC), Case.handed_over_at.type)

        overridden = {key: moment(key) for key in self.rules.domains}
        if not overridden:
            return moment(None)
        return case(overridden, value=Case.domain_key, else_=moment(None))

    def kinds(
        self, *, status: str, domain_key: str | None, since: datetime, now: datetime
    ) -> list[str]:
        """'remind', 'escalate-accept', 'escalate-resolve': each threshold passed."""
        if status not in OPEN_AT_AGENCY:
            return []
        since = as_utc(since)  # SQLite gives stored (UTC) times back without a zone
        to_accept, to_escalate, to_resolve = self._limits(domain_key)
        waited = self.calendar.elapsed(since, now)
        kinds = []
        if status in WAITING_FOR_ACCEPT:
            if waited >= to_accept:
                kinds.append("remind")
            if waited >= to_escalate:
                kinds.append("escalate-accept")
        if waited >= to_resolve:
            kinds.append("escalate-resolve")
        return kinds


def is_overdue(kinds: list[str]) -> bool:
    """Whether thresholds passed make a case overdue: escalated, to accept or to resolve. The
    reminder to accept is a nudge before the deadline, not overdue; /cases, the digest, /stats
    and the weekly report all count overdue so."""
    return any(kind != "remind" for kind in kinds)


async def overdue_cases(
    session: AsyncSession, *, settings: Settings, now: datetime, where: tuple[Any, ...] = ()
) -> list[Overdue]:
    """Every threshold passed by every open case (optionally narrowed), as of `now`."""
    check = OverdueCheck(settings.deadlines)
    found = []
    for case_id, code, status, domain_key, event_id, since in await _open_cases(session, *where):
        kinds = check.kinds(status=status, domain_key=domain_key, since=since, now=now)
        found += [Overdue(case_id, code, kind, since, event_id, domain_key) for kind in kinds]
    return found


async def send_deadline_alerts(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> int:
    """Queue each reminder or escalation not sent before (once per threshold and hand-over);
    outside office hours only urgent domains' escalations go, the rest at the next opening."""
    queued = 0
    after_hours = not WorkCalendar.configured(settings.deadlines).is_working(now)
    for item in await overdue_cases(session, settings=settings, now=now):
        key = f"{item.kind}:{item.case_id}:{item.handed_over_event}"
        if after_hours and not _goes_out_after_hours(item, settings.deadlines):
            continue
        if await outbox.already_enqueued(session, key):
            continue
        case = await session.get(Case, item.case_id)
        assert case is not None
        agency = await session.get(Agency, case.agency_key) if case.agency_key else None
        values = {
            "code": code_for_display(case.code, cards.language),
            "agency": agency.name if agency else "",
            "since": format_datetime(item.since, cards.language),
            "text": isolate(case.text_original[:300]),
        }
        if item.kind == "remind":
            if agency is None or agency.chat_id is None:
                continue
            payload: dict[str, object] = {"text": cards.t("deadline-remind", **values)}
            if case.card_message_id is not None and case.card_chat_id == agency.chat_id:
                payload["reply_to_message_id"] = case.card_message_id
            outbox.enqueue(
                session,
                chat_id=agency.chat_id,
                purpose=outbox.COORDINATOR_NOTICE,
                payload=payload,
                case_id=case.id,
                dedupe_key=key,
            )
        else:
            text = cards.t(ESCALATION_KEYS[item.kind], **values)
            county = settings.county_named(
                await county_of_neighbourhood(session, case.neighbourhood_id)
            )
            for number, chat_id in enumerate(county.coordinator_chats()):
                outbox.enqueue(
                    session, chat_id=chat_id, purpose=outbox.COORDINATOR_NOTICE,
                    payload={"text": text}, case_id=case.id,
                    dedupe_key=key if number == 0 else f"{key}:{chat_id}",
                )  # fmt: skip
        queued += 1
    return queued


def _goes_out_after_hours(item: Overdue, rules: DeadlineSettings) -> bool:
    """Whether a reminder or escalation is sent outside office hours: only an escalation to
    the coordinators of an urgent domain; reminders to agency groups wait for the morning."""
    return item.kind != "remind" and item.domain_key in rules.urgent_domains


@dataclass(frozen=True)
class Digest:
    """The last day in numbers."""

    new: int
    accepted: int
    resolved: int
    reopened: int
    overdue: int
    in_triage: int


async def digest(
    session: AsyncSession, *, settings: Settings, now: datetime, county_key: str | None = None
) -> Digest:
    """Counts for the 24 hours before `now`, and what is overdue or queued right now (in one
    county, when given)."""
    since = now - timedelta(days=1)
    scope = settings.case_filter_county(county_key)
    in_county = (Case.neighbourhood_id.in_(neighbourhoods_of_county(scope)),) if scope else ()

    async def moved_to(status: str) -> int:
        """Cases that reached `status` in the day, each once; a question answered puts a
        case back to accepted, which is no new acceptance."""
        query = (
            select(func.count(func.distinct(CaseEvent.case_id)))
            .select_from(CaseEvent)
            .where(CaseEvent.to_status == status, CaseEvent.created_at >= since)
        )
        if status == CaseStatus.ACCEPTED:
            query = query.where(
                or_(
                    CaseEvent.from_status.is_(None),
                    CaseEvent.from_status != CaseStatus.NEEDS_INFO,
                )
            )
        if scope:
            query = query.join(Case, Case.id == CaseEvent.case_id).where(*in_county)
        return int(await session.scalar(query) or 0)

    new = await session.scalar(
        select(func.count()).select_from(Case).where(Case.created_at >= since, *in_county)
    )
    in_triage = await session.scalar(
        select(func.count()).select_from(Case).where(Case.status == CaseStatus.TRIAGE, *in_county)
    )
    late = {
        o.case_id
        for o in await overdue_cases(session, settings=settings, now=now, where=in_county)
        if is_overdue([o.kind])
    }
    return Digest(
        new=int(new or 0),
        accepted=await moved_to(CaseStatus.ACCEPTED),
        resolved=await moved_to(CaseStatus.RESOLVED),
        reopened=await moved_to(CaseStatus.REOPENED),
        overdue=len(late),
        in_triage=int(in_triage or 0),
    )


async def send_digest(
    session: AsyncSession, *, settings: Settings, cards: Cards, now: datetime
) -> bool:
    """Queue the daily digest to each county's coordinators, once per Jalali day."""
    queued = False
    for county in settings.counties:
        key = f"digest:{format_date(now, 'en')}"
        key += f":{county.key}" if len(settings.counties) > 1 else ""
        chats = county.coordinator_chats()
        if not chats or await outbox.already_enqueued(session, key):
            continue
        figures = await digest(session, settings=settings, now=now, county_key=county.key)
        text = cards.t("digest", date=format_date(now, cards.language), **figures.__dict__)
        outbox.enqueue(
            session,
            chat_id=chats[0],
            purpose=outbox.COORDINATOR_NOTICE,
            payload={"text": text},
            dedupe_key=key,
        )
        queued = True
    return queued


async def close_unanswered(session: AsyncSession, *, cards: Cards, days: int, now: datetime) -> int:
    """Close the resolved cases whose reporter has not said in `days` days whether the problem
    was fixed (else they stay resolved for ever): the audit row names the system, the reporter
    is told, the agency's card shows it. How many closed."""
    waiting = await session.scalars(
        select(Case.id)
        .where(Case.status == CaseStatus.RESOLVED, Case.updated_at < now - timedelta(days=days))
        .order_by(Case.id)
    )
    closed = 0
    for case_id in list(waiting):
        try:
            await transition(
                session, case_id=case_id, allowed_from={CaseStatus.RESOLVED},
                to=CaseStatus.CLOSED, actor_id=None, actor_name=cards.t("actor-system"), now=now,
            )  # fmt: skip
        except TransitionRefusedError:
            continue  # the reporter answered meanwhile
        case = await session.get(Case, case_id, populate_existing=True)
        assert case is not None
        await _tell_closed(session, case, cards, days)
        await casework.refresh_card(session, case, cards)
        closed += 1
    return closed


async def _tell_closed(session: AsyncSession, case: Case, cards: Cards, days: int) -> None:
    """The reporter hears that their resolved case closed without their answer."""
    await casework.tell_reporter(
        session, case, cards, "notice-auto-closed", once_as=f"auto-closed:{case.id}", days=days
    )
