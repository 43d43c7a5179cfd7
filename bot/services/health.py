"""What an operator checks first: is anything waiting that should have moved on?

Read by `mahalle status`. Each backlog is a count and the age of its oldest item; the limits
below are far beyond what a running deployment shows, so crossing one means a process is
missing or stuck, not that it is busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.config import Settings
from bot.leader import LOCK_KEY
from bot.receiving import RECEIVER_SPACE
from bot.services.outbox import rows_of_bot, sendable
from models.db import dialect_of, table_of
from models.entities import (
    Campaign,
    CampaignStatus,
    Case,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    outbox_status,
)

# A message that may go (due, the first of its chat's) waits for nothing but a worker; a busy
# group's next card is put off to its turn, and is not counted until then.
OUTBOX_STUCK = timedelta(minutes=5)
# The leading worker places stranded cases every minute.
UNPLACED_STUCK = timedelta(minutes=10)
DEAD_WINDOW = timedelta(days=1)
# A case flagged undeliverable in one of these statuses has no card where it should be.
WAITING_FOR_A_CARD = (
    CaseStatus.TRIAGE,
    CaseStatus.FORWARDED,
    CaseStatus.ACCEPTED,
    CaseStatus.NEEDS_INFO,
    CaseStatus.REOPENED,
)
REFUSED_SHOWN = 10

# Who holds the jobs' advisory lock (one bigint key: its high and low halves, objsubid 1).
_JOBS_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND classid::bigint = :high AND objid::bigint = :low"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

# Which bots' receiving locks are held (two int keys: the space, then the bot; objsubid 2).
_RECEIVERS_HELD = text(
    "SELECT objid::bigint, application_name FROM pg_locks"
    " LEFT JOIN pg_stat_activity USING (pid)"
    " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND classid::bigint = :space AND objid::bigint < :count"
    " AND pg_locks.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(frozen=True)
class Backlog:
    """Items waiting, and since when the oldest has waited."""

    count: int
    oldest: datetime | None

    def waited(self, now: datetime) -> timedelta:
        """How long the oldest item has waited (nothing: no time)."""
        return now - self.oldest if self.oldest is not None else timedelta(0)


@dataclass(frozen=True)
class Health:
    """The deployment's backlogs and who runs the scheduled jobs."""

    outbox: Backlog  # every message still to send, since it was queued
    outbox_sendable: Backlog  # those that may go now, since they fell due
    outbox_dead: int
    unplaced: Backlog
    # Cases whose card Telegram refused (or whose agency has no chat), not yet placed again:
    # their tracking codes, the oldest first (at most REFUSED_SHOWN).
    refused_cards: list[str]
    broadcasts_running: int
    broadcasts_scheduled: int
    # None on SQLite, where the one process runs them.
    jobs_held: bool | None
    # Whether some process receives each bot's updates, by bot key; None on SQLite.
    # Each bot's receiver: its connections' name (models.db.process_name), "" when none holds it.
    receivers: dict[str, str] | None = None
    # With several bots: each one's messages waiting, and those that may go now, by bot key.
    bots: dict[str, tuple[Backlog, Backlog]] = field(default_factory=dict)

    def lines(self, now: datetime) -> list[str]:
        """The state, a line a part."""
        jobs = {True: "a worker", False: "no process", None: "the one process (SQLite)"}
        return [
            f"messages waiting in the outbox: {_count(self.outbox, now)}",
            f"messages of the last day that could not be delivered: {self.outbox_dead}",
            f"cases waiting to be placed: {_count(self.unplaced, now)}",
            f"cases whose card did not arrive, waiting for a coordinator: "
            f"{', '.join(self.refused_cards) or 0}",
            f"broadcasts running: {self.broadcasts_running}, "
            f"scheduled: {self.broadcasts_scheduled}",
            f"scheduled jobs run by: {jobs[self.jobs_held]}",
            *(
                f"updates of bot {key} received by: {held or 'no process'}"
                for key, held in (self.receivers or {}).items()
            ),
            *(
                f"bot {key}: messages waiting {_count(waiting, now)}, "
                f"that may go now {_count(due, now)}"
                for key, (waiting, due) in self.bots.items()
            ),
        ]

    def problems(self, now: datetime) -> list[str]:
        """What needs a look, in the operator's words; empty when all is well."""
        found = []
        if self.jobs_held is False:
            found.append("no process runs the scheduled jobs: is a worker running?")
        for key, received in (self.receivers or {}).items():
            if not received:
                found.append(f"no process receives the updates of bot {key}: is one running?")
        if self.outbox_sendable.waited(now) > OUTBOX_STUCK:
            found.append("messages that may go are not being sent: is a worker running?")
        for key, (_, due) in self.bots.items():
            if due.waited(now) > OUTBOX_STUCK:
                found.append(f"bot {key}'s messages are not being sent: is its token working?")
        if self.unplaced.waited(now) > UNPLACED_STUCK:
            found.append("cases wait to be placed: see the worker's log")
        if self.refused_cards:
            found.append(
                f"cards that did not arrive (Telegram refused them, or the agency has no chat): "
                f"{', '.join(self.refused_cards)}; a coordinator should place each case again"
            )
        return found


