"""Assembling the PTB Application: the builder, the runtime, the handlers, start and stop."""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes

from bot.config import Settings
from bot.context import RUNTIME_KEY, MahalleContext, runtime_of
from bot.i18n import Translator
from bot.persistence import SQLConversationPersistence
from bot.runtime import Runtime
from bot.services.reference import sync_reference_data
from handlers import register_handlers
from models.db import create_engine, create_session_factory

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
# Bot commands and the locale key of each one's description in the messenger's menu.
COMMAND_KEYS = {
    "new": "command-new",
    "mine": "command-mine",
    "neighbourhood": "command-neighbourhood",
    "help": "command-help",
    "cancel": "command-cancel",
}


def default_builder(settings: Settings) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(settings.telegram.base_url)
        .base_file_url(settings.telegram.base_file_url)
    )
    if settings.telegram.rate_limit:
        # Telegram's flood limits; a short RetryAfter is waited out rather than raised.
        builder = builder.rate_limiter(
            AIORateLimiter(overall_max_rate=30, group_max_rate=20, max_retries=3)
        )
    return builder


def build_application(
    settings: Settings, builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None
) -> AnyApplication:
    """The fully wired bot. A given builder keeps its own token and request objects."""
    translate = Translator.load(settings.bot.language)
    # The engine connects lazily; it exists before `initialize()` because PTB reads
    # conversation states from the persistence there, before post_init runs.
    engine = create_engine(settings.database.url)
    session_factory = create_session_factory(engine)
    runtime = Runtime(settings, engine, session_factory, translate)
    application = (
        (builder or default_builder(settings))
        .context_types(ContextTypes(context=MahalleContext))
        .persistence(SQLConversationPersistence(session_factory))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data[RUNTIME_KEY] = runtime
    register_handlers(application, translate)
    return application


async def _post_init(application: AnyApplication) -> None:
    """Load the county's reference data and publish the command list."""
    runtime = runtime_of(application)
    async with runtime.session_factory() as session:
        await sync_reference_data(session=session, settings=runtime.settings)
    await application.bot.set_my_commands(
        [BotCommand(name, runtime.translate(key)) for name, key in COMMAND_KEYS.items()]
    )


async def _post_shutdown(application: AnyApplication) -> None:
    """Close the database pool."""
    await runtime_of(application).engine.dispose()
