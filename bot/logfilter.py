"""Logs that keep no one: records that would carry an update, a message's text, a statement's
values or an exception quoting them are rewritten before any handler formats them.

The messenger's library logs a whole update it cannot parse (CRITICAL), each update it handles
and each Bot API call with its parameters and answer (DEBUG); the SQLite driver logs each call
with its statement's values (DEBUG); an exception's message may quote what a person typed. A
standard `logging.Filter` on each of those loggers keeps what an operator needs, the kind and
id of an update, the name of a call, the type of an exception and where it was raised, and
drops the rest. Failed SQL statements are handled at their source (`models.db.create_engine`
hides their parameters), so a database error's own message is kept."""

from __future__ import annotations

import functools
import json
import logging
import re
import traceback
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import TelegramObject, Update
from telegram.error import TelegramError

# The libraries' loggers whose records may carry what people wrote, and what each would log.
LIBRARY_LOGGERS = (
    "telegram.Bot",  # an unparsable getUpdates answer (CRITICAL); calls and answers (DEBUG)
    "telegram.ext.ExtBot",  # the same, for the bot the application uses
    "telegram.ext.Updater",  # an unparsable update at the webhook or polling (CRITICAL)
    "telegram.ext.Application",  # "Processing update …" (DEBUG), a failed context (CRITICAL)
    "telegram.ext.ConversationHandler",  # conversation keys: chat and user ids (DEBUG)
    "telegram.request.BaseRequest",  # an unparsable Bot API answer, quoted whole (ERROR)
    "telegram.ext",  # the polling loop's failures
    "aiosqlite",  # each call with its statement and values (DEBUG)
)
# Ours that log whatever an exception says; their own arguments are ids, codes and counts.
EXCEPTION_LOGGERS = (
    "handlers.common",  # the error handler: whatever a handler raised
    "bot.pipeline",  # placing a case failed
    "bot.delivery",  # the outbox worker failed
)
# Exceptions whose message is kept: the Bot API's and the network's say what went wrong without
# quoting anyone, and a database error's is built without the statement's values.
TELLING = (TelegramError, OSError, SQLAlchemyError)
# An argument kept as it is: a word, a name, a method (no digits: they could be an id).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z_ .:-]{0,63}")


class PrivateRecords(logging.Filter):
    """Rewrites a record's arguments to what they are, not what they hold (unless told the
    arguments are safe), and its exception to its types and frames; never drops a record."""

    def __init__(self, *, arguments: bool = True) -> None:
        super().__init__()
        self.arguments = arguments

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; always let it through."""
        if self.arguments and isinstance(record.args, Mapping) and "update_id" in record.args:
            record.args = (summary(record.args),)  # `log("… %r", update_dict)`: one argument
        elif self.arguments and isinstance(record.args, Mapping):
            record.args = {key: summary(value) for key, value in record.args.items()}
        elif self.arguments and record.args:
            record.args = tuple(summary(value) for value in record.args)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = quiet_traceback(record.exc_info[1])
        return True


def install() -> None:
    """Put the filter on each of LIBRARY_LOGGERS and EXCEPTION_LOGGERS, once."""
    for names, arguments in ((LIBRARY_LOGGERS, True), (EXCEPTION_LOGGERS, False)):
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, PrivateRecords) for f in logger.filters):
                logger.addFilter(PrivateRecords(arguments=arguments))


def summary(value: object) -> object:
    """What a log argument is, without what a person put in it."""
    if value is None or isinstance(value, (bool, int, float)):
        return value  # update ids, counts, states, seconds
    if isinstance(value, Update):
        return _update(value.update_id, _kind(value.to_dict()))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return _mapping(value)
    if isinstance(value, (list, tuple)):
        return _sequence(value)
    if isinstance(value, functools.partial):  # aiosqlite: a call and its statement's values
        return f"{getattr(value.func, '__qualname__', type(value.func).__name__)}(…)"
    if isinstance(value, TelegramObject):
        return f"<{type(value).__name__}>"
    if isinstance(value, BaseException):
        return _headline(value)
    return f"<{type(value).__name__}>"


def _update(update_id: object, kind: str) -> str:
    return f"update {update_id} ({kind})"


def _kind(data: Mapping[Any, Any]) -> str:
    """An update's type: the name of its one field besides the id."""
    return next((str(key) for key in data if key != "update_id"), "empty")


def _text(value: str) -> str:
    """A plain word stays; JSON (an update the webhook received) becomes its kind and id."""
    if _PLAIN.fullmatch(value):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return f"<{len(value)} characters>"
    return str(summary(parsed))


def _mapping(value: Mapping[Any, Any]) -> str:
    """An update as its kind and id; call parameters and answers as their keys."""
    if "update_id" in value:
        return _update(value["update_id"], _kind(value))
    return "{" + ", ".join(str(key) for key in value) + "}"


def _sequence(values: list[Any] | tuple[Any, ...]) -> str:
    """Update ids stay; updates become their kinds and ids; anything else its length."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return str(list(values))
    if values and all(isinstance(v, Mapping) and "update_id" in v for v in values):
        return "[" + ", ".join(_mapping(v) for v in values) + "]"
    return f"<{len(values)} items>"


def quiet_traceback(error: BaseException) -> str:
    """The traceback as Python prints it, each exception's message kept only when it is
    TELLING: the others show their type, and where they were raised."""
    return "".join(_lines(error, set())).rstrip("\n")


def _lines(error: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(error))
    lines: list[str] = []
    cause, context = error.__cause__, error.__context__
    if cause is not None and id(cause) not in seen:
        lines += _lines(cause, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not error.__suppress_context__ and id(context) not in seen:
        lines += _lines(context, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if error.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.format_tb(error.__traceback__)
    lines.append(_headline(error) + "\n")
    return lines


def _headline(error: BaseException) -> str:
    """An exception's type, with its message when that is TELLING."""
    name = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
    if not isinstance(error, TELLING):
        return name
    try:
        return f"{name}: {error}"
    except Exception:  # a message that cannot be printed: the type says enough
        return name
