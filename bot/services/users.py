"""The people who talk to the bot."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Executable, bindparam, case, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards import Cards
from bot.config import Settings
from bot.jalali import utcnow
from bot.rules import BlockRefusal, judge_block
from bot.services import casework, outbox
from models.db import built_once, dialect_insert, table_of
from models.entities import (
    BanEvent,
    CampaignRecipient,
    Case,
    CaseEvent,
    CaseStatus,
    ConversationState,
    District,
    Draft,
    GroupMember,
    LocalGroup,
    Neighbourhood,
    PendingInput,
    PressWindow,
    Staff,
    User,
)

# The PostgreSQL channel on which a change to who is blocked is announced (bot/blocklist.py).
BLOCKLIST_CHANNEL = "mahalle_blocklist"


async def get_or_create_user(*, session: AsyncSession, user_id: int, language: str) -> User:
    """The user's row, created on first contact; talking to us again means they unblocked us."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id, language=language)
        session.add(user)
        await session.flush()
    elif user.blocked_bot:
        user.blocked_bot = False
    return user


async def save_neighbourhood(
    *, session: AsyncSession, user: User, neighbourhood: Neighbourhood
) -> None:
    """Remember the user's own neighbourhood, offered first on their next report."""
    user.neighbourhood_id = neighbourhood.id
    user.neighbourhood = neighbourhood
    await session.commit()


async def mark_blocked(*, session: AsyncSession, user_id: int) -> None:
    """The user blocked the bot: stop writing to them until they write again."""
    user = await session.get(User, user_id)
    if user is not None and not user.blocked_bot:
        user.blocked_bot = True
        await session.commit()


