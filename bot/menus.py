"""Each role's command menu: residents by default, each coordinator and council member in their
private chat, each agency's group for its staff (setMyCommands with a scope per chat).

Optional everywhere: a server without setMyCommands (Bale's, for one) or a chat the bot cannot
reach yet leaves that menu as it was, and the bot goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot.config import Settings

log = logging.getLogger(__name__)

# Bot commands and the locale key of each one's description, per role.
RESIDENT_COMMANDS = {
    "new": "command-new",
    "mine": "command-mine",
    "neighbourhood": "command-neighbourhood",
    "help": "command-help",
    "settings": "command-settings",
    "group": "command-group",
    "forget_me": "command-forget-me",
    "cancel": "command-cancel",
}
STAFF_COMMANDS = {
    "cases": "command-cases",
    "find": "command-find",
    "help": "command-help-desk",
    "chatid": "command-chatid",
    "handbook": "command-handbook",
}
COORDINATOR_COMMANDS = {
    "cases": "command-cases",
    "find": "command-find",
    "stats": "command-stats",
    "export": "command-export",
    "broadcast": "command-broadcast",
    "invite": "command-invite",
    "staff": "command-staff",
    "agencies": "command-agencies",
    "block": "command-block",
    "unblock": "command-unblock",
    "handbook": "command-handbook",
    "handbook_status": "command-handbook-status",
    "handbook_publish": "command-handbook-publish",
    "agenda_add": "command-agenda-add",
    "agenda": "command-agenda",
    "council_export": "command-council-export",
    "new": "command-new",
    "help": "command-help-desk",
    "cancel": "command-cancel",
}
# A council member's: the next meeting's agenda and the figures; a secretary also records the
# meeting's date and its decisions. Each is also a resident, and keeps the resident's commands.
COUNCIL_COMMANDS = {
    "agenda": "command-agenda",
    "stats": "command-stats",
    "council_export": "command-council-export",
    "help": "command-help-desk",
    "new": "command-new",
    "mine": "command-mine",
    "cancel": "command-cancel",
}
SECRETARY_COMMANDS = {
    "meeting": "command-meeting",
    "decision": "command-decision",
    **COUNCIL_COMMANDS,
}


def commands(keys: Mapping[str, str], translate: Callable[[str], str]) -> list[BotCommand]:
    """A menu in the deployment's language."""
    return [BotCommand(name, translate(key)) for name, key in keys.items()]


def menus(settings: Settings) -> list[tuple[int | None, Mapping[str, str]]]:
    """(chat, commands) of every menu: None is everyone's default (residents). With several
    bots, a bot's own counties' chats only: another bot's groups are not the bot's to reach."""
    found: list[tuple[int | None, Mapping[str, str]]] = [(None, RESIDENT_COMMANDS)]
    served = settings.counties_of_bot(settings.serving)
    for county in settings.counties:
        if served is not None and county.key not in served:
            continue
        found += [(user_id, COORDINATOR_COMMANDS) for user_id in county.coordinators]
        found += [
            (member.id, SECRETARY_COMMANDS if member.role == "secretary" else COUNCIL_COMMANDS)
            for member in county.council_members
            if member.id not in county.coordinators  # a coordinator's menu has the council's
        ]
        found += [(a.chat_id, STAFF_COMMANDS) for a in county.agencies if a.chat_id is not None]
    return found


async def publish(bot: Bot, settings: Settings, translate: Callable[[str], str]) -> int:
    """Publish every role's menu; how many were published. Stops at a server that has no
    setMyCommands; a chat that refuses its menu is passed over."""
    published = 0
    for chat_id, keys in menus(settings):
        scope = BotCommandScopeDefault() if chat_id is None else BotCommandScopeChat(chat_id)
        try:
            await bot.set_my_commands(commands(keys, translate), scope=scope)
        except TelegramError as error:
            if chat_id is None:
                log.warning(
                    "the command menu was not published (setMyCommands: %s); going on", error
                )
                return 0
            log.warning("a chat's command menu was not published (setMyCommands: %s)", error)
            continue
        published += 1
    return published
