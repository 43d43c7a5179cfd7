"""Running a deployment's bots in one process: start them, receive the updates of those this
process leads (bot.receiving), stop them all.

Receiving is polling, or webhooks on one port: each bot at its path (`/telegram` for a single
bot, `/telegram/<key>` for each of several), with Telegram's secret header or Bale's secret
path. A webhook is answered once its update was handled (or after HANDLED_WAIT), so an update
a process was handling when it died is sent again by Telegram, to whichever process then
receives for the bot; a process that does not receive for a bot answers 503, which nginx takes
as "try the next process". The web server is tornado, the one PTB's own webhook server is built
on, used through its public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from collections.abc import Sequence
from typing import Any

import tornado.web
from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import Application

from bot.config import Settings, TelegramSettings
from bot.context import runtime_of
from bot.ids import update_moved_in
from bot.receiving import Receivers
from bot.turns import TurnTakingApplication
from handlers import reload_conversations

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A webhook waits this long for its update to be handled before it is answered all the same
# (Telegram gives up on an answer after about a minute, and would send the update again).
HANDLED_WAIT = 30.0
# An update is a few kilobytes; a bigger body is refused before it is read whole.
MAX_BODY = 1024 * 1024
# How long a process taking over a bot waits for its chats' conversation states to be read.
RELOAD_WAIT = 30.0


class _BotUpdates(tornado.web.RequestHandler):
    """One bot's webhook: checks its secret, hands the update over, answers once handled."""

    def initialize(
        self,
        bot_application: AnyApplication,
        secret: str | None,
        receivers: Receivers,
        key: str,
        apart: bool,
    ) -> None:
        self.bot_application = bot_application
        self.secret, self.receivers, self.key = secret, receivers, key
        self.apart = apart  # the other messenger's bot: its ids are moved in (bot/ids.py)

    async def post(self) -> None:
        """An update: refused without the bot's secret or when another process receives for
        the bot; else handled, then answered."""
        if self.secret is not None:
            given = self.request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                self.set_status(403)
                return
        if not self.receivers.leads(self.key):
            self.set_status(503)  # nginx passes it to the next process
            return
        try:
            data = json.loads(self.request.body)
            shaped = isinstance(data, dict) and isinstance(data.get("update_id"), int)
            if shaped and self.apart:
                data = update_moved_in(data)
            update = Update.de_json(data, self.bot_application.bot) if shaped else None
        except (ValueError, TypeError, KeyError, AttributeError):
            update = None
        if update is None:
            self.set_status(400)
            return
        if update is not None:
            await _handed_over(self.bot_application, update)
        self.set_status(200)


async def _handed_over(application: AnyApplication, update: Update) -> None:
    """Queue the update and wait, at most HANDLED_WAIT, until it was handled."""
    if not isinstance(application, TurnTakingApplication):
        await application.update_queue.put(update)
        return
    handled = application.when_handled(update.update_id)
    await application.update_queue.put(update)
    try:
        await asyncio.wait_for(asyncio.shield(handled), HANDLED_WAIT)
    except TimeoutError:
        application.stop_waiting(update.update_id)


def _telegram(settings: Settings, key: str) -> TelegramSettings:
    return settings.for_bot(key).telegram


async def serve(
    applications: list[AnyApplication],
    settings: Settings,
    *,
    role: str,
    allowed_updates: Sequence[str],
    port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start every bot, receive for those this process leads until SIGINT or SIGTERM (or
    `stop`), stop them all, the first bot's (which closes the shared pool) last."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
    started: list[AnyApplication] = []
    receiving: Receiving | None = None
    try:
        for key, application in zip(settings.bot_keys, applications, strict=True):
            try:
                await application.initialize()
            except InvalidToken as error:  # which bot's, for the operator
                raise InvalidToken(key) from error
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            started.append(application)
        if role != "worker":
            receiving = Receiving(applications, settings, list(allowed_updates))
            await receiving.start(port)
        log.info("running; stop with Ctrl+C or SIGTERM")
        await stop.wait()
    finally:
        if receiving is not None:
            await receiving.stop()
        for application in reversed(started):
            await application.stop()
            await application.shutdown()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)


class Receiving:
    """Polling or the webhook server, for the bots this process leads."""

    def __init__(
        self, applications: list[AnyApplication], settings: Settings, allowed_updates: list[str]
    ) -> None:
        self.keys, self.settings = settings.bot_keys, settings
        self.applications = dict(zip(self.keys, applications, strict=True))
        self.telegram = {key: _telegram(settings, key) for key in self.keys}
        self.allowed_updates = allowed_updates
        self.webhooks = self.telegram[self.keys[0]].mode == "webhook"
        engine = runtime_of(applications[0]).engine
        self.receivers = Receivers(engine, self.keys, on_gain=self._gain, on_loss=self._loss)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def start(self, port: int | None) -> None:
        """Listen (webhooks), take the bots nobody receives for, and keep trying."""
        if self.webhooks:
            first = self.telegram[self.keys[0]]
            routes = [
                (
                    f"/{self.telegram[key].webhook_route().url_path}/?",
                    _BotUpdates,
                    {
                        "bot_application": self.applications[key],
                        "secret": self.telegram[key].webhook_route().secret_token,
                        "receivers": self.receivers,
                        "key": key,
                        "apart": self.settings.ids_apart(key),
                    },
                )
                for key in self.keys
            ]
            # No request log: on Bale the path is the webhook's secret.
            web = tornado.web.Application(routes, log_function=lambda _: None)
            self._server = web.listen(
                port or first.webhook_port, address=first.webhook_listen, max_body_size=MAX_BODY
            )
            log.info("webhooks on %s:%d", first.webhook_listen, port or first.webhook_port)
        await self.receivers.step()
        self._started = True  # states were read at start-up; a bot taken over later reads them
        self._task = asyncio.create_task(self.receivers.run_forever(), name="receivers")

    async def _gain(self, key: str) -> None:
        """This process now receives for the bot: read its chats' conversation states again
        (after start-up: another process moved them on meanwhile), then register its webhook
        or start polling."""
        application, telegram = self.applications[key], self.telegram[key]
        runtime_of(application).handled_here.begin_receiving()
        if self._started:
            loaded = reload_conversations(application)
            if loaded is not None:
                await asyncio.wait_for(loaded.wait(), RELOAD_WAIT)
        if self.webhooks:
            route = telegram.webhook_route()
            await application.bot.set_webhook(
                url=route.webhook_url,
                secret_token=route.secret_token,
                allowed_updates=self.allowed_updates,
            )
        elif application.updater is not None:
            await application.updater.start_polling(allowed_updates=self.allowed_updates)

    async def _loss(self, key: str) -> None:
        """Another process receives for the bot now: stop polling (a webhook answers 503)."""
        updater = self.applications[key].updater
        if not self.webhooks and updater is not None and updater.running:
            await updater.stop()

    async def stop(self) -> None:
        """Stop receiving and hand every bot to the standbys."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            self._server.stop()
        await self.receivers.release_all()
