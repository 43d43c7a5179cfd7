"""Scheduled jobs (PTB's JobQueue). Each wraps a function that takes "now", for tests."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, time, timedelta
from typing import Any

from telegram.ext import Application, ContextTypes

from bot.context import runtime_of
from bot.jalali import TEHRAN, utcnow
from bot.pipeline import (
    check_deadlines,
    drop_old_contacts,
    drop_sent_texts,
    hand_over_unanswered,
    route_stranded,
    send_council_agendas,
    send_daily_digest,
    send_weekly_report,
    start_due_campaigns,
)
from bot.runtime import Runtime
from bot.services import deadlines, drafts, handled
from bot.services.worktime import warn_if_holidays_run_out

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


async def _retrain(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Nightly: retrain triage from shipped examples plus corrections, off the event loop."""
    runtime = runtime_of(context.application)
    await runtime.triage.retrain(runtime.session_factory)


async def _reload_model(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pick up a model `mahalle triage retrain` wrote."""
    await runtime_of(context.application).triage.reload_if_changed()


async def _route_stranded(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Route cases a crash left between submit and routing."""
    if count := await route_stranded(runtime_of(context.application)):
        log.warning("routed %d case(s) left in 'submitted' by an interrupted confirm", count)
    if count := await hand_over_unanswered(runtime_of(context.application)):
        log.info("%d case(s) whose reporter did not choose a domain went to triage", count)


async def _start_campaigns(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start scheduled broadcasts whose time came, and resume those a restart interrupted."""
    await start_due_campaigns(runtime_of(context.application))


async def _deadlines(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reminders and escalations for cases past their deadlines."""
    await check_deadlines(runtime_of(context.application), now=utcnow())


async def _digest(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The coordinators' daily digest."""
    await send_daily_digest(runtime_of(context.application), now=utcnow())


async def _weekly(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Saturday morning: the council's weekly chart and figures."""
    await send_weekly_report(context.bot, runtime_of(context.application), now=utcnow())


async def _council_agendas(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Each council meeting's agenda to its members on the day before."""
    await send_council_agendas(runtime_of(context.application), now=utcnow())


async def _retention(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Nightly: drop reporters' phone numbers from cases idle for the retention period, the
    outbox's copies of messages sent a week ago, abandoned drafts, and the ids of updates
    handled over a day ago."""
    runtime = runtime_of(context.application)
    await drop_old_contacts(runtime, now=utcnow())
    await drop_sent_texts(runtime, now=utcnow())
    await expire_drafts(context.application, now=utcnow())
    async with runtime.session_factory() as session:
        await handled.forget_handled(
            session=session, handled_before=utcnow() - handled.HANDLED_KEPT
        )


async def _close_resolved(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Close resolved cases whose reporter never said whether they were fixed."""
    if count := await close_unanswered(runtime_of(context.application), now=utcnow()):
        log.info("closed %d resolved case(s) their reporters left unanswered", count)


async def close_unanswered(runtime: Runtime, *, now: datetime) -> int:
    """Close the cases resolved `[privacy] close_resolved_after_days` before `now` and not
    answered since; how many."""
    days = runtime.settings.privacy.close_resolved_after_days
    async with runtime.session_factory() as session:
        closed = await deadlines.close_unanswered(
            session, cards=runtime.card_renderer, days=days, now=now
        )
        await session.commit()
    runtime.wake_outbox()
    return closed


async def expire_drafts(application: AnyApplication, *, now: datetime) -> int:
    """Delete drafts untouched for `[privacy] draft_expiry_days` before `now`, with their
    conversations' states; how many drafts. In memory, the conversation ends by its own
    timeout, of the same length; a step taken meanwhile finds its draft gone and starts over."""
    runtime = runtime_of(application)
    days = runtime.settings.privacy.draft_expiry_days
    async with runtime.session_factory() as session:
        expired = await drafts.expire(session=session, older_than=now - timedelta(days=days))
        await session.commit()
    return expired.drafts


def _at(hhmm: str) -> time:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return time(hour=hour, minute=minute, tzinfo=TEHRAN)


async def _lead(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Take over the scheduled jobs if no live process holds them."""
    await runtime_of(context.application).leadership.try_lead()


Job = Callable[[ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


def _leader_only(job: Job) -> Job:
    """Run a job only in the process holding the jobs lock (every worker schedules them)."""

    @functools.wraps(job)
    async def guarded(context: ContextTypes.DEFAULT_TYPE) -> None:
        if runtime_of(context.application).leadership.leading:
            await job(context)

    return guarded


def schedule_jobs(application: AnyApplication) -> None:
    """Register the jobs; the schedule lives in code and config, so a restart rebuilds it."""
    warn_if_holidays_run_out(runtime_of(application).settings.deadlines, now=utcnow())
    jobs = application.job_queue
    if jobs is None:  # PTB installed without the job-queue extra
        log.warning("no JobQueue: nightly retraining and recovery sweeps are off")
        return
    jobs.run_repeating(_lead, interval=30, first=30, name="leadership")
    hour = runtime_of(application).settings.triage.retrain_hour
    jobs.run_daily(
        _leader_only(_retrain), time=time(hour=hour, tzinfo=TEHRAN), name="triage-retrain"
    )
    jobs.run_repeating(_reload_model, interval=60, first=60, name="triage-reload")
    jobs.run_repeating(_leader_only(_route_stranded), interval=60, first=5, name="route-stranded")
    # Often: a broadcast a coordinator launches through a web process starts from here.
    jobs.run_repeating(_leader_only(_start_campaigns), interval=5, first=1, name="campaigns")
    reports = runtime_of(application).settings.reports
    jobs.run_repeating(_leader_only(_deadlines), interval=600, first=30, name="deadlines")
    jobs.run_daily(_leader_only(_digest), time=_at(reports.digest_time), name="digest")
    jobs.run_daily(
        _leader_only(_retention), time=time(hour=4, tzinfo=TEHRAN), name="contact-retention"
    )
    jobs.run_repeating(
        _leader_only(_close_resolved), interval=3600, first=120, name="close-resolved"
    )
    jobs.run_repeating(
        _leader_only(_council_agendas), interval=3600, first=90, name="council-agendas"
    )
    jobs.run_daily(
        _leader_only(_weekly), time=_at(reports.weekly_time), days=(6,), name="weekly-report"
    )  # Saturday
