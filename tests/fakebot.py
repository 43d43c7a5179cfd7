"""An offline Bot API at PTB's HTTP layer, and a chat-like driver for tests and benchmarks."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot.bale import BaleCalls
from bot.namespaced import HandingOn

FAKE_TOKEN = "123456789:AAFakeTokenForOfflineTestsOnly_0123"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Mahalle", "username": "mahalle_bot"}

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


@dataclass(frozen=True)
class Dialect:
    """How the fake Bot API and its chats behave: Telegram's way, or Bale's. Each of Bale's
    differences is a switch of its own, so a test can turn on one alone."""

    name: str = "telegram"
    # Groups have positive ids, like people (Telegram's are negative).
    positive_groups: bool = False
    # An edit is answered with a stub of the message (no date, no chat).
    edit_stubs: bool = False
    # Every text is shown with Markdown read: *bold*, _italic_, `code`, ~struck~, [a](link).
    markdown: bool = False
    # The field that threads a reply: Bale documents reply_to_message_id only.
    reply_field: str = "reply_parameters"
    # Methods the server does not have (answered 404 Not Found).
    missing: frozenset[str] = frozenset()
    # Commands arrive without their bot_command entity (older Bale servers).
    command_entities: bool = True
    # Clients answer a ForceReply prompt with a reply to it (no Bale client library has it).
    force_reply: bool = True
    # Buttons are pressed from old clients, whose query ids start with "1" and which show no
    # callback answer (Bale since June 2025).
    old_clients: bool = False
    # getChatMember answers only a bot that is an admin of the chat.
    member_needs_admin: bool = False


TELEGRAM = Dialect()
BALE = Dialect(
    name="bale",
    positive_groups=True,
    edit_stubs=True,
    markdown=True,
    reply_field="reply_to_message_id",
    missing=frozenset({"setMyCommands"}),
    command_entities=False,
    force_reply=False,
    member_needs_admin=True,
)
# The dialect of the test being run (tests/conftest.py sets it); fakes and chats made during
# the test speak it.
_current = [TELEGRAM]


def dialect() -> Dialect:
    """The dialect the running test's fakes speak."""
    return _current[0]


def speak(new: Dialect) -> None:
    """Make fakes and chats made from now on speak `new`."""
    _current[0] = new


# Tests name group chats by Telegram's negative ids. Where groups have positive ids, the bot
# sees each as this offset plus its magnitude; calls it makes are recorded back in the tests'
# ids, so one test reads the same in either dialect.
POSITIVE_GROUP_OFFSET = 5_000_000_000_000


def bot_side(chat_id: int) -> int:
    """The id the bot knows a test's chat by."""
    if chat_id < 0 and dialect().positive_groups:
        return POSITIVE_GROUP_OFFSET - chat_id
    return chat_id


def as_tests_know(chat_id: int) -> int:
    """The test's id of a chat the bot named."""
    if chat_id > POSITIVE_GROUP_OFFSET and dialect().positive_groups:
        return POSITIVE_GROUP_OFFSET - chat_id
    return chat_id


@dataclass
class ApiCall:
    """One request the bot made."""

    method: str
    params: dict[str, Any]
    # Uploaded files by field: (file name, content, MIME type).
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_id(self) -> int | None:
        """The chat the call addressed, if any."""
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        """Message text, caption or alert text."""
        return str(self.params.get("text") or self.params.get("caption") or "")


@dataclass
class SentMessage:
    """A message as the chat currently shows it (edits applied)."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    # The message this one was sent under, as the chat shows it (threaded replies).
    reply_to: int | None = None
    # Links the chat shows (Markdown read where the dialect reads it): (words, address).
    links: list[tuple[str, str]] = field(default_factory=list)

    def buttons(self) -> list[dict[str, Any]]:
        """Every inline button of the message."""
        markup = self.reply_markup or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]

    def as_update_part(self) -> dict[str, Any]:
        """The message as Telegram would include it in a callback query."""
        part: dict[str, Any] = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": _chat(self.chat_id),
            "from": BOT_USER,
            "text": self.text,
        }
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            part["reply_markup"] = self.reply_markup
        return part


def _chat(chat_id: int) -> dict[str, Any]:
    """A test's chat as updates show it to the bot."""
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
    return {"id": bot_side(chat_id), "type": "supergroup", "title": f"group{chat_id}"}


