"""The `mahalle` command.

Everything it writes (the SQLite database, exports, the triage model) holds residents' words or
numbers, so the process makes its files readable by its own user alone (umask 077), and each of
those files is also created 0600 where it is written."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, Settings, default_config_path, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("mahalle")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mahalle",
        description="Mahalle: a Persian-first neighbourhood reporting bot for Telegram and Bale.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            help="TOML config file (default: $MAHALLE_CONFIG, ./config.toml, else the example)",
        )
        return sub

    runner = with_config(
        commands.add_parser(
            "run",
            help="apply migrations, then run the bot",
            description="Apply pending database migrations, then run the bot: long polling by "
            "default, or a webhook server when [telegram] mode = 'webhook' (every call must carry "
            "the secret from MAHALLE_WEBHOOK_SECRET). The token comes from MAHALLE_BOT_TOKEN.",
        )
    )
    runner.add_argument(
        "--role",
        choices=("all", "web", "worker"),
        default="all",
        help="all: everything in one process (the only choice on SQLite); web: receive updates "
        "(webhook; run several behind a proxy); worker: deliver messages and broadcasts and run "
        "the scheduled jobs (one process at a time holds the jobs, the others stand by)",
    )
    runner.add_argument(
        "--port",
        type=int,
        help="webhook port for this process, instead of [telegram] webhook_port (several web "
        "processes on one machine each need their own)",
    )
    database = commands.add_parser(
        "db", help="database maintenance", description="Database maintenance."
    )
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    with_config(
        db_commands.add_parser(
            "upgrade",
            help="apply pending migrations; write the triage model file if missing",
            description="Apply every pending Alembic migration to the configured database, then "
            "train and write the triage model file ([triage] model_path) if there is none, so "
            "that starting never trains before answering.",
        )
    )
    triage = commands.add_parser(
        "triage", help="classify reports and measure the model", description="The triage model."
    )
    triage_commands = triage.add_subparsers(dest="triage_command", required=True, metavar="ACTION")
    classify = with_config(
        triage_commands.add_parser(
            "classify",
            help="print the domain of a text",
            description="Print the domain key, its title from the config and the confidence.",
        )
    )
    classify.add_argument("text", help="the report text, in quotes")
    evaluate = with_config(
        triage_commands.add_parser(
            "eval",
            help="score the model on a labelled JSON-lines file",
            description='Score the model on FILE (one {"text": …, "domain": …} per line, '
            'optionally "style" and "second"): a per-domain table, how often the truth is among '
            "the first two and three domains (top2=… top3=…), then "
            "'accuracy=… macro_f1=… n=… per_second=…' as the last line.",
        )
    )
    evaluate.add_argument("file", type=Path, help="labelled examples, JSON lines")
    evaluate.add_argument(
        "--thresholds",
        action="store_true",
        help="also print the share routed automatically and its precision per threshold (per "
        "style too when the file has a style field), and the second-domain rule's precision",
    )
    with_config(
        triage_commands.add_parser(
            "retrain",
            help="retrain from shipped examples plus corrections",
            description="Retrain from the shipped examples plus every coordinator pick and staff "
            "reroute in the database, and write the model file; running bots load it within a "
            "minute.",
        )
    )
    exporter = with_config(
        commands.add_parser(
            "export",
            help="write the cases of a period to CSV or XLSX",
            description="Write the cases filed between two Jalali dates (inclusive) to a file "
            "Excel "
            "opens: CSV with a BOM, or XLSX. Reporters' numbers appear only where they chose to "
            "share them.",
        )
    )
    exporter.add_argument("--from", dest="start", required=True, help="first day, e.g. 1405/09/01")
    exporter.add_argument("--to", dest="end", required=True, help="last day, e.g. 1405/09/30")
    exporter.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    exporter.add_argument(
        "--county", help="only this county's cases (its key in the config); all by default"
    )
    exporter.add_argument(
        "--output", type=Path, default=None, help="file to write (default: mahalle-FROM-TO.EXT)"
    )
    with_config(
        commands.add_parser(
            "status",
            help="what waits, and whether anything is stuck (exit 1 if so)",
            description="Print what waits (messages in the outbox, cases to place, broadcasts), "
            "whether a worker runs the scheduled jobs and a process receives each bot's updates. "
            "Exits 1 when "
            "something has waited far longer than a running deployment lets it, for a monitoring "
            "check.",
        )
    )
    figures = with_config(
        commands.add_parser(
            "stats",
            help="reports of the last days, in all, by bot and by county",
            description="Print how many reports were filed in the last days and where they "
            "stand: for the whole deployment, then for each bot ([[bots]]) and each county it "
            "serves. Coordinators see their county's figures with /stats in the bot.",
        )
    )
    figures.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    doctor = with_config(
        commands.add_parser(
            "doctor",
            help="check what the messenger's Bot API server supports (exit 1 if Mahalle cannot "
            "work there)",
            description="Call each Bot API method Mahalle uses on the configured server (Bale's "
            "differs from Telegram's in places), sending a few test messages to CHAT_ID and "
            "removing them after; print per method: works, differs (how) or missing, then what "
            "[telegram] should set. Exits 0 when everything Mahalle needs works, else 1. The "
            "token comes from MAHALLE_BOT_TOKEN.",
        )
    )
    doctor.add_argument(
        "--chat",
        type=int,
        required=True,
        metavar="CHAT_ID",
        help="where the test messages go: your private chat with the bot (press Start there "
        "first) or a group the bot is in; once the bot has run, /chatid there tells the number",
    )
    doctor.add_argument(
        "--bot",
        metavar="KEY",
        help="with several bots ([[bots]] in the config): the one to check, with its own token "
        "variable, messenger and server; run once for each bot",
    )
    book = commands.add_parser(
        "handbook",
        help="the network's handbook (duties and executive framework)",
        description="The network's handbook, kept as Markdown files in [handbook] path.",
    )
    book_commands = book.add_subparsers(dest="handbook_command", required=True, metavar="ACTION")
    publisher = with_config(
        book_commands.add_parser(
            "publish",
            help="store the handbook folder as a new version and ask everyone to confirm it",
            description="Store the files of [handbook] path (or --folder) as a new version when "
            "any of them changed, tell every agency's staff and council member what changed and "
            "ask them to confirm they have read it (a running bot sends the messages).",
        )
    )
    publisher.add_argument("--folder", type=Path, default=None, help="instead of [handbook] path")
    publisher.add_argument(
        "--by", type=int, default=None, help="the publishing coordinator's user id, for the record"
    )
    return parser


async def publish_handbook(
    settings: Settings, *, folder: Path | None = None, by: int | None = None
) -> str:
    """Publish the handbook folder; one line saying what happened."""
    from bot.cards import Cards
    from bot.i18n import Translator
    from bot.jalali import utcnow
    from bot.services import handbook
    from bot.signing import Signer
    from models.db import create_engine, create_session_factory

    try:
        files = handbook.read_folder(folder or settings.handbook.path)
    except handbook.FolderError as error:
        raise ConfigError(str(error)) from error
    language = settings.bot.language
    # The notices carry no signed buttons: a confirmation is checked against its presser.
    cards = Cards(Translator.load(language), Signer("handbook"), language)
    engine = create_engine(settings.database.url)
    try:
        async with create_session_factory(engine)() as session:
            published = await handbook.publish(
                session, files=files, by=by, settings=settings, cards=cards, now=utcnow()
            )
            await session.commit()
    finally:
        await engine.dispose()
    if published is None:
        return "handbook unchanged since the newest version: nothing published"
    return (
        f"handbook version {published.number} published: {len(published.changes)} files "
        f"changed, {published.asked} people asked to confirm"
    )


def _doctor(settings: Settings, chat_id: int, bot_key: str | None = None) -> int:
    """`mahalle doctor`: the table and advice on stdout; 0 when Mahalle can work there."""
    from bot.doctor import run_doctor

    if settings.bots and bot_key is None:
        raise ConfigError(
            f"the config has several bots ({', '.join(settings.bot_keys)}): name the one to "
            "check with --bot KEY, and run once for each"
        )
    if bot_key is not None:
        if not settings.bots and bot_key != settings.bot_keys[0]:
            raise ConfigError(f"the config has one bot, not {bot_key!r}: leave --bot out")
        settings = settings.for_bot(bot_key)
    token = settings.require_token()
    which = f"bot {bot_key}: " if settings.bots else ""
    print(f"checking {which}{settings.telegram.base_url} in chat {chat_id} …", flush=True)
    lines, status = asyncio.run(
        run_doctor(
            telegram=settings.telegram,
            token=token,
            chat_id=chat_id,
            language=settings.bot.language,
        )
    )
    print("\n".join(lines))
    return status


def _settings(path: Path | None) -> Settings:
    return load_settings(path or default_config_path())


async def _upgrade(settings: Settings) -> None:
    """Apply pending migrations, then write the triage model file if there is none: the model
    depends on the shipped examples and the corrections in this database, and every deployment
    runs this step before starting, so no start has to train before answering."""
    from bot.triage.service import Triage
    from models.db import create_engine, create_session_factory, upgrade_database

    engine = create_engine(settings.database.url)
    try:
        await upgrade_database(engine)
        await _refuse_unmoved_people(settings, create_session_factory(engine))
        triage = Triage(settings.triage.model_path)
        try:
            await triage.build_file_if_unusable(create_session_factory(engine))
        except OSError as error:
            raise ConfigError(
                f"triage.model_path: cannot write {settings.triage.model_path} "
                f"({error.strerror or error}); run as the user the bot runs as"
            ) from None
    finally:
        await engine.dispose()


async def _refuse_unmoved_people(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Refuse to start a deployment on both messengers whose other messenger's people were
    stored before the two were kept apart: they would be taken for their namesakes."""
    from bot.services import users

    apart = [key for key in settings.bot_keys if settings.ids_apart(key)]
    if not apart:
        return
    async with sessions() as session:
        count = await users.stored_unmoved(session=session, bot_keys=apart)
    if count:
        raise ConfigError(
            f"{count} people of bots {', '.join(apart)} were stored before this version kept "
            "Telegram's and Bale's people apart, and cannot be told from the other messenger's "
            "people of the same numbers: serve those bots from a deployment with a database of "
            "its own (README: Telegram and Bale in one deployment)"
        )


