"""`mahalle doctor`: call each Bot API method Mahalle uses on the configured server, in one chat,
and say which work as Telegram's do, which answer differently (and whether Mahalle copes), and
which are missing; then what the deployment should set.

Bale's Bot API follows Telegram's but not everywhere (setMyCommands may be missing, an edit may
answer a stub, getChatMember may want admin rights), and residents should not be the ones to
find out. Every call goes through python-telegram-bot's own `Bot`, as the running bot's do, on a
request object that keeps the server's raw answer: an answer PTB cannot read, the running bot
could not read either. Request URLs carry the token; nothing here prints one.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.error import TelegramError
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.config import PLATFORM_DEFAULTS, TelegramSettings
from bot.i18n import Translator
from bot.namespaced import HandingOn, Onward

Verdict = Literal["works", "differs", "missing", "fails"]
T = TypeVar("T")

# A coordinate in Tehran for sendLocation.
_LOCATION = (35.6997, 51.3380)
# A chat no bot is in: group ids are -100 followed by ten or more digits.
_NO_SUCH_CHAT = -1
# A made-up callback query id: a server that has the method refuses it as invalid.
_MADE_UP_QUERY = "mahalle-doctor-0"


@dataclass(frozen=True)
class Row:
    """One line of the table: a method, how it answered, and what follows for Mahalle."""

    method: str
    verdict: Verdict
    detail: str
    # This outcome keeps Mahalle from working as it should: the doctor exits 1.
    blocking: bool = False
    # What the operator should know or do about it, if anything.
    advice: str = ""
    # Answered as Bale's server does where it differs from Telegram's.
    like_bale: bool = False


@dataclass(frozen=True)
class Raw:
    """The server's answer to the latest call, as sent: HTTP status and JSON body."""

    status: int
    body: dict[str, Any]

    @property
    def description(self) -> str:
        """The error's description, or the status alone."""
        return str(self.body.get("description") or f"HTTP {self.status}")

    @property
    def result(self) -> Any:
        """The `result` of a successful answer."""
        return self.body.get("result")


class KeepingRequest(HandingOn):
    """Hands each call to `inner` and keeps the raw answer of the latest one."""

    def __init__(self, inner: BaseRequest) -> None:
        super().__init__(inner)
        self.last: Raw | None = None

    async def hand_on(
        self, url: str, method: str, request_data: RequestData | None, onward: Onward
    ) -> tuple[int, bytes]:
        """Make the call and keep its answer."""
        self.last = None
        status, payload = await onward(request_data)
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        self.last = Raw(status, body if isinstance(body, dict) else {})
        return status, payload


@dataclass(frozen=True)
class Failure:
    """A call that raised: the server's answer (None: no answer) and the error."""

    raw: Raw | None
    error: Exception

    @property
    def unreadable(self) -> bool:
        """The server answered success, and PTB could not read what it answered."""
        return not isinstance(self.error, TelegramError)


def tiny_png(size: int = 32) -> bytes:
    """A one-colour square PNG, made here: nothing to ship, nothing to download."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = b"".join(b"\x00" + b"\x1f\x8a\x70" * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def _method_missing(raw: Raw) -> bool:
    """A 404 about the method itself, not about a chat, user or message it named."""
    return raw.status == 404 and not re.search(
        r"chat|user|group|message", raw.description, re.IGNORECASE
    )


def failed_row(method: str, failure: Failure, *, needed: bool, consequence: str = "") -> Row:
    """The row of a call that raised."""
    raw = failure.raw
    if raw is None:
        detail = f"no answer ({type(failure.error).__name__}: {failure.error})"
        return Row(method, "fails", detail, blocking=needed)
    if failure.unreadable:
        detail = (
            f"answered {_shape(raw.result)}; python-telegram-bot cannot read it "
            f"({type(failure.error).__name__}: {failure.error})"
        )
        return Row(method, "differs", detail, blocking=needed, advice=consequence)
    if _method_missing(raw):
        return Row(
            method, "missing", f"HTTP 404 {raw.description!r}", blocking=needed, advice=consequence
        )
    if raw.status in (420, 429):
        after = (raw.body.get("parameters") or {}).get("retry_after")
        wait = f"retry_after {after}" if after else "no retry_after"
        detail = f"flood limit (HTTP {raw.status}, {wait}); run the doctor again in a minute"
        return Row(method, "fails", detail, blocking=needed)
    return Row(method, "fails", f"HTTP {raw.status} {raw.description!r}", blocking=needed)


def _shape(result: Any) -> str:
    """A short description of an answer's result, for the table."""
    if isinstance(result, dict):
        missing = [key for key in ("date", "chat") if key not in result]
        return f"a stub without {' and '.join(missing)}" if missing else "a message"
    return json.dumps(result)[:40]


