"""The people who talk to the bot."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models.entities import Neighbourhood, User


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