_MARKDOWN = re.compile(
    r"\[(?P<words>[^\]\n]+)\]\((?P<address>[^)\s]+)\)|(?P<url>https?://\S+)"
    r"|\*(?P<bold>[^*\n]+)\*|(?<![A-Za-z0-9])_(?P<italic>[^_\n]+)_(?![A-Za-z0-9])|`(?P<code>[^`\n]+)`|~(?P<struck>[^~\n]+)~"
)


def markdown_shown(text: str) -> tuple[str, list[tuple[str, str]]]:
    """What a chat that reads Markdown in every message shows of `text`: its words, with the
    markup consumed, and the links it makes. Bare addresses are shown as they are."""
    links: list[tuple[str, str]] = []

    def shown(match: re.Match[str]) -> str:
        if match["words"] is not None:
            links.append((match["words"], match["address"]))
            return match["words"]
        return next(group for group in match.groups()[2:] if group is not None)

    return _MARKDOWN.sub(shown, text), links


# --- what Telegram refuses ------------------------------------------------------------------
# The limits and error texts of the Bot API (core.telegram.org/bots/api, and the texts the
# server returns). Lengths are counted as Telegram counts them: in UTF-16 code units, on the
# text as Telegram keeps it (control characters and U+2028–U+202E dropped, space-like
# characters made spaces, the ends trimmed). No parse_mode is used, so there are no entities.
TEXT_LIMIT, CAPTION_LIMIT, ALERT_LIMIT, CALLBACK_DATA_BYTES = 4096, 1024, 200, 64
ALBUM_MIN, ALBUM_MAX = 2, 10
NOT_FOUND = "Not Found"
NOT_ADMIN = "Forbidden: not enough rights"
# Refusals the bot asks for knowing a messenger may answer so: Bale has no setMyCommands, and
# answers getChatMember (the /agencies check) only to a bot that is an admin of the group.
EXPECTED_REFUSALS = frozenset({("setMyCommands", NOT_FOUND), ("getChatMember", NOT_ADMIN)})
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\u2028-\u202e\u0333\u033f\u030a]")
_SPACE_LIKE = re.compile("[\u1680\u180e\u2000-\u200a\u202f\u205f\u2800\u3000\ufffc]")
# Characters Telegram counts as nothing when it decides whether a text is empty.
_EMPTY = re.compile("[ \n\u200b-\u200f\u202e\ufeff\u00a0]*")


def as_telegram_keeps(text: str) -> str:
    """The text as Telegram stores it: dropped characters gone, space-like ones spaces, the
    ends trimmed, and nothing at all when only blank characters are left."""
    kept = _SPACE_LIKE.sub(" ", _DROPPED.sub("", text)).strip(" \t\r\n\0\v")
    return "" if _EMPTY.fullmatch(kept) else kept


def utf16_units(text: str) -> int:
    """A text's length as Telegram counts it: UTF-16 code units (an astral emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _bad_request(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


def _text_refusal(call: ApiCall) -> str | None:
    """Why Telegram refuses the call's text or caption, if it does."""
    if call.method in {"sendMessage", "editMessageText"}:
        kept = as_telegram_keeps(str(call.params.get("text") or ""))
        if not kept:
            return "message text is empty"
        if utf16_units(kept) > TEXT_LIMIT:
            return "MESSAGE_TOO_LONG" if call.method == "editMessageText" else "message is too long"
    captions = [call.params.get("caption")]
    if call.method == "sendMediaGroup":
        captions = [item.get("caption") for item in call.params.get("media") or []]
    for caption in captions:
        if caption and utf16_units(as_telegram_keeps(str(caption))) > CAPTION_LIMIT:
            return "message caption is too long"
    if call.method == "answerCallbackQuery":
        alert = str(call.params.get("text") or "")
        if utf16_units(alert) > ALERT_LIMIT:
            return "MESSAGE_TOO_LONG"
    return None


def _markup_refusal(call: ApiCall) -> str | None:
    """Why Telegram refuses the call's inline buttons, if it does."""
    markup = call.params.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_BYTES:
                return "BUTTON_DATA_INVALID"
            if not as_telegram_keeps(str(button.get("text") or "")):
                return "BUTTON_TEXT_INVALID"
    return None


def _album_refusal(call: ApiCall) -> str | None:
    """Why Telegram refuses an album: 2 to 10 items (the Bot API's documented bounds)."""
    if call.method != "sendMediaGroup":
        return None
    count = len(call.params.get("media") or [])
    if count == 0:
        return "there are no messages to send"
    if count > ALBUM_MAX:
        return "too many messages to send as an album"
    if count < ALBUM_MIN:
        return "media group must include 2-10 items"
    return None