def _run(settings: Settings, role: str, port: int | None = None) -> None:
    from telegram.error import InvalidToken, NetworkError

    from bot.app import ALLOWED_UPDATES, build_applications, concurrent_updates
    from bot.serving import serve

    settings.require_token()
    if role != "all" and not settings.database.url.startswith("postgresql"):
        raise ConfigError(
            f"--role {role} needs PostgreSQL: on SQLite one process does everything (--role all)"
        )
    for gap in settings.setup_gaps():
        log.warning("not configured: %s", gap)
    asyncio.run(_upgrade(settings))
    modes = {settings.for_bot(key).telegram.mode for key in settings.bot_keys}
    if len(modes) > 1:
        raise ConfigError("[[bots]]: all bots poll, or all take webhooks; not some of each")
    applications = build_applications(settings, role=role, freeze_startup=True)
    for key in settings.bot_keys:
        telegram = settings.for_bot(key).telegram
        log.info("bot %s: %s on %s", key, telegram.mode, telegram.base_url)
    log.info("starting (%s)", role)
    if role != "worker":  # what an operator tuning [bot] concurrent_updates looks for
        log.info("updates of different chats handled at once: %d", concurrent_updates(settings))
    try:
        asyncio.run(
            serve(applications, settings, role=role, allowed_updates=ALLOWED_UPDATES, port=port)
        )
    except InvalidToken as error:
        raise ConfigError(_refused_token(settings, str(error))) from None
    except NetworkError as error:
        address = settings.for_bot(settings.bot_keys[0]).telegram.base_url
        raise ConfigError(
            f"cannot reach the Bot API at {address} ({error}); check the network, "
            "or [telegram] base_url for Bale"
        ) from None