def _count(backlog: Backlog, now: datetime) -> str:
    """ "3 (the oldest for 2 min)", or "0"."""
    if not backlog.count:
        return "0"
    return f"{backlog.count} (the oldest for {_span(backlog.waited(now))})"


def _span(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


async def _backlog(
    session: AsyncSession, stamp: ColumnElement[datetime], *where: ColumnElement[bool]
) -> Backlog:
    count, oldest = (
        await session.execute(select(func.count(), func.min(stamp)).where(*where))
    ).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite keeps no time zone; it is UTC
        oldest = oldest.replace(tzinfo=UTC)
    return Backlog(count=count, oldest=oldest)


async def _refused_cards(session: AsyncSession) -> list[str]:
    """Codes of cases flagged undeliverable that still wait where the card went astray."""
    codes = await session.scalars(
        select(Case.code)
        .where(Case.undeliverable.is_(True), Case.status.in_(WAITING_FOR_A_CARD))
        .order_by(Case.id)
        .limit(REFUSED_SHOWN)
    )
    return list(codes)


async def _jobs_held(session: AsyncSession) -> bool | None:
    if dialect_of(session) != "postgresql":
        return None
    held = await session.scalar(_JOBS_HELD, {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF})
    return bool(held)


async def _receivers_held(session: AsyncSession, bot_keys: list[str]) -> dict[str, str] | None:
    """Which process holds each bot's receiving lock (bot/receiving.py), by its connections'
    name ("a process" if it gave none), "" for none; None on SQLite."""
    if dialect_of(session) != "postgresql":
        return None
    found = await session.execute(
        _RECEIVERS_HELD.bindparams(space=RECEIVER_SPACE, count=len(bot_keys))
    )
    held = {int(index): name or "a process" for index, name in found}
    return {key: held.get(index, "") for index, key in enumerate(bot_keys)}


async def read_health(
    *, session: AsyncSession, now: datetime, settings: Settings | None = None
) -> Health:
    """The deployment's state as of `now` (with the settings: each bot's part too)."""
    outbox = table_of(OutboxMessage).c
    pending = outbox.status == outbox_status(OutboxStatus.PENDING)
    bots = {}
    for key in settings.bot_keys if settings is not None and settings.bots else []:
        assert settings is not None
        mine = rows_of_bot(settings, key)
        assert mine is not None
        bots[key] = (
            await _backlog(session, outbox.created_at, pending, mine),
            await _backlog(session, outbox.next_attempt_at, *sendable(now), mine),
        )
    campaigns = await session.execute(
        select(Campaign.status, func.count())
        .where(Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.SCHEDULED)))
        .group_by(Campaign.status)
    )
    by_status: dict[str, int] = {status: count for status, count in campaigns}
    return Health(
        outbox=await _backlog(
            session, outbox.created_at, outbox.status == outbox_status(OutboxStatus.PENDING)
        ),
        outbox_sendable=await _backlog(session, outbox.next_attempt_at, *sendable(now)),
        outbox_dead=await session.scalar(
            select(func.count()).where(
                outbox.status == outbox_status(OutboxStatus.DEAD),
                outbox.created_at >= now - DEAD_WINDOW,
            )
        )
        or 0,
        unplaced=await _backlog(
            session,
            table_of(Case).c.created_at,
            Case.status == CaseStatus.SUBMITTED,
            Case.domain_asked_at.is_(None),  # one whose reporter is choosing is not stuck
        ),
        refused_cards=await _refused_cards(session),
        broadcasts_running=by_status.get(CampaignStatus.RUNNING, 0),
        broadcasts_scheduled=by_status.get(CampaignStatus.SCHEDULED, 0),
        jobs_held=await _jobs_held(session),
        receivers=await _receivers_held(session, settings.bot_keys if settings else ["main"]),
        bots=bots,
    )
