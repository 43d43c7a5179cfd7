"""The CallbackContext handlers receive: the update's database session, and `t()` for text."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application, CallbackContext, ExtBot

from bot.runtime import Runtime
from bot.unit import unit_of_this_task

RUNTIME_KEY = "runtime"
LANGUAGE_KEY = "language"


class MahalleContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with typed access to the runtime."""

    @property
    def runtime(self) -> Runtime:
        """The process-wide runtime stored in bot_data by `build_application`."""
        runtime: Runtime = self.bot_data[RUNTIME_KEY]
        return runtime

    def session(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """The update's session (bot/unit.py), or a job's own, for one `async with` block."""
        return self._block(autocommit=False)

    def autocommit(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """Like `session()`, for a block whose statements each stand alone: reads, or a write
        whole in one statement. On PostgreSQL each commits on its own, without the BEGIN and
        ROLLBACK or COMMIT round trips (bot/unit.py); a write cannot be rolled back."""
        return self._block(autocommit=True)

    @contextlib.asynccontextmanager
    async def _block(self, *, autocommit: bool) -> AsyncIterator[AsyncSession]:
        unit = unit_of_this_task()
        if unit is None:
            async with self.runtime.session_factory() as session:
                yield session
            return
        async with unit.autocommit() if autocommit else unit.session() as session:
            yield session

    @property
    def language(self) -> str:
        """The user's language, remembered once their row was read; else the default."""
        if self.user_data is not None and LANGUAGE_KEY in self.user_data:
            return str(self.user_data[LANGUAGE_KEY])
        return self.runtime.settings.bot.language

    def remember_language(self, language: str) -> None:
        """Keep the user's language for this process, so `t()` needs no query."""
        if self.user_data is not None:
            self.user_data[LANGUAGE_KEY] = language

    def t(self, key: str, /, **values: object) -> str:
        """The text for `key` in the user's language."""
        return self.runtime.translate(key, self.language, **values)


def runtime_of(application: Application[Any, Any, Any, Any, Any, Any]) -> Runtime:
    """The runtime, for code that holds the application rather than a context."""
    runtime: Runtime = application.bot_data[RUNTIME_KEY]
    return runtime