def _refused_token(settings: Settings, bot_key: str) -> str:
    """What to tell an operator whose token the Bot API refused."""
    if settings.bots:
        entry = next((e for e in settings.bots if e.key == bot_key), settings.bots[0])
        return (
            f"the Bot API at {entry.telegram.base_url} refused the token of bot {entry.key!r} "
            f"in {entry.token_env}; copy it again from @BotFather (or Bale's @botfather)"
        )
    return (
        f"the Bot API at {settings.telegram.base_url} refused the token in MAHALLE_BOT_TOKEN; "
        "copy it again from @BotFather (or Bale's @botfather)"
    )


def _triage(arguments: argparse.Namespace, settings: Settings) -> None:
    from bot.triage.evaluate import evaluate, second_line, threshold_lines  # heavy imports
    from bot.triage.model import read_examples
    from bot.triage.service import Triage

    triage = Triage(settings.triage.model_path)
    asyncio.run(triage.reload_if_changed())
    if arguments.triage_command == "classify":
        result = triage.classify(arguments.text)
        titles = {d.key: d.title for d in settings.domains}
        urgent = " urgent=yes" if result.urgent else ""
        title = titles.get(result.domain, "?")
        print(f"domain={result.domain} title={title} confidence={result.confidence:.3f}{urgent}")
    elif arguments.triage_command == "eval":
        try:
            examples = read_examples(arguments.file)
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {arguments.file}: {error}") from None
        report = evaluate(triage.model, examples)
        if arguments.thresholds:
            results = triage.model.classify_many([e.text for e in examples])
            print("\n".join(threshold_lines(examples, results, settings.triage.threshold)))
            if (line := second_line(examples, results)) is not None:
                print(line)
        *table, top, summary = report.lines()
        print("\n".join([*table, _offer_line(triage, examples, settings), top, summary]))
    else:
        asyncio.run(_retrain(settings, triage))


