"""What the bot's HTTP layer does differently on Bale.

Bale's Bot API follows Telegram's with differences a request class can absorb, so no handler
knows which messenger it talks to (a request class is PTB's documented place for how calls
travel):

- Bale shows Markdown in every message and has no plain-text mode: a resident's `*urgent*`
  would turn bold on the agency's card, and `[the council](http://…)` a live link under words
  of their choosing. Mahalle sends plain text, so on Bale every character Bale would read as
  markup (* _ ` ~, and the [ that opens a link) is sent as a look-alike that it does not read
  (∗ ˍ ˋ ˜ ［). Addresses
  (http://…, https://…) and snake_case words (chat_id, a deep link's start=join_…) are left as
  they are: the first must keep working and the second have nothing to pair with.
- Bale documents `reply_to_message_id`, not the `reply_parameters` PTB sends: both are sent.
- Older Bale servers send a /command without its `bot_command` entity, which PTB's command
  handlers go by: such a message is given the entity as it arrives (`with_command_entities`).
- Since June 2025 a press from an old Bale client, which cannot show the answer to a button
  (the "slow down" or "no longer active" box), has a callback query id that starts with "1":
  `shows_no_answers` tells such presses, and the bot says the same in a message.
- Bale may answer an edit with a stub of the message, without its `date` or `chat`: the edit was
  made, but PTB cannot read the answer (KeyError 'date') and every button that edits its message
  would end in an error. An edit's answer is read as `true` (done) when it is such a stub.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from telegram import Bot, CallbackQuery, Update
from telegram.request import HTTPXRequest, RequestData

_LOOK_ALIKES = str.maketrans({"*": "\u2217", "`": "\u02cb", "~": "\u02dc"})
# A [ that opens [words](address), Markdown's link; a bracket alone stays (a redaction marker).
_LINK_OPENING = re.compile(r"\[(?=[^\]\n]*\]\()")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
# An underscore between two ASCII letters or digits (snake_case, a start=join_… token) stays.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_TEXT_METHODS = frozenset({"sendMessage", "editMessageText"})
_CAPTION_METHODS = frozenset(
    {"sendPhoto", "sendDocument", "sendVoice", "sendVideo", "sendAudio", "editMessageCaption"}
)


def _plain_part(text: str) -> str:
    text = _LINK_OPENING.sub("\uff3b", text.translate(_LOOK_ALIKES))
    return _UNDERSCORE.sub("\u02cd", text)


def shown_as_written(text: str) -> str:
    """`text` with what Bale would read as Markdown made look-alikes it does not read;
    addresses unchanged."""
    parts, end = [], 0
    for url in _URL.finditer(text):
        parts += [_plain_part(text[end : url.start()]), url.group()]
        end = url.end()
    parts.append(_plain_part(text[end:]))
    return "".join(parts)


def bale_parameters(method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters whose values differ on Bale (text and captions, the reply field)."""
    changed: dict[str, Any] = {}
    text_field = (
        "text" if method in _TEXT_METHODS else "caption" if method in _CAPTION_METHODS else None
    )
    if text_field and isinstance(parameters.get(text_field), str):
        changed[text_field] = shown_as_written(parameters[text_field])
    if method == "sendMediaGroup" and isinstance(parameters.get("media"), list):
        changed["media"] = [
            {**item, "caption": shown_as_written(item["caption"])}
            if isinstance(item, dict) and isinstance(item.get("caption"), str)
            else item
            for item in parameters["media"]
        ]
    reply = parameters.get("reply_parameters")
    threaded = isinstance(reply, dict) and "message_id" in reply
    if threaded and "reply_to_message_id" not in parameters:
        assert isinstance(reply, dict)
        changed["reply_to_message_id"] = reply["message_id"]
    return changed


class ChangedParameters:
    """A request's data with some parameters changed (Bale's dialect, ids moved back): the
    public members of RequestData that a request class reads (RequestData itself is final)."""

    def __init__(self, original: RequestData, changed: dict[str, Any]) -> None:
        self.contains_files = original.contains_files
        self._original, self._changed = original, changed

    @property
    def parameters(self) -> dict[str, Any]:
        return {**self._original.parameters, **self._changed}

    @property
    def json_parameters(self) -> dict[str, str]:
        encoded = {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in self._changed.items()
        }
        return {**self._original.json_parameters, **encoded}

    @property
    def multipart_data(self) -> Any:
        return self._original.multipart_data


def edit_stub_as_done(method: str, body: bytes) -> bytes:
    """The Bot API's answer to `method`, with an edit's stub of a message read as `true`."""
    if not method.startswith("edit"):
        return body
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict) or ("date" in result and "chat" in result):
        return body
    return json.dumps({**answer, "result": True}).encode()


class BaleCalls:
    """A request mixin: calls go out as Bale reads them, and answers come back as PTB reads
    them."""

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
        """Make the call (the next class's way) with Bale's parameters, then read an edit's
        stub as done."""
        endpoint = url.rsplit("/", 1)[-1]
        if request_data is not None:
            changed = bale_parameters(endpoint, request_data.parameters)
            if changed:
                request_data = cast(RequestData, ChangedParameters(request_data, changed))
        code, body = await super().do_request(  # type: ignore[misc]
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        return code, edit_stub_as_done(endpoint, body)


class BaleRequest(BaleCalls, HTTPXRequest):
    """PTB's HTTP request, speaking Bale's dialect of the Bot API."""


_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?=\s|$)")


def with_command_entities(update: object, bot: Bot) -> object:
    """The update, with a message that starts with a /command but came without its
    `bot_command` entity (older Bale servers) given one, as Telegram would send it; PTB's
    command handlers go by the entity."""
    if not isinstance(update, Update) or update.message is None:
        return update
    text, entities = update.message.text, update.message.entities
    command = _COMMAND.match(text) if text and not entities else None
    if command is None:
        return update
    data = update.to_dict()
    data["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
    return Update.de_json(data, bot)


# The tokens of the bots this process runs on Bale (`mahalle run` sets them from the config).
_ON_BALE: set[str] = set()


def runs_on_bale(token: str, on_bale: bool) -> None:
    """Record whether the bot with this token talks to Bale."""
    if on_bale:
        _ON_BALE.add(token)
    else:
        _ON_BALE.discard(token)


def shows_no_answers(query: CallbackQuery) -> bool:
    """Whether the press came from a client that cannot show a callback answer: an old Bale
    client, whose query ids start with "1"."""
    return query.id.startswith("1") and query.get_bot().token in _ON_BALE