EDIT_CONSEQUENCE = (
    "edits answer a stub PTB cannot read: Mahalle's button presses and outbox edits would end "
    "in an error after the message has changed"
)


GONE_CHAT_CONSEQUENCE = (
    "this server tells a chat is gone with HTTP 404, which python-telegram-bot reports as a "
    "wrong token: Mahalle's outbox retries messages to a group the bot was removed from, with "
    "back-off, instead of telling the coordinators at once"
)


@dataclass
class Doctor:
    """Runs the checks in one chat and collects the table."""

    bot: Bot
    request: KeepingRequest
    chat_id: int
    telegram: TelegramSettings
    translate: Callable[[str], str]
    rows: list[Row] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)

    async def attempt(self, call: Awaitable[T]) -> T | Failure:
        """The call's result, or what went wrong."""
        try:
            return await call
        except Exception as error:  # PTB failing to read an answer is a finding too
            return Failure(self.request.last, error)

    def add(self, row: Row) -> Row:
        """Add a row to the table."""
        self.rows.append(row)
        return row

    def message_row(self, method: str, result: Message | Failure, detail: str) -> Row:
        """The row of a call answered with a message, which is kept for the clean-up."""
        if isinstance(result, Failure):
            return self.add(failed_row(method, result, needed=True))
        self.sent.append(result.message_id)
        return self.add(Row(method, "works", detail))

    async def run(self) -> list[Row]:
        """Every check, in the order Mahalle's features need them; stops where later checks
        would only repeat the same failure."""
        if not await self.check_identity() or not await self.check_sending():
            return self.rows
        await self.check_edits()
        await self.check_callback_answer()
        await self.check_media()
        await self.check_optional()
        await self.check_unknown_chat()
        await self.check_receiving()
        await self.clean_up()
        return self.rows

    async def check_identity(self) -> bool:
        """getMe: the token is right and the server answers."""
        me = await self.attempt(self.bot.get_me())
        if isinstance(me, Failure):
            row = failed_row("getMe", me, needed=True)
            if me.raw is not None and me.raw.status in (401, 404):
                detail = (
                    f"HTTP {me.raw.status} {me.raw.description!r}: the server refused the token, "
                    "or base_url is not a Bot API address"
                )
                row = Row("getMe", "fails", detail, blocking=True)
            self.add(row)
            return False
        self.add(Row("getMe", "works", f"@{me.username} ({me.id})"))
        return True

    async def check_sending(self) -> bool:
        """sendMessage with an inline keyboard, and both ways of sending a reply."""
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton(self.translate("doctor-button"), callback_data="doctor")]]
        )
        text = self.translate("doctor-message")
        first = await self.attempt(self.bot.send_message(self.chat_id, text, reply_markup=keyboard))
        if self.message_row("sendMessage", first, "with an inline keyboard").blocking:
            return False
        assert isinstance(first, Message)
        reply = await self.attempt(
            self.bot.send_message(
                self.chat_id, text, reply_parameters=ReplyParameters(first.message_id)
            )
        )
        self.reply_row("sendMessage reply", reply, first.message_id, "reply_parameters")
        legacy = await self.attempt(
            self.bot.send_message(
                self.chat_id, text, api_kwargs={"reply_to_message_id": first.message_id}
            )
        )
        self.reply_row("sendMessage reply (old)", legacy, first.message_id, "reply_to_message_id")
        if isinstance(reply, Failure) and isinstance(legacy, Message):
            index = next(i for i, row in enumerate(self.rows) if row.method == "sendMessage reply")
            self.rows[index] = replace(
                self.rows[index],
                advice="this server takes the older reply_to_message_id but not reply_parameters, "
                "which python-telegram-bot sends: staff prompts and notes on agency cards fail",
            )
        return True

    def reply_row(self, method: str, result: Message | Failure, to: int, how: str) -> None:
        """A reply works when it is sent, and is not shown as a reply to another message."""
        row = self.message_row(method, result, how)
        replied = result.reply_to_message if isinstance(result, Message) else None
        if replied is not None and replied.message_id != to:
            self.rows[-1] = Row(method, "differs", f"{how}: shown replying to another message")
        elif how == "reply_to_message_id" and row.verdict != "works":
            # PTB sends reply_parameters: the old form is only a hint for the operator.
            self.rows[-1] = replace(row, blocking=False)

    async def check_edits(self) -> None:
        """editMessageText and editMessageReplyMarkup on the first message: an edit must
        answer the edited message (or true), which PTB reads."""
        message_id = self.sent[0]
        # The buttons first: an edit of the text without buttons removes them too, and an edit
        # that changes nothing is refused.
        markup = await self.attempt(
            self.bot.edit_message_reply_markup(
                chat_id=self.chat_id, message_id=message_id, reply_markup=None
            )
        )
        text = await self.attempt(
            self.bot.edit_message_text(
                self.translate("doctor-edited"), chat_id=self.chat_id, message_id=message_id
            )
        )
        self.add(self.edit_row("editMessageText", text))
        self.add(self.edit_row("editMessageReplyMarkup", markup))

    def edit_row(self, method: str, result: Message | bool | Failure) -> Row:
        """How an edit answered: the full message, true, a stub, or an error."""
        if isinstance(result, Failure):
            row = failed_row(method, result, needed=True, consequence=EDIT_CONSEQUENCE)
            return replace(row, like_bale=row.verdict == "differs")
        raw = self.request.last
        answered = raw.result if raw is not None else None
        if result is True:
            detail = "answers true, not the edited message (PTB takes it)"
            return Row(method, "differs", detail, like_bale=True)
        if isinstance(answered, dict) and not {"date", "chat"} <= answered.keys():
            return Row(
                method, "differs", f"answers {_shape(answered)} (PTB takes it)", like_bale=True
            )
        return Row(method, "works", "answers the edited message")

    async def check_callback_answer(self) -> None:
        """answerCallbackQuery with a made-up id: refusing the id shows the method exists."""
        method = "answerCallbackQuery"
        result = await self.attempt(self.bot.answer_callback_query(_MADE_UP_QUERY))
        if not isinstance(result, Failure):
            self.add(Row(method, "works", "took a made-up query id"))
        elif result.raw is not None and result.raw.status == 400:
            detail = f"exists (refused the made-up query id: {result.raw.description!r})"
            self.add(Row(method, "works", detail))
        else:
            consequence = "buttons would keep spinning after every press"
            self.add(failed_row(method, result, needed=True, consequence=consequence))

    async def check_media(self) -> None:
        """sendPhoto, sendMediaGroup (two photos), sendLocation and sendDocument (exports)."""
        png = tiny_png()
        photo = await self.attempt(self.bot.send_photo(self.chat_id, png, filename="doctor.png"))
        self.message_row("sendPhoto", photo, "a photo uploaded")
        album = await self.attempt(
            self.bot.send_media_group(
                self.chat_id,
                # Bytes, not InputFile: PTB attaches each under its own name only then.
                [InputMediaPhoto(png, filename=f"doctor{i}.png") for i in (1, 2)],
            )
        )
        if isinstance(album, Failure):
            self.add(failed_row("sendMediaGroup", album, needed=True))
        else:
            self.sent.extend(message.message_id for message in album)
            verdict: Verdict = "works" if len(album) == 2 else "differs"
            self.add(Row("sendMediaGroup", verdict, f"{len(album)} messages for two photos"))
        location = await self.attempt(self.bot.send_location(self.chat_id, *_LOCATION))
        self.message_row("sendLocation", location, "a point in Tehran")
        document = await self.attempt(
            self.bot.send_document(
                self.chat_id, b"\xef\xbb\xbfcode\r\n1\r\n", filename="doctor.csv"
            )
        )
        self.message_row("sendDocument", document, "a CSV file (exports)")

    async def check_optional(self) -> None:
        """setMyCommands (the command menu) and getChatMember (the /agencies check): Mahalle
        goes on without them."""
        from bot.app import COMMAND_KEYS  # the same menu start-up publishes

        commands = [BotCommand(name, self.translate(key)) for name, key in COMMAND_KEYS.items()]
        published = await self.attempt(self.bot.set_my_commands(commands))
        if isinstance(published, Failure):
            row = failed_row("setMyCommands", published, needed=False)
            row = replace(row, like_bale=row.verdict == "missing")
            self.add(self.optional(row, "no command menu in clients; the bot starts all the same"))
        else:
            self.add(Row("setMyCommands", "works", "the command menu is published"))
        member = await self.attempt(self.bot.get_chat_member(self.chat_id, self.bot.id))
        if isinstance(member, Failure):
            row = failed_row("getChatMember", member, needed=False)
            if (
                row.verdict == "fails"
                and member.raw is not None
                and member.raw.status in (400, 403)
            ):
                row = Row("getChatMember", "differs", f"refused: {member.raw.description!r}")
            advice = (
                "/agencies shows a group as unreachable unless the bot is an admin there: make it "
                "an admin of each agency group"
            )
            self.add(self.optional(row, advice))
        else:
            self.add(Row("getChatMember", "works", f"the bot is {member.status} here"))

    async def check_receiving(self) -> None:
        """How updates arrive. Polling: deleteWebhook (PTB calls it when polling starts) and
        getUpdates without an offset (nothing is marked as read). Webhook: getWebhookInfo
        alone, since setWebhook would change what a running bot receives."""
        if self.telegram.mode == "polling":
            dropped = await self.attempt(self.bot.delete_webhook())
            if isinstance(dropped, Failure):
                self.add(failed_row("deleteWebhook", dropped, needed=True))
            else:
                self.add(Row("deleteWebhook", "works", "polling can start"))
            updates = await self.attempt(self.bot.get_updates(limit=1, timeout=0))
            if isinstance(updates, Failure):
                self.add(failed_row("getUpdates", updates, needed=True))
            else:
                self.add(Row("getUpdates", "works", "polling receives updates"))
            return
        info = await self.attempt(self.bot.get_webhook_info())
        if isinstance(info, Failure):
            row = failed_row("getWebhookInfo", info, needed=False)
            self.add(self.optional(row, "`mahalle run` registers the webhook all the same"))
            return
        expected = self.telegram.webhook_route().webhook_url
        where = (
            "the configured address"
            if info.url == expected
            else "another address (`mahalle run` sets the configured one)"
            if info.url
            else "nowhere yet (`mahalle run` registers it)"
        )
        self.add(Row("getWebhookInfo", "works", f"updates are posted to {where}"))

    async def check_unknown_chat(self) -> None:
        """sendMessage to a chat that does not exist: how the server says a chat is gone decides
        whether Mahalle's outbox recognises a group the bot was removed from."""
        method = "sendMessage (no such chat)"
        sent = await self.attempt(
            self.bot.send_message(_NO_SUCH_CHAT, self.translate("doctor-message"))
        )
        if not isinstance(sent, Failure):
            self.add(Row(method, "works", "accepted"))
        elif sent.raw is not None and sent.raw.status in (400, 403):
            self.add(Row(method, "works", f"refused: {sent.raw.description!r}"))
        elif sent.raw is not None and sent.raw.status == 404:
            detail = f"HTTP 404 {sent.raw.description!r} (python-telegram-bot: InvalidToken)"
            self.add(Row(method, "differs", detail, advice=GONE_CHAT_CONSEQUENCE, like_bale=True))
        else:
            self.add(failed_row(method, sent, needed=False))

    @staticmethod
    def optional(row: Row, advice: str) -> Row:
        """A failed optional method: never blocking, with what it means."""
        return replace(row, blocking=False, advice=advice)

    async def clean_up(self) -> None:
        """deleteMessage for every test message sent."""
        left = []
        for message_id in self.sent:
            deleted = await self.attempt(self.bot.delete_message(self.chat_id, message_id))
            if isinstance(deleted, Failure):
                left.append(deleted)
        if not left:
            self.add(Row("deleteMessage", "works", f"removed the {len(self.sent)} test messages"))
            return
        row = failed_row("deleteMessage", left[0], needed=False)
        detail = f"{len(left)} of {len(self.sent)} test messages left: {row.detail}"
        self.add(Row("deleteMessage", row.verdict, detail, advice="delete them by hand"))


