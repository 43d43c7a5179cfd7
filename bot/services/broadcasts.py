"""Broadcast campaigns: the audience, one row per recipient, progress, and cancelling."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.jalali import utcnow
from bot.services.reference import neighbourhoods_of_county
from models.entities import (
    Agency,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Case,
    GroupMember,
    GroupStatus,
    LocalGroup,
    Neighbourhood,
    RecipientStatus,
    Staff,
    User,
)

# What people read must fit Telegram's limits with the "how to stop" line added.
MAX_TEXT, MAX_CAPTION = 3800, 900


def audience_query(audience: dict[str, Any]) -> Select[Any]:
    """User ids an audience covers. Residents must have opted in; staff and group members get
    messages meant for them regardless. Nobody who blocked the bot is included."""
    kind = audience.get("kind")
    reachable = User.blocked_bot.is_(False)
    # A coordinator of one county of several reaches only that county.
    county = audience.get("county")
    if kind == "staff":
        agencies = select(Agency.key).where(Agency.key.in_(audience.get("agencies", [])))
        if county:
            agencies = agencies.where(Agency.county_key == county)
        return (
            select(Staff.user_id)
            .join(User, User.id == Staff.user_id)
            .where(Staff.agency_key.in_(agencies), reachable)
            .distinct()
        )
    if kind == "groups":
        query = (
            select(GroupMember.user_id)
            .join(LocalGroup, LocalGroup.id == GroupMember.group_id)
            .join(User, User.id == GroupMember.user_id)
            .where(LocalGroup.status == GroupStatus.APPROVED, reachable)
        )
        if county:
            query = query.where(LocalGroup.neighbourhood_id.in_(neighbourhoods_of_county(county)))
        return query.distinct()
    query = select(User.id).where(User.broadcasts_opt_in.is_(True), reachable)
    if county:
        query = query.where(lives_in_county(county))
    if kind == "districts":
        in_districts = select(Neighbourhood.id).where(
            Neighbourhood.district_id.in_(audience.get("ids", []))
        )
        query = query.where(lives_in(in_districts))
    elif kind == "neighbourhoods":
        query = query.where(lives_in(list(audience.get("ids", []))))
    return query


def lives_in(places: Collection[int] | Select[Any]) -> ColumnElement[bool]:
    """A resident lives in one of these neighbourhoods by their saved neighbourhood, or, with
    none saved, by where they reported: most residents never save one, and a notice for their
    neighbourhood (water cut tomorrow) is meant for them too."""
    reported_there = exists().where(Case.reporter_id == User.id, Case.neighbourhood_id.in_(places))
    return or_(
        User.neighbourhood_id.in_(places), and_(User.neighbourhood_id.is_(None), reported_there)
    )


def lives_in_county(county_key: str) -> ColumnElement[bool]:
    """A resident's county follows from their saved neighbourhood, or else from where they
    reported (`lives_in`)."""
    return lives_in(neighbourhoods_of_county(county_key))


async def count_audience(session: AsyncSession, audience: dict[str, Any]) -> int:
    """How many people an audience reaches now."""
    subquery = audience_query(audience).subquery()
    return int(await session.scalar(select(func.count()).select_from(subquery)) or 0)


async def start_draft(session: AsyncSession, *, created_by: int) -> Campaign:
    """A new campaign being composed (replacing this coordinator's unfinished one)."""
    await session.execute(
        delete(Campaign).where(
            Campaign.created_by == created_by, Campaign.status == CampaignStatus.DRAFT
        )
    )
    campaign = Campaign(created_by=created_by, status=CampaignStatus.DRAFT, content={}, audience={})
    session.add(campaign)
    await session.flush()
    return campaign


async def discard_draft(session: AsyncSession, *, created_by: int) -> None:
    """Forget the campaign this coordinator was composing."""
    await session.execute(
        delete(Campaign).where(
            Campaign.created_by == created_by, Campaign.status == CampaignStatus.DRAFT
        )
    )


async def current_draft(session: AsyncSession, *, created_by: int) -> Campaign | None:
    """The campaign this coordinator is composing."""
    query = select(Campaign).where(
        Campaign.created_by == created_by, Campaign.status == CampaignStatus.DRAFT
    )
    return await session.scalar(query.order_by(Campaign.id.desc()).limit(1))


async def launch(
    session: AsyncSession, *, campaign: Campaign, scheduled_at: datetime, progress_chat_id: int
) -> int:
    """Freeze the audience into recipient rows (inside the database, however many) and schedule."""
    now = utcnow()
    rows = audience_query(campaign.audience).subquery()
    await session.execute(
        insert(CampaignRecipient).from_select(
            ["campaign_id", "user_id", "status", "attempts", "next_attempt_at"],
            select(
                literal(campaign.id),
                rows.c[0],
                literal(RecipientStatus.PENDING.value),
                literal(0),
                literal(now),
            ),
        )
    )
    campaign.status = CampaignStatus.SCHEDULED
    campaign.scheduled_at = scheduled_at
    campaign.progress_chat_id = progress_chat_id
    return (
        await session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id)
        )
        or 0
    )