async def toggle_broadcasts(*, session: AsyncSession, user_id: int) -> bool:
    """Flip the user's broadcast choice; returns whether they now receive broadcasts."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id)
        session.add(user)
    user.broadcasts_opt_in = not user.broadcasts_opt_in
    user.broadcasts_chosen = True
    await session.commit()
    return user.broadcasts_opt_in


async def forget(*, session: AsyncSession, user_id: int, cards: Cards) -> int:
    """Remove a person: identity and contact go, their cases stay anonymised for the statistics
    (their agency cards no longer show the phone number). Returns how many were anonymised."""
    theirs = (
        await session.execute(
            select(Case.id, Case.share_phone & Case.reporter_phone.is_not(None)).where(
                Case.reporter_id == user_id
            )
        )
    ).all()
    case_ids = [case_id for case_id, _ in theirs]
    phone_shown = [case_id for case_id, shown in theirs if shown]
    await outbox.forget_person(session, chat_id=user_id, case_ids=case_ids)
    cases = await session.execute(
        update(Case)
        .where(Case.reporter_id == user_id)
        .values(reporter_id=None, reporter_phone=None, share_phone=False)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CaseEvent)
        .where(CaseEvent.actor_id == user_id)
        .values(actor_id=None, actor_name=None)
    )
    owned_rows = (
        (Draft, Draft.user_id),
        (PendingInput, PendingInput.user_id),
        (GroupMember, GroupMember.user_id),
        (Staff, Staff.user_id),
        (CampaignRecipient, CampaignRecipient.user_id),
        (PressWindow, PressWindow.user_id),
    )
    for table, column in owned_rows:
        await session.execute(delete(table).where(column == user_id))
    await session.execute(
        delete(ConversationState).where(ConversationState.key.like(f"[{user_id}, %"))
    )
    await session.execute(
        update(LocalGroup).where(LocalGroup.created_by == user_id).values(created_by=0)
    )
    await session.execute(delete(User).where(User.id == user_id))
    await casework.hide_contact(session, case_ids=phone_shown, cards=cards)
    return int(cases.rowcount or 0)  # type: ignore[attr-defined]


async def drop_old_contacts(*, session: AsyncSession, older_than: datetime) -> int:
    """Remove reporters' phone numbers from cases closed or rejected before `older_than`."""
    result = await session.execute(
        update(Case)
        .where(
            Case.status.in_((CaseStatus.CLOSED, CaseStatus.REJECTED)),
            Case.updated_at < older_than,
            Case.reporter_phone.is_not(None),
        )
        .values(reporter_phone=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def block_refusal(
    *, session: AsyncSession, actor_id: int, user_id: int, settings: Settings
) -> BlockRefusal | None:
    """Why this coordinator may not block or unblock this person, or None (bot/rules.py).
    In a deployment of several counties the person must live in, or have reported in, the
    coordinator's county."""
    county = settings.county_of_coordinator(actor_id)
    scope = settings.case_filter_county(county.key if county else None)
    in_county = scope is None or scope in await counties_of_person(session, user_id=user_id)
    is_staff = await session.scalar(select(Staff.user_id).where(Staff.user_id == user_id).limit(1))
    return judge_block(
        is_self=actor_id == user_id, is_coordinator=user_id in settings.coordinators,
        is_staff=is_staff is not None, in_county=in_county,
    )  # fmt: skip


async def counties_of_person(session: AsyncSession, *, user_id: int) -> set[str]:
    """The counties a person has a saved neighbourhood or a case in."""
    places = (
        select(User.neighbourhood_id)
        .where(User.id == user_id)
        .union(select(Case.neighbourhood_id).where(Case.reporter_id == user_id))
    )
    keys = await session.scalars(
        select(District.county_key)
        .join(Neighbourhood, Neighbourhood.district_id == District.id)
        .where(Neighbourhood.id.in_(places.scalar_subquery()))
        .distinct()
    )
    return set(keys)


async def set_banned(*, session: AsyncSession, user_id: int, banned: bool, actor_id: int) -> None:
    """Block or unblock a user (coordinators, against abuse), with an audit row, and commit; on
    PostgreSQL, every process listening hears of it at the commit."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id)
        session.add(user)
    user.banned = banned
    session.add(BanEvent(user_id=user_id, banned=banned, actor_id=actor_id, created_at=utcnow()))
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, '')"), {"channel": BLOCKLIST_CHANNEL}
        )
    await session.commit()


async def banned_ids(*, session: AsyncSession) -> set[int]:
    """Everyone currently blocked."""
    return set((await session.scalars(select(User.id).where(User.banned.is_(True)))).all())


_WINDOWS = table_of(PressWindow)
# The kinds of window: button presses, and messages (every other update a person sends).
PRESSES, UPDATES = "press", "update"


@built_once
def _counted_in_window(dialect: str) -> Executable:
    """Count one press or update: a new window starts when the last one is over (built once:
    every update runs it)."""
    window_over = _WINDOWS.c.started_at <= bindparam("window_start")
    upsert = dialect_insert(dialect, _WINDOWS).values(
        user_id=bindparam("user_id"), kind=bindparam("kind"), started_at=bindparam("now"), counted=1
    )
    return upsert.on_conflict_do_update(
        index_elements=["user_id", "kind"],
        set_={
            "counted": case((window_over, 1), else_=_WINDOWS.c.counted + 1),
            "started_at": case(
                (window_over, upsert.excluded.started_at), else_=_WINDOWS.c.started_at
            ),
        },
    ).returning(_WINDOWS.c.counted)


async def count_in_window(
    *, session: AsyncSession, user_id: int, kind: str, now: datetime, window: timedelta
) -> int:
    """Count a press or an update (`kind`) of a user; returns how many of that kind fall in the
    window this one does. One statement, in the database, so that updates spread over several
    web processes add up."""
    counted = await session.execute(
        _counted_in_window(session),
        {"user_id": user_id, "kind": kind, "now": now, "window_start": now - window},
    )
    number = int(counted.scalar_one())
    await session.commit()
    return number


async def count_press(
    *, session: AsyncSession, user_id: int, now: datetime, window: timedelta
) -> int:
    """Count a button press; returns the user's presses in the window it falls in."""
    return await count_in_window(
        session=session, user_id=user_id, kind=PRESSES, now=now, window=window
    )
