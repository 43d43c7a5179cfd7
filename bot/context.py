"""The CallbackContext handlers receive: one new database session per use, and `t()` for text."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application, CallbackContext, ExtBot

from bot.runtime import Runtime

RUNTIME_KEY = "runtime"
LANGUAGE_KEY = "language"


class MahalleContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with typed access to the runtime."""

    @property
    def runtime(self) -> Runtime:
        """The process-wide runtime stored in bot_data by `build_application`."""
        runtime: Runtime = self.bot_data[RUNTIME_KEY]
        return runtime

    def session(self) -> AsyncSession:
        """A new session for this update or job; use it as `async with context.session() as s`."""
        return self.runtime.session_factory()

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