@dataclass(frozen=True)
class Progress:
    """Counts of one campaign's recipients."""

    sent: int
    failed: int
    blocked: int
    pending: int

    @property
    def total(self) -> int:
        """Everyone the campaign was launched to."""
        return self.sent + self.failed + self.blocked + self.pending


async def progress(session: AsyncSession, campaign_id: int) -> Progress:
    """Where a campaign stands."""
    rows = await session.execute(
        select(CampaignRecipient.status, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.status)
    )
    counts = {status: count for status, count in rows}
    return Progress(
        sent=counts.get(RecipientStatus.SENT, 0),
        failed=counts.get(RecipientStatus.FAILED, 0),
        blocked=counts.get(RecipientStatus.BLOCKED, 0),
        pending=counts.get(RecipientStatus.PENDING, 0),
    )


@dataclass(frozen=True)
class Claimed:
    """A recipient claimed to send to, and what their row says now."""

    recipient: CampaignRecipient
    needs_intro: bool
    opted_in: bool  # they may have turned broadcasts off since the campaign was launched


def consent_needed(audience: dict[str, Any]) -> bool:
    """Whether an audience reaches residents only with their consent (`audience_query`):
    staff and group members get what is meant for them regardless."""
    return audience.get("kind") not in ("staff", "groups")


async def withdraw(session: AsyncSession, recipient: CampaignRecipient) -> None:
    """A resident who turned broadcasts off after the launch is no longer a recipient."""
    await session.delete(recipient)


async def claim_next(session: AsyncSession, *, campaign_id: int, now: datetime) -> Claimed | None:
    """The next due recipient (locked on PostgreSQL), whether they still need the intro, and
    whether they still take broadcasts."""
    query = (
        select(CampaignRecipient, User.broadcast_intro_sent, User.broadcasts_opt_in)
        .join(User, User.id == CampaignRecipient.user_id, isouter=True)
        .where(
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.status == RecipientStatus.PENDING,
            CampaignRecipient.next_attempt_at <= now,
        )
        .order_by(CampaignRecipient.next_attempt_at)  # index order: no sort of all pending rows
        .limit(1)
        .with_for_update(skip_locked=True, of=CampaignRecipient)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    recipient, intro_sent, opted_in = row
    return Claimed(recipient, not intro_sent, bool(opted_in))


async def next_due(session: AsyncSession, *, campaign_id: int) -> datetime | None:
    """When the earliest pending recipient is due (those waiting out a back-off)."""
    return await session.scalar(
        select(func.min(CampaignRecipient.next_attempt_at)).where(
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.status == RecipientStatus.PENDING,
        )
    )


async def mark(
    session: AsyncSession,
    recipient: CampaignRecipient,
    status: str,
    *,
    error: str | None = None,
    intro_shown: bool = False,
    bot_key: str | None = None,
) -> None:
    """Record a final outcome for one recipient; blocked users are remembered everywhere (with
    several bots, when the bot they blocked is the one that reaches them)."""
    recipient.status = status
    recipient.attempts += 1
    recipient.last_error = error[:500] if error else None
    if status == RecipientStatus.BLOCKED:
        theirs = or_(User.bot_key.is_(None), User.bot_key == bot_key) if bot_key else true()
        await session.execute(
            update(User).where(User.id == recipient.user_id, theirs).values(blocked_bot=True)
        )
    if intro_shown:
        await session.execute(
            update(User).where(User.id == recipient.user_id).values(broadcast_intro_sent=True)
        )


def retry_later(
    recipient: CampaignRecipient, *, error: str, now: datetime, max_attempts: int
) -> None:
    """A transient failure: try again after a back-off, or give up after max_attempts."""
    recipient.attempts += 1
    recipient.last_error = error[:500]
    if recipient.attempts >= max_attempts:
        recipient.status = RecipientStatus.FAILED
    else:
        recipient.next_attempt_at = now + timedelta(seconds=min(2**recipient.attempts, 60))


async def set_status(
    session: AsyncSession, campaign_id: int, *, to: str, allowed_from: set[str]
) -> bool:
    """Conditional status change; False when the campaign was not in an allowed state."""
    values: dict[str, Any] = {"status": to}
    if to == CampaignStatus.RUNNING:
        values["started_at"] = utcnow()
    if to in (CampaignStatus.DONE, CampaignStatus.CANCELLED):
        values["finished_at"] = utcnow()
    result = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(allowed_from))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def due_campaigns(session: AsyncSession, *, now: datetime) -> list[tuple[int, int | None]]:
    """Campaigns to run now: scheduled ones whose time came, and running ones a restart left;
    each with the chat that follows its progress (whose bot sends it, where there are several)."""
    query = select(Campaign.id, Campaign.progress_chat_id).where(
        (Campaign.status == CampaignStatus.RUNNING)
        | ((Campaign.status == CampaignStatus.SCHEDULED) & (Campaign.scheduled_at <= now))
    )
    return [
        (row.id, row.progress_chat_id) for row in await session.execute(query.order_by(Campaign.id))
    ]
