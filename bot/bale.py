"""What the bot's HTTP layer does differently on Bale.

Bale may answer an edit (editMessageText, editMessageReplyMarkup, …) with a stub of the message,
without its `date` or `chat`: the edit was made, but python-telegram-bot cannot read the answer
(KeyError 'date') and every button that edits its message would end in an error. An edit's
answer is read as `true` (done) when it is such a stub. The fix sits in a request class, PTB's
documented place for how calls travel, so no handler knows which messenger it talks to.
"""

from __future__ import annotations

import json
from typing import Any

from telegram.request import HTTPXRequest, RequestData


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


class EditStubsAsDone:
    """A request mixin: answers pass through `edit_stub_as_done`."""

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
        """Make the call (the next class's way), then read an edit's stub as done."""
        code, body = await super().do_request(  # type: ignore[misc]
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        return code, edit_stub_as_done(url.rsplit("/", 1)[-1], body)


class BaleRequest(EditStubsAsDone, HTTPXRequest):
    """PTB's HTTP request, with Bale's edit answers read as PTB expects them."""
