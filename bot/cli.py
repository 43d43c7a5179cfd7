"""The `mahalle` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, default_config_path, load_settings

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

    with_config(
        commands.add_parser(
            "run",
            help="apply migrations, then run the bot",
            description="Apply pending database migrations, then run the bot: long polling by "
            "default, or a webhook server when [telegram] mode = 'webhook' (every call must carry "
            "the secret from MAHALLE_WEBHOOK_SECRET). The token comes from MAHALLE_BOT_TOKEN.",
        )
    )
    database = commands.add_parser(
        "db", help="database maintenance", description="Database maintenance."
    )
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    with_config(
        db_commands.add_parser(
            "upgrade",
            help="apply pending migrations",
            description="Apply every pending Alembic migration to the configured database.",
        )
    )
    return parser


def _settings(path: Path | None) -> Settings:
    return load_settings(path or default_config_path())


async def _upgrade(settings: Settings) -> None:
    from models.db import create_engine, upgrade_database

    engine = create_engine(settings.database.url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


def _run(settings: Settings) -> None:
    from bot.app import build_application

    settings.require_token()
    asyncio.run(_upgrade(settings))
    application = build_application(settings)
    telegram = settings.telegram
    log.info("starting in %s mode on %s", telegram.mode, telegram.base_url)
    if telegram.mode == "webhook":
        assert telegram.webhook_secret is not None  # enforced by the settings
        application.run_webhook(
            listen=telegram.webhook_listen,
            port=telegram.webhook_port,
            url_path="telegram",
            webhook_url=telegram.webhook_url,
            secret_token=telegram.webhook_secret.get_secret_value(),
        )
    else:
        application.run_polling()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL, and URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = _settings(arguments.config)
        if arguments.command == "run":
            _run(settings)
        else:
            asyncio.run(_upgrade(settings))
            print(f"database is up to date: {settings.database.url.split('@')[-1]}")
    except ConfigError as error:
        print(f"mahalle: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
