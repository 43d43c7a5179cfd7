"""Steps that span services: placing a submitted case, and finding cases a crash left behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import TelegramError

from bot.digits import persian_digits
from bot.fit import in_messages
from bot.jalali import format_week, utcnow
from bot.reports import agency_week_text, earlier_weeks_text, stats_text, weekly_chart
from bot.runtime import Runtime
from bot.services import (
    asking,
    broadcasts,
    council,
    deadlines,
    handbook,
    outbox,
    reference,
    stats,
    tasks,
    users,
)
from bot.services.routing import route_new_case
from bot.services.transitions import TransitionRefusedError
from bot.triage import TriageResult
from models.entities import Case, CaseStatus, User

log = logging.getLogger(__name__)

# A case still "submitted" this long after creation was left behind by a crash mid-confirm.
STRANDED_AFTER = timedelta(minutes=1)
# The outbox keeps a sent message's text this long, to look into a delivery gone wrong; then it
# goes (an agency's card carries the reporter's words and perhaps their phone number).
SENT_TEXTS_KEPT = timedelta(days=7)


_CASE_WITH_REPORTER = (
    select(Case, User)
    .outerjoin(User, User.id == Case.reporter_id)
    .where(Case.id == bindparam("case_id"))
)


async def route_submitted(
    runtime: Runtime, case_id: int, *, now: datetime | None = None
) -> TriageResult | None:
    """Classify a submitted case and send it to its agency or to triage, in one transaction."""
    now = now or utcnow()
    async with runtime.session_factory() as session:
        # The reporter is read with the case, and held here while the case is placed: the
        # notice they are sent finds their row in the session (routing.reporter_of), which
        # keeps only rows someone holds, and takes no round trip of its own.
        found = (await session.execute(_CASE_WITH_REPORTER, {"case_id": case_id})).first()
        if found is None or found[0].status != CaseStatus.SUBMITTED:
            return None
        case, _reporter = found
        result = runtime.triage.classify(case.text_original)
        await keep_second_domain(session, case, result)
        asked = await asking.ask_if_unsure(
            session, case=case, result=result, settings=runtime.settings,
            cards=runtime.card_renderer, now=now,
        )  # fmt: skip
        if not asked:
            await route_new_case(
                session,
                case=case,
                result=result,
                settings=runtime.settings,
                cards=runtime.card_renderer,
                now=now,
            )
        await session.commit()
    runtime.wake_outbox()
    return result


async def keep_second_domain(session: AsyncSession, case: Case, result: TriageResult) -> None:
    """Keep the second domain a report also concerns, when it is a domain and not the first."""
    second = result.second
    if second and second != result.domain and await reference.is_domain(session, second):
        case.second_domain_key = second


def place_in_background(runtime: Runtime, case_id: int) -> None:
    """Classify and route a just-submitted case while the reporter reads their tracking code.
    Sending is kept apart from reporting: the confirm's answer does not wait for triage and
    routing, and a failure here (or a process that dies first) leaves the case to the
    route-stranded job."""
    task = asyncio.create_task(_place(runtime, case_id), name=f"place-case-{case_id}")
    runtime.placing.add(task)
    task.add_done_callback(runtime.placing.discard)


async def _place(runtime: Runtime, case_id: int) -> None:
    try:
        await route_submitted(runtime, case_id)
    except Exception:
        log.exception("placing case %s failed; the route-stranded job will retry", case_id)


async def settle(runtime: Runtime) -> None:
    """Wait until the cases being placed are placed (at shutdown, and in tests)."""
    while runtime.placing:
        await asyncio.gather(*runtime.placing, return_exceptions=True)


async def route_stranded(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Route every case a crash left in "submitted"; how many there were."""
    now = now or utcnow()
    async with runtime.session_factory() as session:
        stranded = await session.scalars(
            select(Case.id).where(
                Case.status == CaseStatus.SUBMITTED,
                Case.created_at <= now - STRANDED_AFTER,
                Case.domain_asked_at.is_(None),  # its reporter is choosing: not stranded
            )
        )
        case_ids = list(stranded)
    for case_id in case_ids:
        await route_submitted(runtime, case_id, now=now)
    return len(case_ids)


