"""Assembling the PTB Application: the builder, the runtime, the handlers, start and stop."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from telegram.constants import UpdateType
from telegram.ext import Application, ApplicationBuilder, ContextTypes
from telegram.request import HTTPXRequest

from bot.bale import BaleRequest, runs_on_bale
from bot.broadcasting import CampaignSender, progress_reporter
from bot.cards import Cards
from bot.chats import GroupChats
from bot.config import Settings
from bot.context import RUNTIME_KEY, MahalleContext, runtime_of
from bot.delivery import OutboxSender
from bot.digits import ltr
from bot.flood import FloodLimiter
from bot.i18n import Translator
from bot.ids import as_written
from bot.jobs import schedule_jobs
from bot.leader import Leadership
from bot.listening import Listener, channels_for, reload_blocked
from bot.logfilter import install as keep_logs_private
from bot.menus import RESIDENT_COMMANDS, publish
from bot.namespaced import kept_apart
from bot.persistence import SQLConversationPersistence
from bot.pipeline import settle
from bot.runtime import Runtime
from bot.services import outbox
from bot.services.reference import sync_reference_data
from bot.services.refusals import handle_delivery, handle_refusal
from bot.signing import Signer
from bot.triage.service import Triage
from bot.turns import ChatOrderedProcessor, TurnTakingApplication
from handlers import register_handlers
from models.db import create_engine, create_session_factory

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
# Telegram's limit on a bot's messages into one group.
GROUP_PER_MINUTE = 20
# The updates the handlers act on, asked of Telegram by name: unasked, Telegram keeps whatever
# the bot's token was last set to (another program's choice could leave the buttons dead), and
# sends channel posts and member changes nobody reads.
ALLOWED_UPDATES = [UpdateType.MESSAGE, UpdateType.EDITED_MESSAGE, UpdateType.CALLBACK_QUERY]
# Bot commands and the locale key of each one's description in the messenger's menu.
COMMAND_KEYS = RESIDENT_COMMANDS


def default_builder(settings: Settings) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(settings.telegram.base_url)
        .base_file_url(settings.telegram.base_file_url)
    )
    if settings.telegram.platform == "bale" or settings.on_both_messengers:
        kind = BaleRequest if settings.telegram.platform == "bale" else HTTPXRequest
        # PTB's own sizes: 256 calls at once, 1 poll
        calls, polls = kind(connection_pool_size=256), kind(connection_pool_size=1)
        builder = builder.request(kept_apart(settings, calls)).get_updates_request(
            kept_apart(settings, polls)
        )
    if settings.telegram.rate_limit:
        builder = builder.rate_limiter(flood_limiter())
    return builder


def flood_limiter() -> FloodLimiter:
    """Telegram's flood limits (30 a second in all, 20 a minute per group); a RetryAfter pauses
    its chat alone and is waited out rather than raised, except by the senders (bot/flood.py)."""
    return FloodLimiter(overall_max_rate=30, group_max_rate=GROUP_PER_MINUTE, retries=3)


def build_applications(
    settings: Settings,
    builders: dict[str, ApplicationBuilder[Any, Any, Any, Any, Any, Any]] | None = None,
    *,
    role: str = "all",
    freeze_startup: bool = False,
) -> list[AnyApplication]:
    """One application for each bot of the deployment, the first (which runs the jobs and
    owns the database pool) first. They share the database, triage, strings and groups; each
    has its own token, flood limits, outbox sender and persistence."""
    builders = builders or {}
    keys = settings.bot_keys
    first = build_application(
        settings, builders.get(keys[0]), role=role, freeze_startup=freeze_startup, bot_key=keys[0]
    )
    applications = [first]
    for key in keys[1:]:
        applications.append(
            build_application(
                settings, builders.get(key), role=role, bot_key=key, shared=runtime_of(first)
            )
        )
    return applications


def build_application(
    settings: Settings,
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None,
    *,
    role: str = "all",
    freeze_startup: bool = False,
    bot_key: str | None = None,
    shared: Runtime | None = None,
) -> AnyApplication:
    """The fully wired bot. A given builder keeps its own token and request objects.
    `freeze_startup`: for a long-running process, see `_freeze_what_was_loaded`. `bot_key` and
    `shared`: one bot of several (`build_applications`), sharing the first one's runtime parts."""
    keep_logs_private()
    bot_key = bot_key or settings.bot_keys[0]
    settings = settings.for_bot(bot_key)
    if shared is None:
        translate = Translator.load(settings.bot.language)
        # The engine connects lazily; it exists before `initialize()` because PTB reads
        # conversation states from the persistence there, before post_init runs.
        engine = create_engine(
            settings.database.url, connections=pooled_connections(settings, role)
        )
        runtime = Runtime(
            settings,
            engine,
            create_session_factory(engine),
            translate,
            Triage(settings.triage.model_path),
            Leadership(engine),
            role,
            groups=GroupChats.of(settings),
            bot_key=bot_key,
        )
    else:
        translate = shared.translate
        runtime = Runtime(
            settings,
            shared.engine,
            shared.session_factory,
            translate,
            shared.triage,
            shared.leadership,
            role,
            groups=shared.groups,
            bot_key=bot_key,
            siblings=shared.siblings,
        )
    runtime.siblings[bot_key] = runtime
    engine, session_factory = runtime.engine, runtime.session_factory
    # One process's bots share the places to handle updates in: the pool holds that many.
    at_once = concurrent_updates(settings)
    runtime.update_places = shared.update_places if shared else asyncio.Semaphore(at_once)
    builder = (builder or default_builder(settings)).concurrent_updates(
        ChatOrderedProcessor(at_once, runtime.update_places)
    )
    application = (
        builder.application_class(TurnTakingApplication)
        .context_types(ContextTypes(context=MahalleContext))
        .persistence(SQLConversationPersistence(session_factory))
        .post_init(_post_init_then_freeze if freeze_startup else _post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.bot_data[RUNTIME_KEY] = runtime
    runtime.bot = application.bot
    runs_on_bale(application.bot.token, settings.telegram.platform == "bale")
    if isinstance(application.bot.rate_limiter, FloodLimiter):
        application.bot.rate_limiter.groups = runtime.groups
    # One signer for every bot: a card one bot queues (a job's reminder) is pressed in another.
    runtime.cards = (
        shared.cards
        if shared is not None
        else Cards(translate, Signer(application.bot.token), settings.bot.language)
    )
    runtime.sender = OutboxSender(
        application.bot,
        session_factory,
        max_backoff_seconds=settings.outbox.max_backoff_seconds,
        max_attempts=settings.outbox.max_attempts,
        unreachable_notice=lambda chat_id: _unreachable_notice(runtime, chat_id),
        on_refused=lambda session, row, error: handle_refusal(
            session, row=row, error=error, settings=settings, cards=runtime.card_renderer
        ),
        on_delivered=lambda session, row: handle_delivery(
            session, row=row, cards=runtime.card_renderer
        ),
        group_per_minute=GROUP_PER_MINUTE if settings.telegram.rate_limit else None,
        groups=runtime.groups,
        sends_at_once=outbox_sends_at_once(settings),
        mine=outbox.rows_of_bot(settings, bot_key),
        bot_key=bot_key if len(settings.bot_keys) > 1 else None,
    )
    if role != "web":  # a web process only receives: a campaign launched there is due at once,
        # and the leading worker's job (every 5 s) starts it; two runners would double the rate
        runtime.campaigns = CampaignSender(
            application.bot,
            session_factory,
            settings.broadcast,
            intro=translate("broadcast-intro", settings.bot.language),
            on_progress=progress_reporter(application.bot, runtime),
            sends_at_once=broadcast_sends_at_once(settings),
            bot_key=bot_key if len(settings.bot_keys) > 1 else None,
        )
    register_handlers(application, settings, translate)
    return application


def _one_on_sqlite(settings: Settings, configured: int) -> int:
    """SQLite takes one writer at a time and has no row locks: handlers' read-then-write steps
    rely on the one, and only row locks keep two sends off one broadcast recipient or outbox
    row."""
    return 1 if settings.database.url.startswith("sqlite") else configured


def concurrent_updates(settings: Settings) -> int:
    """How many updates of different chats a process handles at once."""
    return _one_on_sqlite(settings, settings.bot.concurrent_updates)


def broadcast_sends_at_once(settings: Settings) -> int:
    """How many broadcast recipients are sent to at once."""
    return _one_on_sqlite(settings, settings.broadcast.sends_at_once)


def outbox_sends_at_once(settings: Settings) -> int:
    """How many outbox messages are sent at once."""
    return _one_on_sqlite(settings, settings.outbox.sends_at_once)


def pooled_connections(settings: Settings, role: str) -> int:
    """Connections a process keeps open: one for each update handled at once (web) and each
    broadcast and outbox send in flight (worker), one for each bot's receiving lock it may hold,
    and four for the outbox's statistics, the jobs, the block list and the cases being placed."""
    updates = concurrent_updates(settings) if role != "worker" else 0
    sends = broadcast_sends_at_once(settings) + outbox_sends_at_once(settings)
    receivers = len(settings.bot_keys) if role != "worker" else 0
    return updates + (sends if role != "web" else 0) + receivers + 4


def _unreachable_notice(runtime: Runtime, chat_id: int) -> tuple[int, str] | None:
    """Who hears that a chat cannot be reached, and what they read."""
    settings = runtime.settings
    agency = next((a for a in settings.agencies if a.chat_id == chat_id), None)
    county = settings.county_of_agency(agency.key) if agency else None
    # Another chat (a resident's): the sending bot's first county, on the chat's messenger.
    served = runtime.served_counties
    chats = (county or settings.county_named(served[0] if served else None)).coordinator_chats()
    if not chats:
        return None
    shown = ltr(str(as_written(chat_id)))  # as the coordinators' messenger numbers it
    return chats[0], runtime.translate(
        "coordinator-unreachable", runtime.settings.bot.language, chat=shown
    )


async def _post_init_then_freeze(application: AnyApplication) -> None:
    """Start as `_post_init` does, then freeze what that loaded."""
    await _post_init(application)
    _freeze_what_was_loaded()


def _freeze_what_was_loaded() -> None:
    """Keep what start-up loaded (modules, the triage model, reference data) out of the garbage
    collector's full passes: each walked all of it, 150–180 ms in which every update in flight
    waited; with it frozen a pass takes 10–30 ms (bench/RESULTS.md, round 14). Frozen objects
    are still freed when nothing refers to them; only a cycle among them, once unused, stays
    (the start-up triage model's, say, after a retrained one replaces it: once a retraining)."""
    gc.collect()
    gc.freeze()


async def _post_init(application: AnyApplication) -> None:
    """Load reference data and the triage model, publish commands, start the worker and jobs."""
    runtime = runtime_of(application)
    if not runtime.leads:  # another bot of the deployment: the first one loads and leads
        await _publish_commands(application)
        _start_sending(runtime)
        return
    async with runtime.session_factory() as session:
        await sync_reference_data(session=session, settings=runtime.settings)
    if not await runtime.triage.reload_if_changed():
        await asyncio.to_thread(lambda: runtime.triage.model)  # train the shipped model off-loop
    await _publish_commands(application)
    if runtime.engine.dialect.name == "postgresql":
        runtime.listener = Listener(runtime, channels_for(runtime.role))
        await runtime.listener.listen()
    await reload_blocked(runtime)
    if application.job_queue is not None:
        application.job_queue.run_repeating(_refresh_banned, interval=60, first=60, name="banned")
    if runtime.role == "web":  # receiving only: sending and jobs belong to the worker processes
        return
    # Lead now if nobody does: a job with first=0 would fire only after its first interval,
    # because the scheduler starts after the jobs are added.
    await runtime.leadership.try_lead()
    schedule_jobs(application)
    _start_sending(runtime)


def _start_sending(runtime: Runtime) -> None:
    """Start the outbox worker of this process's bot, unless it only receives."""
    if runtime.role == "web":
        return
    if runtime.settings.outbox.worker and runtime.sender is not None:
        worker = runtime.sender.run_forever(runtime.settings.outbox.poll_seconds)
        runtime.tasks.append(asyncio.create_task(worker, name=f"outbox-{runtime.bot_key}"))


async def _publish_commands(application: AnyApplication) -> None:
    """Show the command menu in clients. Optional: a server without setMyCommands (Bale's, for
    one) or a passing failure leaves the menu as it was and the bot starts all the same; only
    getMe, at initialisation, decides whether the token works."""
    runtime = runtime_of(application)
    await publish(application.bot, runtime.settings, lambda key: runtime.translate(key))


async def _refresh_banned(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reload who is blocked, and listen again if the listening connection died."""
    runtime = runtime_of(context.application)
    if runtime.listener is not None:
        await runtime.listener.listen()
    await reload_blocked(runtime)


async def _post_shutdown(application: AnyApplication) -> None:
    """Stop the outbox worker and broadcasts (they resume at the next start), close the pool."""
    runtime = runtime_of(application)
    tasks = [*runtime.tasks, *runtime.campaign_tasks.values()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if not runtime.leads:  # the first bot's application closes what they share
        return
    await settle(runtime)  # cases being placed (the route-stranded job would, a minute later)
    await runtime.leadership.step_down()
    if runtime.listener is not None:
        await runtime.listener.close()
    await runtime.engine.dispose()