def _offer_line(triage: Any, examples: list[Any], settings: Settings) -> str:
    """How often an unsure report's true domain is among the choices its reporter is offered."""
    from bot.triage.choices import offer_coverage

    results = triage.model.classify_many([e.text for e in examples])
    truth = [e.domain for e in examples]
    return offer_coverage(results, truth, settings.triage.threshold).line()


async def _retrain(settings: Settings, triage: object) -> None:
    from bot.triage.service import Triage
    from models.db import create_engine, create_session_factory

    assert isinstance(triage, Triage)
    engine = create_engine(settings.database.url)
    try:
        count = await triage.retrain(create_session_factory(engine))
    finally:
        await engine.dispose()
    print(f"trained on {count} examples; model written to {settings.triage.model_path}")


async def _export(arguments: argparse.Namespace, settings: Settings) -> None:
    from datetime import timedelta

    from bot.i18n import Translator
    from bot.jalali import parse_jalali_date
    from bot.reports import EXPORT_COLUMN_KEYS, export_rows, write_export
    from models.db import create_engine, create_session_factory

    start, last = parse_jalali_date(arguments.start), parse_jalali_date(arguments.end)
    if start is None or last is None or last < start:
        raise ConfigError("--from and --to must be Jalali dates like 1405/09/01, --from first")
    known = [county.key for county in settings.counties]
    if arguments.county is not None and arguments.county not in known:
        raise ConfigError(f"--county must be one of: {', '.join(known)}")
    translate = Translator.load(settings.bot.language)
    language = settings.bot.language

    def t(key: str, /, **values: object) -> str:
        return translate(key, language, **values)

    span = f"{arguments.start}-{arguments.end}".replace("/", "")
    output = arguments.output or Path(f"mahalle-{span}.{arguments.format}")
    _create_private(output)
    engine = create_engine(settings.database.url)
    try:
        async with create_session_factory(engine)() as session:
            rows = export_rows(
                session, start=start, end=last + timedelta(days=1), t=t, language=language,
                county_key=settings.case_filter_county(arguments.county),
            )  # fmt: skip
            count = await write_export(
                rows,
                [t(k) for k in EXPORT_COLUMN_KEYS],
                output,
                arguments.format,
                sheet_title=t("export-sheet"),
            )
    finally:
        await engine.dispose()
    output.chmod(0o600)  # in case the writer replaced the file rather than filling it
    print(f"{count} cases written to {output}")


