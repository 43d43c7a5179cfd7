"""Local civil-society groups: registration, approval, membership."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import GroupMember, GroupStatus, LocalGroup

MAX_NAME, MAX_FIELD = 120, 200


async def start_registration(session: AsyncSession, *, user_id: int) -> LocalGroup:
    """A fresh registration draft for this user (replacing an unfinished one)."""
    await session.execute(
        delete(LocalGroup).where(
            LocalGroup.created_by == user_id, LocalGroup.status == GroupStatus.DRAFT
        )
    )
    group = LocalGroup(
        created_by=user_id, status=GroupStatus.DRAFT, invite_token=secrets.token_urlsafe(12)
    )
    session.add(group)
    await session.flush()
    return group


async def waiting_request(session: AsyncSession, *, user_id: int) -> str | None:
    """The name of a group this user asked to register that the coordinators have not decided
    yet (the newest), if any."""
    return await session.scalar(
        select(LocalGroup.name)
        .where(LocalGroup.created_by == user_id, LocalGroup.status == GroupStatus.PENDING)
        .order_by(LocalGroup.id.desc())
        .limit(1)
    )


async def registration(session: AsyncSession, *, user_id: int) -> LocalGroup | None:
    """The registration this user is filling in."""
    query = select(LocalGroup).where(
        LocalGroup.created_by == user_id, LocalGroup.status == GroupStatus.DRAFT
    )
    return await session.scalar(query.order_by(LocalGroup.id.desc()).limit(1))


async def decide(
    session: AsyncSession, *, group_id: int, approve: bool, coordinator: int, now: datetime
) -> LocalGroup | None:
    """Approve or refuse a pending group, once; its founder becomes its first member."""
    result = await session.execute(
        update(LocalGroup)
        .where(LocalGroup.id == group_id, LocalGroup.status == GroupStatus.PENDING)
        .values(
            status=GroupStatus.APPROVED if approve else GroupStatus.REFUSED,
            decided_by=coordinator,
            decided_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    group = await session.get(LocalGroup, group_id, populate_existing=True)
    assert group is not None
    if approve and group.created_by is not None:  # None: the founder was forgotten meanwhile
        await join(session, token=group.invite_token, user_id=group.created_by, now=now)
    return group


async def join(
    session: AsyncSession, *, token: str, user_id: int, now: datetime
) -> LocalGroup | None:
    """Membership through a group's link; None for an unknown or unapproved group."""
    group = await session.scalar(select(LocalGroup).where(LocalGroup.invite_token == token))
    if group is None or group.status != GroupStatus.APPROVED:
        return None
    if await session.get(GroupMember, (group.id, user_id)) is None:
        session.add(GroupMember(group_id=group.id, user_id=user_id, joined_at=now))
    return group


_MEMBERSHIPS = (  # built once: building it cost more than running it
    select(LocalGroup)
    .join(GroupMember, GroupMember.group_id == LocalGroup.id)
    .where(GroupMember.user_id == bindparam("user_id"), LocalGroup.status == GroupStatus.APPROVED)
    .order_by(LocalGroup.name)
)


async def memberships(session: AsyncSession, *, user_id: int) -> list[LocalGroup]:
    """The approved groups a user may report for."""
    return list((await session.scalars(_MEMBERSHIPS, {"user_id": user_id})).all())