def telegram_refusal(
    call: ApiCall, messages: dict[tuple[int, int], SentMessage]
) -> tuple[int, dict[str, Any]] | None:
    """Telegram's 400 answer to a call it refuses, or None when it accepts the call."""
    if call.method.startswith("edit"):
        key = (int(call.params.get("chat_id", 0)), int(call.params.get("message_id", 0)))
        current = messages.get(key)
        if current is None:
            return _bad_request("message to edit not found")
        text = call.text if call.method == "editMessageText" else current.text
        same_text = as_telegram_keeps(text) == as_telegram_keeps(current.text)
        markup = call.params.get("reply_markup") or None
        if same_text and _buttons_of(markup) == _buttons_of(current.reply_markup):
            return 400, {"ok": False, "error_code": 400, "description": NOT_MODIFIED}
    for rule in (_text_refusal, _markup_refusal, _album_refusal):
        if (why := rule(call)) is not None:
            return _bad_request(why)
    return None


def _in_test_ids(parameters: dict[str, Any]) -> dict[str, Any]:
    """A call's parameters with the chats it names in the tests' ids."""
    for name in ("chat_id", "from_chat_id"):
        value = parameters.get(name)
        if isinstance(value, int | str) and str(value).lstrip("-").isdigit():
            parameters[name] = as_tests_know(int(value))
    scope = parameters.get("scope")
    if isinstance(scope, dict) and isinstance(scope.get("chat_id"), int):
        parameters["scope"] = {**scope, "chat_id": as_tests_know(scope["chat_id"])}
    return parameters


def _buttons_of(markup: Any) -> Any:
    """An inline keyboard as Telegram compares it (no keyboard and an empty one are alike)."""
    rows = (markup or {}).get("inline_keyboard") if isinstance(markup, dict) else None
    return rows or None


# Every fake made in this process since the list was last cleared: the test suite checks that
# none of them refused a call the test did not mean to be refused.
LIVE_APIS: list[FakeBotAPI] = []