def _create_private(path: Path) -> None:
    """Create the file readable and writable by this user alone (0600), before any data goes
    in; an existing file loses group and others' access too."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


async def _stats_lines(settings: Settings, *, days: int) -> list[str]:
    """`mahalle stats`: the deployment's reports of the last days, then each bot's counties'."""
    from datetime import timedelta

    from bot.jalali import utcnow
    from bot.services import stats
    from models.db import create_engine, create_session_factory

    if days < 1:
        raise ConfigError("--days must be 1 or more")
    now = utcnow()
    engine = create_engine(settings.database.url)

    def line(label: str, figures: stats.Stats) -> str:
        statuses = ", ".join(f"{status} {count}" for status, count in figures.by_status)
        return f"{label}: {figures.total} reports" + (f" ({statuses})" if statuses else "")

    try:
        async with create_session_factory(engine)() as session:

            async def of(county_key: str | None) -> stats.Stats:
                return await stats.collect(
                    session, settings=settings, start=now - timedelta(days=days), end=now,
                    now=now, county_key=county_key,
                )  # fmt: skip

            lines = [line(f"all, the last {days} days", await of(None))]
            if len(settings.counties) == 1 and not settings.bots:
                return lines
            for bot_key in settings.bot_keys:
                counties = settings.counties_of_bot(bot_key) or [c.key for c in settings.counties]
                per_county = [(key, await of(key)) for key in counties]
                total = sum(figures.total for _, figures in per_county)
                lines.append(f"bot {bot_key}: {total} reports")
                lines += [line(f"  county {key}", figures) for key, figures in per_county]
            return lines
    finally:
        await engine.dispose()


async def _status(settings: Settings) -> int:
    from sqlalchemy.exc import DBAPIError

    from bot.jalali import utcnow
    from bot.services.health import read_health
    from models.db import create_engine, create_session_factory

    engine = create_engine(settings.database.url)
    try:
        async with create_session_factory(engine)() as session:
            now = utcnow()
            health = await read_health(session=session, now=now, settings=settings)
    except (DBAPIError, OSError) as error:
        raise ConfigError(
            f"cannot read the database ({type(error).__name__}): is it running, and upgraded "
            "(mahalle db upgrade)?"
        ) from None
    finally:
        await engine.dispose()
    problems = health.problems(now)
    print("\n".join(health.lines(now)))
    print("\n".join(f"needs a look: {problem}" for problem in problems) or "all well")
    return 1 if problems else 0


class _AbortedRetryLoops(logging.Filter):
    """PTB logs the traceback of a network retry loop that gives up; the exception then reaches
    `_run`, which says in one line what is wrong. The traceback shows only at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        aborted = str(record.msg).endswith(("Aborting.", "Aborting retry loop."))
        return not aborted or logging.getLogger().isEnabledFor(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; files it creates are its user's alone (umask 077)."""
    arguments = _parser().parse_args(argv)
    previous_umask = os.umask(0o077)
    try:
        return _main(arguments)
    finally:
        os.umask(previous_umask)  # for callers in the same process (tests)


def _main(arguments: argparse.Namespace) -> int:
    """Run the parsed command; 2 with one line on stderr for a configuration error."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL, and URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO: noise that hides what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("telegram.ext").addFilter(_AbortedRetryLoops())
    try:
        settings = _settings(arguments.config)
        if arguments.command == "run":
            _run(settings, arguments.role, arguments.port)
        elif arguments.command == "triage":
            _triage(arguments, settings)
        elif arguments.command == "export":
            asyncio.run(_export(arguments, settings))
        elif arguments.command == "status":
            return asyncio.run(_status(settings))
        elif arguments.command == "stats":
            print("\n".join(asyncio.run(_stats_lines(settings, days=arguments.days))))
        elif arguments.command == "handbook":
            print(asyncio.run(publish_handbook(settings, folder=arguments.folder, by=arguments.by)))
        elif arguments.command == "doctor":
            return _doctor(settings, arguments.chat, arguments.bot)
        else:
            asyncio.run(_upgrade(settings))
            print(f"database is up to date: {settings.database.url.split('@')[-1]}")
    except ConfigError as error:
        print(f"mahalle: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
