"""What every handler and job shares for the life of the process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.i18n import Translator


@dataclass(frozen=True)
class Runtime:
    """Settings, the database and the strings; built once in `build_application`."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    translate: Translator