def recommended(rows: list[Row], telegram: TelegramSettings) -> list[tuple[str, str, str]]:
    """(key, value, why) for the settings this server wants, [telegram] section."""
    differences = [row.method for row in rows if row.like_bale]
    bale = telegram.platform == "bale" or bool(differences)
    platform = "bale" if bale else "telegram"
    why = "as configured"
    if platform != telegram.platform:
        why = f"now {telegram.platform!r}; this server answers as Bale's in " + ", ".join(
            differences
        )
    settings = [("platform", platform, why)]
    if bale and telegram.mode == "webhook":
        settings.append(
            ("mode", "webhook", "served at webhook_url/<MAHALLE_WEBHOOK_SECRET>, no header")
        )
    else:
        mode_why = "Bale's webhooks carry no secret header" if bale else "or webhook, as you like"
        settings.append(("mode", "polling" if bale else telegram.mode, mode_why))
    link = telegram.deep_link_base
    defaults = {values["deep_link_base"] for values in PLATFORM_DEFAULTS.values()}
    wanted = PLATFORM_DEFAULTS[platform]["deep_link_base"] if link in defaults else link
    link_why = "as configured" if wanted == link else f"invite links now open {link}"
    settings.append(("deep_link_base", wanted, link_why))
    return settings


def report(rows: list[Row], telegram: TelegramSettings, chat_id: int) -> tuple[list[str], int]:
    """The lines to print and the exit status: 0 when everything Mahalle needs works."""
    width = max(len(row.method) for row in rows)
    lines = [f"{'method'.ljust(width)}  {'result':8} detail"]
    lines += [f"{row.method.ljust(width)}  {row.verdict:8} {row.detail}" for row in rows]
    blocking = [row.method for row in rows if row.blocking]
    if rows[-1].method in ("getMe", "sendMessage") and blocking:
        where = "the server" if rows[-1].method == "getMe" else f"chat {chat_id}"
        lines.append("")
        lines.append(
            f"stopped: nothing more can be checked until {where} answers (is the token right, "
            "and has the bot been started in that chat or added to that group?)"
        )
        return lines, 1
    lines.append("")
    lines.append("the deployment should set, in [telegram]:")
    for key, value, why in recommended(rows, telegram):
        lines.append(f'  {key} = "{value}"  ({why})')
    notes = [f"  {row.method}: {row.advice}" for row in rows if row.advice]
    if notes:
        lines += ["notes:", *notes]
    if blocking:
        lines.append(f"Mahalle cannot work fully here: {', '.join(dict.fromkeys(blocking))}")
        return lines, 1
    lines.append("everything Mahalle needs works here")
    return lines, 0


def default_request() -> BaseRequest:
    """PTB's own HTTP client, as `mahalle run` uses it."""
    return HTTPXRequest()


async def run_doctor(
    *,
    telegram: TelegramSettings,
    token: str,
    chat_id: int,
    language: str,
    request: BaseRequest | None = None,
) -> tuple[list[str], int]:
    """Check the configured server in `chat_id`; the lines to print and the exit status."""
    keeping = KeepingRequest(request or default_request())
    bot = Bot(
        token,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        request=keeping,
        get_updates_request=keeping,
    )
    translator = Translator.load(language)
    doctor = Doctor(bot, keeping, chat_id, telegram, lambda key: translator(key, language))
    await keeping.initialize()
    try:
        rows = await doctor.run()
    finally:
        await keeping.shutdown()
    lines, status = report(rows, telegram, chat_id)
    return [line.replace(token, "<token>") for line in lines], status