async def hand_over_unanswered(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Cases whose reporter did not say which kind of problem it is within the wait go to the
    coordinators' triage queue; how many."""
    now = now or utcnow()
    wait = timedelta(minutes=runtime.settings.triage.answer_wait_minutes)
    async with runtime.session_factory() as session:
        case_ids = await asking.unanswered(session, now=now, wait=wait)
    for case_id in case_ids:
        async with runtime.session_factory() as session:
            case = await session.get(Case, case_id)
            if case is None:
                continue
            try:
                await asking.no_answer(
                    session, case=case, guessed=runtime.triage.classify(case.text_original).domain,
                    settings=runtime.settings, cards=runtime.card_renderer, now=now,
                )  # fmt: skip
            except TransitionRefusedError:
                continue  # answered meanwhile
            await session.commit()
    if case_ids:
        runtime.wake_outbox()
    return len(case_ids)


async def start_campaign(runtime: Runtime, campaign_id: int) -> None:
    """Run a campaign in the background now if it is due (a job starts it later otherwise)."""
    await start_due_campaigns(runtime, only=campaign_id)


async def start_due_campaigns(
    runtime: Runtime, *, only: int | None = None, now: datetime | None = None
) -> list[int]:
    """Start every due campaign not already running in this process; their ids."""
    if runtime.campaigns is None:
        return []
    async with runtime.session_factory() as session:
        due = await broadcasts.due_campaigns(session, now=now or utcnow())
    started = []
    for campaign_id, progress_chat in due:
        # Sent by the bot of the county whose coordinators launched it: its residents' bot.
        runner = runtime.for_chat(progress_chat) if progress_chat is not None else runtime
        if (only is not None and campaign_id != only) or campaign_id in runner.campaign_tasks:
            continue
        if runner.campaigns is None:
            continue
        task = asyncio.create_task(
            runner.campaigns.run(campaign_id), name=f"campaign-{campaign_id}"
        )
        runner.campaign_tasks[campaign_id] = task
        task.add_done_callback(_forget(runner, campaign_id))
        started.append(campaign_id)
    return started


def _forget(runtime: Runtime, campaign_id: int) -> Callable[[asyncio.Task[None]], None]:
    def done(_: asyncio.Task[None]) -> None:
        runtime.campaign_tasks.pop(campaign_id, None)

    return done


async def check_deadlines(runtime: Runtime, *, now: datetime) -> int:
    """Queue reminders and escalations due at `now`; how many."""
    async with runtime.session_factory() as session:
        queued = await deadlines.send_deadline_alerts(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        queued += await tasks.send_task_alerts(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        queued += await handbook.send_reminders(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        queued += await council.send_decision_alerts(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        await session.commit()
    runtime.wake_outbox()
    return queued


async def send_daily_digest(runtime: Runtime, *, now: datetime) -> bool:
    """Queue the coordinators' digest for the day of `now` (once)."""
    async with runtime.session_factory() as session:
        sent = await deadlines.send_digest(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        await session.commit()
    runtime.wake_outbox()
    return sent


async def send_weekly_report(bot: Bot, runtime: Runtime, *, now: datetime) -> None:
    """Each council's chart and figures for the last complete Saturday-to-Friday week (Tehran)
    before `now`, beside the four weeks before it; the county and the week named once, in the
    chart's caption."""
    settings = runtime.settings
    language = settings.bot.language
    start, end = stats.report_week(now)

    def t(key: str, /, **values: object) -> str:
        return runtime.translate(key, language, **values)

    for county in settings.counties:
        chat = county.council_chat_id or next(iter(county.coordinator_chats()), None)
        if chat is None and not county.council_members:
            continue
        async with runtime.session_factory() as session:
            figures = await stats.collect(
                session, settings=settings, start=start, end=end, now=now,
                county_key=county.key,
            )  # fmt: skip
            earlier = await council.earlier_weeks(
                session, county_key=settings.case_filter_county(county.key), start=start
            )
            agencies = await stats.agency_week(
                session, settings=settings, county_key=county.key, start=start, end=end
            )
            decisions = await council.weekly_lines(
                session, county_key=county.key, cards=runtime.card_renderer, now=now
            )
            read = await handbook.confirmation_share(session, county.key)
        chart = await asyncio.to_thread(
            weekly_chart, figures, t, language, earlier=earlier, agencies=agencies
        )
        week = format_week(start, end, language, until=t("week-until"))
        caption = t("weekly-heading", county=county.name, week=week)
        heading = t("weekly-figures-title", total=figures.total)
        if figures.total:
            quiet = [stats_text(figures, t, language, heading=heading)]
        else:  # an empty week says so, without a list of empty figures
            quiet = [heading + "\n" + t("weekly-empty")]
        quiet.append(agency_week_text(agencies, t))
        quiet.append(earlier_weeks_text(earlier, figures.total, t, language))
        if read is not None and read.fraction is not None:
            shown = persian_digits if language == "fa" else str
            quiet.append(
                t(
                    "stats-handbook-share", number=shown(read.confirmed), asked=shown(read.asked),
                    percent=shown(round(read.fraction * 100)),
                )
            )  # fmt: skip
        texts = _paragraphs_in_messages([*quiet, "\n".join(decisions)])
        sender = runtime.for_county(county.key).bot or bot  # the bot that serves the county
        for target in [*([chat] if chat is not None else []), *council.members_of(county)]:
            await _send_weekly(sender, target, chart, caption, texts, county=county.key)


def _paragraphs_in_messages(paragraphs: list[str]) -> list[str]:
    """Paragraphs, a blank line between them, in as many messages as fit Telegram's limit,
    broken between lines (thirty open decisions outgrow one message)."""
    lines = [line for paragraph in paragraphs for line in ("", *paragraph.split("\n"))][1:]
    return [text.strip("\n") for text in in_messages(lines) if text.strip("\n")]


async def _send_weekly(
    sender: Bot, target: int, chart: bytes, caption: str, texts: list[str], *, county: str
) -> None:
    """The chart and the report's messages to one chat. They are sent directly, not through
    the outbox that would retry them, so a chat that refuses them is logged and passed over:
    the members after it still receive theirs."""
    try:
        await sender.send_photo(target, chart, caption=caption)
        for text in texts:
            await sender.send_message(target, text)
    except TelegramError as error:
        log.warning(  # no chat id: a member's chat is their account
            "the weekly report of county %s did not reach one of its chats: %s",
            county, type(error).__name__,
        )  # fmt: skip


async def send_council_agendas(runtime: Runtime, *, now: datetime) -> int:
    """Queue each meeting's agenda to its council's members on the day before it."""
    async with runtime.session_factory() as session:
        sent = await council.send_agendas(
            session, settings=runtime.settings, cards=runtime.card_renderer, now=now
        )
        await session.commit()
    runtime.wake_outbox()
    return sent


async def drop_old_contacts(runtime: Runtime, *, now: datetime) -> int:
    """Apply the contact retention setting; how many cases lost their phone number."""
    days = runtime.settings.privacy.contact_retention_days
    async with runtime.session_factory() as session:
        dropped = await users.drop_old_contacts(
            session=session, older_than=now - timedelta(days=days)
        )
        await session.commit()
    return dropped


async def drop_sent_texts(runtime: Runtime, *, now: datetime) -> int:
    """Empty the outbox's copies of messages sent more than SENT_TEXTS_KEPT ago; how many."""
    async with runtime.session_factory() as session:
        dropped = await outbox.drop_sent_texts(session, queued_before=now - SENT_TEXTS_KEPT)
        await session.commit()
    return dropped
