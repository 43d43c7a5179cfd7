"""Running several bots in one process: each polls, or each has its path on one webhook server.

A deployment with one bot runs as PTB's `run_polling`/`run_webhook` do. With several (`[[bots]]`)
one process starts every bot's application, polls for each or serves each at `/telegram/<key>`
on one port (Telegram's header secret, or Bale's secret path, per bot), and stops them all,
the first bot's (which closes the shared database pool) last. The web server is tornado, the
one PTB's own webhook server is built on, used through its public API.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Sequence
from typing import Any

import tornado.web
from telegram import Update
from telegram.ext import Application

from bot.config import Settings

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class _BotUpdates(tornado.web.RequestHandler):
    """One bot's webhook: checks its secret, hands the update to its application."""

    def initialize(self, bot_application: AnyApplication, secret: str | None) -> None:
        self.bot_application = bot_application
        self.secret = secret

    async def post(self) -> None:
        """An update: refused without the bot's secret, else queued and answered at once."""
        if self.secret is not None:
            given = self.request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                self.set_status(403)
                return
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.bot_application.bot)
        except (ValueError, TypeError, KeyError):
            self.set_status(400)
            return
        if update is not None:
            await self.bot_application.update_queue.put(update)
        self.set_status(200)


async def serve(
    applications: list[AnyApplication],
    settings: Settings,
    *,
    role: str,
    allowed_updates: Sequence[str],
    port: int | None = None,
) -> None:
    """Start every bot, receive their updates until SIGINT or SIGTERM, stop them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    started: list[AnyApplication] = []
    server = None
    try:
        for application in applications:
            await application.initialize()
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            started.append(application)
        if role != "worker":
            server = await _receive(applications, settings, allowed_updates, port)
        log.info("%d bots running; stop with Ctrl+C or SIGTERM", len(applications))
        await stop.wait()
    finally:
        if server is not None:
            server.stop()
        for application in reversed(started):
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
            await application.shutdown()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)


async def _receive(
    applications: list[AnyApplication],
    settings: Settings,
    allowed_updates: Sequence[str],
    port: int | None,
) -> Any:
    """Poll for each bot, or register each one's webhook and serve them on one port."""
    bots = [settings.for_bot(key).telegram for key in settings.bot_keys]
    if all(telegram.mode == "polling" for telegram in bots):
        for application in applications:
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=list(allowed_updates))
        return None
    routes = []
    for application, telegram in zip(applications, bots, strict=True):
        route = telegram.webhook_route()
        routes.append(
            (
                f"/{route.url_path}",
                _BotUpdates,
                {"bot_application": application, "secret": route.secret_token},
            )
        )
        await application.bot.set_webhook(
            url=route.webhook_url,
            secret_token=route.secret_token,
            allowed_updates=list(allowed_updates),
        )
    first = bots[0]
    server = tornado.web.Application(routes).listen(
        port or first.webhook_port, address=first.webhook_listen
    )
    log.info(
        "webhooks of %d bots on %s:%d",
        len(routes),
        first.webhook_listen,
        port or first.webhook_port,
    )
    return server