@dataclass
class FakeBotAPI(BaseRequest):
    """Answers like the Bot API, records every call, and can be told to fail."""

    calls: list[ApiCall] = field(default_factory=list)
    messages: dict[tuple[int, int], SentMessage] = field(default_factory=dict)
    # The same messages by chat, in the order sent (a chat's own are found without going
    # through every chat's: a benchmark's fake holds thousands of chats).
    by_chat: dict[int, list[SentMessage]] = field(default_factory=dict)
    # A hook that may return (status, payload) to answer a call with an error, or an exception
    # (a time-out, a reset connection) to raise instead of answering.
    fail: Callable[[ApiCall], tuple[int, dict[str, Any]] | Exception | None] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    # Off for benchmarks: keep only counts, so memory measures the bot, not this recorder.
    record: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    # Calls refused under Telegram's rules, with the description Telegram gives.
    refused: list[tuple[ApiCall, str]] = field(default_factory=list)
    # Telegram's way or Bale's (the running test's, unless given).
    dialect: Dialect = field(default_factory=dialect)
    # Chats where the bot is an admin (getChatMember answers a bot that is not, on Bale).
    admin_in: set[int] = field(default_factory=set)
    # Who getMe says the bot is (each bot of a deployment with several has its own).
    bot_user: dict[str, Any] = field(default_factory=lambda: dict(BOT_USER))

    def __post_init__(self) -> None:
        LIVE_APIS.append(self)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        parameters = dict(request_data.parameters) if request_data else {}
        call = ApiCall(url.rsplit("/", 1)[-1], _in_test_ids(parameters))
        self.counts[call.method] = self.counts.get(call.method, 0) + 1
        if not self.record:
            return 200, json.dumps({"ok": True, "result": self._result_unrecorded(call)}).encode()
        if request_data is not None and request_data.contains_files:
            for part, (name, content, mime) in request_data.multipart_data.items():
                data = content.read() if hasattr(content, "read") else content
                call.files[part] = (name, data, mime)
        self.calls.append(call)
        unknown_edit = call.method.startswith("edit") and self._unknown_message(call)
        failure = self.fail(call) if self.fail is not None and not unknown_edit else None
        if isinstance(failure, Exception):
            raise failure
        status, payload = failure or self.answer(call)
        return status, json.dumps(payload).encode()

    def answer(self, call: ApiCall) -> tuple[int, dict[str, Any]]:
        """What the Bot API returns for a call (HTTP status, JSON body), edits applied; what
        Telegram refuses (`telegram_refusal`) is refused here too, and recorded in `refused`;
        a method the dialect lacks is answered 404, and recorded there too."""
        if call.method in self.dialect.missing:
            self.refused.append((call, NOT_FOUND))
            return 404, {"ok": False, "error_code": 404, "description": NOT_FOUND}
        if (refusal := telegram_refusal(call, self.messages)) is not None:
            self.refused.append((call, str(refusal[1]["description"])))
            return refusal
        needs_admin = call.method == "getChatMember" and self.dialect.member_needs_admin
        if needs_admin and call.chat_id not in self.admin_in:
            self.refused.append((call, NOT_ADMIN))
            return 403, {"ok": False, "error_code": 403, "description": NOT_ADMIN}
        result = self._result(call)
        if call.method.startswith("edit") and self.dialect.edit_stubs and isinstance(result, dict):
            result = {"message_id": result["message_id"], "text": result.get("text", "")}
        return 200, {"ok": True, "result": result}

    def _result(self, call: ApiCall) -> Any:
        if call.method == "getMe":
            return self.bot_user
        if call.method == "getChatMember":
            return {"status": "member", "user": self.bot_user}
        if call.method == "getChat":
            return {**_chat(int(call.params["chat_id"])), "accent_color_id": 0}
        if call.method in {"sendMessage", "sendPhoto", "sendLocation", "sendDocument", "sendVoice"}:
            return self._store_new(call).as_update_part()
        if call.method == "sendMediaGroup":
            return [self._store_new(call).as_update_part() for _ in call.params["media"]]
        if call.method in {"editMessageText", "editMessageReplyMarkup"}:
            return self._edit(call)
        if call.method == "getUpdates":
            return []
        return True

    def _unknown_message(self, call: ApiCall) -> bool:
        key = (int(call.params.get("chat_id", 0)), int(call.params.get("message_id", 0)))
        return self.record and key not in self.messages

    def _result_unrecorded(self, call: ApiCall) -> Any:
        if call.method == "sendMessage":
            assert call.chat_id is not None
            return SentMessage(call.chat_id, next(self._ids), call.text, None).as_update_part()
        return self._result(call)

    def _store_new(self, call: ApiCall) -> SentMessage:
        assert call.chat_id is not None
        text, links = self._shown(call.text)
        message = SentMessage(
            call.chat_id, next(self._ids), text, call.params.get("reply_markup"),
            reply_to=self._replied_to(call), links=links,
        )  # fmt: skip
        self.messages[(message.chat_id, message.message_id)] = message
        self.by_chat.setdefault(message.chat_id, []).append(message)
        return message

    def _shown(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """A text as the chat shows it: Markdown read where the dialect reads it."""
        return markdown_shown(text) if self.dialect.markdown else (text, [])

    def _replied_to(self, call: ApiCall) -> int | None:
        """The message a call is threaded under, by the field the dialect reads."""
        value = call.params.get(self.dialect.reply_field)
        if isinstance(value, dict):
            value = value.get("message_id")
        return int(value) if value is not None else None

    def _edit(self, call: ApiCall) -> Any:
        key = (int(call.params["chat_id"]), int(call.params["message_id"]))
        message = self.messages[key]
        if call.method == "editMessageText":
            message.text, message.links = self._shown(call.text)
        message.reply_markup = call.params.get("reply_markup")
        return message.as_update_part()

    def unmeant_refusals(self, *forgiven: str) -> list[tuple[ApiCall, str]]:
        """Calls refused that the bot does not mean as its idiom: not edits that change nothing
        (taken as done), not `EXPECTED_REFUSALS`, nor refusals described as in `forgiven`."""
        return [
            (call, why)
            for call, why in self.refused
            if why not in (NOT_MODIFIED, *forgiven) and (call.method, why) not in EXPECTED_REFUSALS
        ]

    def to_chat(self, chat_id: int) -> list[ApiCall]:
        """Calls addressed to one chat, oldest first."""
        return [c for c in self.calls if c.chat_id == chat_id]

    def delivered(self, chat_id: int) -> list[SentMessage]:
        """Messages that really arrived in a chat (failed calls are not among them)."""
        return list(self.by_chat.get(chat_id, ()))


class ChatUser:
    """A person in a private chat with the bot: sends things, presses buttons, reads replies."""

    _update_ids = itertools.count(1)
    _message_ids = itertools.count(1)

    def __init__(
        self,
        app: AnyApplication,
        api: FakeBotAPI,
        user_id: int,
        *,
        chat_id: int | None = None,
        name: str | None = None,
        deliver: bool = True,
        settle: bool = True,
    ) -> None:
        self.app, self.api, self.user_id = app, api, user_id
        # A private chat by default; a group (negative id) for agency staff and coordinators.
        self.chat_id = chat_id if chat_id is not None else user_id
        self.user = {
            "id": user_id,
            "is_bot": False,
            "first_name": name or f"user{user_id}",
            "language_code": "fa",
        }
        # Run the outbox worker after each update, as a fast real worker would.
        self.deliver = deliver
        # Wait for the work an update leaves running (a submitted case being placed).
        self.settle = settle

    # --- sending ------------------------------------------------------------------------------

    async def _process(self, payload: dict[str, Any]) -> list[ApiCall]:
        before = len(self.api.calls)
        payload["update_id"] = next(self._update_ids)
        runtime = self.app.bot_data.get("runtime")  # none in a benchmark's bare echo bot
        if runtime is not None and runtime.settings.ids_apart(runtime.bot_key):  # as received
            from bot.ids import update_moved_in

            payload = update_moved_in(payload)
        await self.app.process_update(Update.de_json(payload, self.app.bot))
        if self.settle:
            from bot.pipeline import settle

            await settle(self.app.bot_data["runtime"])
        if self.deliver:
            await deliver_outbox(self.app)
        return [c for c in self.api.calls[before:] if c.chat_id in (self.chat_id, None)]

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": _chat(self.chat_id),
            "from": self.user,
            **content,
        }

    def _text(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/") and dialect().command_entities:
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return {"message": self._message(**content)}

    async def send(self, text: str) -> list[ApiCall]:
        """Type and send text (a leading /word is a command)."""
        return await self._process(self._text(text))

    def private(self) -> ChatUser:
        """This person in their private chat with the bot."""
        return ChatUser(
            self.app, self.api, self.user_id, name=str(self.user["first_name"]),
            deliver=self.deliver, settle=self.settle,
        )  # fmt: skip

    async def reply(self, text: str) -> list[ApiCall]:
        """Type `text` in answer to the bot's newest prompt to this person (a message that asks
        for a reply, ForceReply), in the chat it was asked in: this one or their private chat.
        A client that honours ForceReply sends it as a reply to the prompt, as this does; one
        that does not (Bale's) sends it plain."""
        chats = [self] if self.chat_id == self.user_id else [self, self.private()]
        prompts = [
            (message.message_id, chat)
            for chat in chats
            for message in chat._messages()
            if (message.reply_markup or {}).get("force_reply")
        ]
        if not prompts:
            raise AssertionError(f"no message asks {self.user_id} for a reply")
        message_id, chat = max(prompts, key=lambda prompt: prompt[0])
        if dialect().force_reply:
            return await chat.reply_to(message_id, text)
        return await chat.send(text)

    async def reply_to(
        self, message_id: int, text: str | None = None, **content: Any
    ) -> list[ApiCall]:
        """Send `text` (or any `content`, e.g. photo=[…]) as a reply to the message
        `message_id` of this chat."""
        update = self._text(text) if text is not None else {"message": self._message(**content)}
        replied = self.api.messages.get((self.chat_id, message_id))
        update["message"]["reply_to_message"] = (
            replied.as_update_part()
            if replied
            else {"message_id": message_id, "date": int(time.time()), "chat": _chat(self.chat_id)}
        )
        return await self._process(update)

    def text_update(self, text: str) -> Update:
        """The update `send(text)` would make, for a test that queues it as the webhook does."""
        return Update.de_json(
            {**self._text(text), "update_id": next(self._update_ids)}, self.app.bot
        )

    async def send_content(self, **content: Any) -> list[ApiCall]:
        """Send any message content, e.g. sticker={...} or voice={...}."""
        return await self._process({"message": self._message(**content)})

    async def send_photo(self, file_id: str, caption: str | None = None) -> list[ApiCall]:
        """Send a photo (with an optional caption)."""
        sizes = [
            {
                "file_id": f"{file_id}-small",
                "file_unique_id": f"{file_id}s",
                "width": 90,
                "height": 90,
            },
            {"file_id": file_id, "file_unique_id": f"{file_id}u", "width": 1280, "height": 960},
        ]
        content: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        return await self.send_content(**content)

    async def send_location(self, latitude: float, longitude: float) -> list[ApiCall]:
        """Share a location."""
        return await self.send_content(location={"latitude": latitude, "longitude": longitude})

    async def send_contact(self, phone: str, owner_id: int | None = None) -> list[ApiCall]:
        """Share a contact: one's own by default."""
        contact = {"phone_number": phone, "first_name": "x", "user_id": owner_id or self.user_id}
        return await self.send_content(contact=contact)

    async def edit_message(self, text: str) -> list[ApiCall]:
        """Edit an earlier message."""
        edited = self._message(text=text, edit_date=int(time.time()))
        return await self._process({"edited_message": edited})

    async def press(self, label: str) -> list[ApiCall]:
        """Press the newest inline button whose label contains `label`."""
        for message in reversed(self._messages()):
            for button in message.buttons():
                if label in button["text"]:
                    return await self.press_data(button["callback_data"], message)
        raise AssertionError(
            f"no button {label!r} in chat {self.user_id}; saw {self.button_labels()}"
        )

    async def press_data(self, data: str, message: SentMessage | None = None) -> list[ApiCall]:
        """Send a callback query with arbitrary data (forged, stale or replayed)."""
        message = message or self._messages()[-1]
        # Bale's old clients, which show no answer to a press, send ids that start with "1".
        client = "1" if dialect().old_clients else "8"
        query = {
            "id": f"{client}{next(self._update_ids)}",
            "from": self.user,
            "chat_instance": f"ci{self.user_id}",
            "data": data,
            "message": message.as_update_part(),
        }
        return await self._process({"callback_query": query})

    # --- reading ------------------------------------------------------------------------------

    def _messages(self) -> list[SentMessage]:
        return self.api.delivered(self.chat_id)

    def button_labels(self) -> list[str]:
        """Labels of inline buttons on messages in this chat, newest message last."""
        return [b["text"] for m in self._messages() for b in m.buttons()]

    def data_of(self, label: str) -> str:
        """The callback data behind the newest button with this label."""
        for message in reversed(self._messages()):
            for button in message.buttons():
                if label in button["text"]:
                    return str(button["callback_data"])
        raise AssertionError(f"no button {label!r}")

    @property
    def last_text(self) -> str:
        """The newest message text sent to this chat."""
        sent = [c for c in self.api.to_chat(self.chat_id) if c.method == "sendMessage"]
        return sent[-1].text if sent else ""

    def reply_keyboard(self) -> list[str]:
        """Labels of the newest reply keyboard sent to this chat."""
        for call in reversed(self.api.to_chat(self.chat_id)):
            markup = call.params.get("reply_markup") or {}
            if "keyboard" in markup:
                return [
                    b if isinstance(b, str) else b["text"]
                    for row in markup["keyboard"]
                    for b in row
                ]
        return []


def query_too_old(call: ApiCall) -> tuple[int, dict[str, object]] | None:
    """Telegram's answer to a button answered after it stopped waiting (a backlog, a restart)."""
    if call.method != "answerCallbackQuery":
        return None
    description = (
        "Bad Request: query is too old and response timeout expired or query id is invalid"
    )
    return 400, {"ok": False, "error_code": 400, "description": description}


def alerts(calls: list[ApiCall]) -> list[str]:
    """Texts of callback-query answers among `calls`."""
    return [c.text for c in calls if c.method == "answerCallbackQuery" and c.text]


def texts(calls: list[ApiCall]) -> list[str]:
    """Texts of messages sent among `calls`."""
    return [c.text for c in calls if c.method == "sendMessage"]


async def wait_for(condition: Callable[[], bool], *, what: str, seconds: float = 5.0) -> None:
    """Wait until `condition()` holds: what tests wait on is state other tasks or processes
    change (the fake API's calls, queues, a reloaded list), so it is polled."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def deliver_outbox(app: AnyApplication) -> int:
    """Send everything due in the outbox now; how many rows were attempted."""
    sender = app.bot_data["runtime"].sender
    return int(await sender.deliver_due()) if sender is not None else 0


class _Forward(HandingOn):
    """A request that hands every call to a fake Bot API."""

    def __init__(self, api: FakeBotAPI) -> None:
        super().__init__(api)
        self.api = api


class ThroughBaleRequest(BaleCalls, _Forward):
    """The fake, reached through the request class of a Bale deployment (bot/bale.py)."""


# MAHALLE_TEST_BOTS=2: the bot a test starts is the second of a deployment of two. A first bot,
# which leads (runs the jobs) and owns the database pool, serves a county of its own that the
# tests never speak to; the test's bot serves the test's counties and is the one it talks to.
BOTS_ENV = "MAHALLE_TEST_BOTS"
FIRST_BOT, TESTS_BOT = "first", "second"
FIRST_TOKEN = "987654321:AAFirstBotOfTwoForOfflineTestsOnly_01"
FIRST_BOT_USER = {**BOT_USER, "id": 987654321, "username": "mahalle_first_bot"}
# The first bot's county: its own places, agencies, coordinator and group.
ELSEWHERE, ELSEWHERE_COORDINATOR, ELSEWHERE_CHAT = "elsewhere", 9301, -100399


def bots_in_deployment() -> int:
    """How many bots the deployment of a test's bot has: 1, or 2 with MAHALLE_TEST_BOTS=2."""
    value = os.environ.get(BOTS_ENV) or "1"
    if value not in {"1", "2"}:
        raise ValueError(f"{BOTS_ENV} is 1 or 2, not {value!r}")
    return int(value)


def rows_bot() -> str | None:
    """The bot a message a test queues itself goes through: with one bot none (the one bot);
    with MAHALLE_TEST_BOTS=2 the test's, since a message to someone who wrote to no bot is the
    first bot's to send (the only one such a person might have started)."""
    return TESTS_BOT if bots_in_deployment() == 2 else None


def first_neighbourhood(settings: Any) -> str:
    """The key of the first neighbourhood of a test's first county."""
    return str(settings.counties[0].districts[0].neighbourhoods[0].key)


def elsewhere_agency_chat(index: int) -> int:
    """The test chat id of the index-th agency of the first bot's county."""
    return -100300 - index


def agencies_like(
    template: Any, county_key: str, suffix: str, chat_of: Callable[[int], int]
) -> list[Any]:
    """A county's agencies made for another county: keys after its key, names followed by
    `suffix`, each standing for the same agency of [[domains]], the i-th in chat `chat_of(i)`."""
    return [
        agency.model_copy(
            update={
                "key": f"{county_key}-{agency.key}",
                "kind": agency.role,
                "name": f"{agency.name} {suffix}",
                "chat_id": chat_of(index),
            }
        )
        for index, agency in enumerate(template.agencies)
    ]


def as_second_of_two(settings: Any) -> Any:
    """The test's settings as a deployment of two bots ([[bots]]): the first serves a county
    of its own, listed first; the second, with the test's token, serves the test's counties."""
    from bot.config import CountySettings, DistrictSettings, Settings

    template = settings.counties[0]
    elsewhere = CountySettings(
        key=ELSEWHERE,
        name="شهرستان دوردست",
        coordinators=[ELSEWHERE_COORDINATOR],
        coordinator_chat_id=bot_side(ELSEWHERE_CHAT),
        bounding_box={"min_lat": 29.5, "min_lon": 52.4, "max_lat": 29.7, "max_lon": 52.6},
        districts=[
            DistrictSettings(
                key=f"{ELSEWHERE}-1",
                name="بخش دوردست",
                neighbourhoods=[{"key": f"{ELSEWHERE}-n1", "name": "محله دوردست"}],
            )
        ],
        agencies=agencies_like(
            template, ELSEWHERE, "دوردست", lambda i: bot_side(elsewhere_agency_chat(i))
        ),
    )
    base = settings.telegram.model_dump()
    bots = [
        {
            "key": key,
            "counties": counties,
            "token_env": f"MAHALLE_TEST_TOKEN_{key.upper()}",
            "telegram": {**base, "token": token},
        }
        for key, counties, token in (
            (FIRST_BOT, [ELSEWHERE], FIRST_TOKEN),
            (TESTS_BOT, [county.key for county in settings.counties], FAKE_TOKEN),
        )
    ]
    counties = [elsewhere, *settings.counties]
    return Settings.model_validate({**settings.model_dump(), "counties": counties, "bots": bots})


# The applications of each two-bot deployment a test started, by its test bot's application:
# stopping or crashing the test's bot stops or crashes its deployment.
_DEPLOYMENTS: dict[int, list[AnyApplication]] = {}


def leading(app: AnyApplication) -> AnyApplication:
    """The application that runs the jobs of `app`'s deployment, as in production: `app`
    itself, or with MAHALLE_TEST_BOTS=2 the first bot's."""
    return _DEPLOYMENTS.get(id(app), [app])[0]


async def start_bot(
    settings: Any,
    api: FakeBotAPI | None = None,
    *,
    role: str = "all",
    limited: bool = False,
    freeze_startup: bool = False,
) -> tuple[AnyApplication, FakeBotAPI]:
    """Build the real application on the fake transport and start it as `mahalle run` would
    (without polling): initialize, then post_init. `limited`: with Telegram's flood limiter.
    `freeze_startup`: as `mahalle run` (tests leave it off: a test process starts hundreds of
    bots, and frozen cycles of the ones stopped would stay for the whole run). With
    MAHALLE_TEST_BOTS=2 the application returned is the second bot of two (`as_second_of_two`),
    the first on a fake Bot API of its own."""
    from telegram.ext import ApplicationBuilder

    from bot.app import build_application, build_applications, flood_limiter

    api = api or FakeBotAPI()
    two = bots_in_deployment() == 2 and not settings.bots
    apis = {FIRST_BOT: FakeBotAPI(bot_user=dict(FIRST_BOT_USER)), TESTS_BOT: api} if two else {}
    tokens = {FIRST_BOT: FIRST_TOKEN, TESTS_BOT: FAKE_TOKEN}
    if two:
        settings = as_second_of_two(settings)

    def builder_for(fake: FakeBotAPI, token: str) -> Any:
        request: BaseRequest = fake
        if settings.telegram.platform == "bale":  # the request class a Bale deployment uses
            request = ThroughBaleRequest(fake)
        builder: Any = ApplicationBuilder().token(token).request(request)
        builder = builder.get_updates_request(request)
        return builder.rate_limiter(flood_limiter()) if limited else builder

    if not two:
        app = build_application(
            settings, builder_for(api, FAKE_TOKEN), role=role, freeze_startup=freeze_startup
        )
        apps = [app]
    else:
        builders = {key: builder_for(fake, tokens[key]) for key, fake in apis.items()}
        apps = build_applications(settings, builders, role=role, freeze_startup=freeze_startup)
        app = apps[-1]
        _DEPLOYMENTS[id(app)] = apps
    for each in apps:
        await each.initialize()
        if each.post_init is not None:
            await each.post_init(each)
    return app, api


async def start_bots(
    settings: Any, apis: dict[str, FakeBotAPI], tokens: dict[str, str]
) -> list[AnyApplication]:
    """Every bot of a deployment with several ([[bots]]), each on its own fake Bot API with
    its own token, built and started as `mahalle run` does, the first bot's first."""
    from telegram.ext import ApplicationBuilder

    from bot.app import build_applications
    from bot.namespaced import kept_apart

    builders: dict[str, Any] = {}
    for key, api in apis.items():
        request: BaseRequest = api
        if settings.for_bot(key).telegram.platform == "bale":
            request = ThroughBaleRequest(api)
        request = kept_apart(settings.for_bot(key), request)  # on both messengers, as deployed
        builders[key] = (
            ApplicationBuilder().token(tokens[key]).request(request).get_updates_request(request)
        )
    apps = build_applications(settings, builders)
    for app in apps:
        await app.initialize()
        if app.post_init is not None:
            await app.post_init(app)
    return apps


async def crash_bot(app: AnyApplication) -> None:
    """The process dies: no shutdown, no final persistence flush. Its database connections die
    with it, the jobs lock's and the block list listener's too (else the lock outlives a test)."""
    apps = _DEPLOYMENTS.pop(id(app), [app])
    runtimes = [each.bot_data["runtime"] for each in apps]
    await runtimes[0].leadership.step_down()
    for runtime in runtimes:
        if runtime.listener is not None:
            await runtime.listener.close()
    await runtimes[0].engine.dispose()


async def stop_bot(app: AnyApplication) -> None:
    """Shut the application down cleanly (persistence flushed, database pool closed); with
    MAHALLE_TEST_BOTS=2, its deployment's, the first bot's (which closes the pool) last."""
    for each in reversed(_DEPLOYMENTS.pop(id(app), [app])):
        await each.shutdown()
        if each.post_shutdown is not None:
            await each.post_shutdown(each)
