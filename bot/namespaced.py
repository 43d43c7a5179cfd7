"""A bot's request class in a deployment on both messengers: each call's ids moved back to the
messenger's own, each answer's moved in (bot/ids.py), and no call made to an id of the other
messenger."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, cast

from telegram.request import BaseRequest, RequestData

from bot.bale import ChangedParameters
from bot.ids import ForeignIdError, answer_moved_in, calls_moved_out

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

_NOT_FOUND = json.dumps(
    {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
).encode()


class Namespaced(BaseRequest):
    """A bot's request class in a deployment on both messengers: `apart` for a bot of the
    other messenger than the first bot's, whose ids are moved; a bot of the first bot's
    messenger moves nothing but refuses a moved id."""

    def __init__(self, inner: BaseRequest, *, apart: bool) -> None:
        self.inner, self.apart = inner, apart

    async def initialize(self) -> None:
        """Start the request class within."""
        await self.inner.initialize()

    async def shutdown(self) -> None:
        """Stop the request class within."""
        await self.inner.shutdown()

    @property
    def read_timeout(self) -> float | None:
        """The read timeout of the request class within."""
        return self.inner.read_timeout

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
        """The call with its ids as the messenger numbers them, the answer's as kept here."""
        endpoint = url.rsplit("/", 1)[-1]
        if request_data is not None:
            try:
                changed = calls_moved_out(request_data.parameters, self.apart)
            except ForeignIdError:
                log.warning("%s to a chat of the other messenger: not sent", endpoint)
                return 400, _NOT_FOUND
            if changed:
                request_data = cast(RequestData, ChangedParameters(request_data, changed))
        code, body = await self.inner.do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        if not self.apart or method != "POST":  # a file's download is no answer to read
            return code, body
        try:
            answer = json.loads(body)
        except ValueError:
            return code, body
        if not isinstance(answer, dict):
            return code, body
        return code, json.dumps(answer_moved_in(endpoint, answer)).encode()


def kept_apart(settings: Settings, request: BaseRequest) -> BaseRequest:
    """A bot's request class as its deployment needs it: `Namespaced` on both messengers,
    else the request class itself. `settings`: the bot's own (`Settings.for_bot`)."""
    if not settings.on_both_messengers:
        return request
    return Namespaced(request, apart=settings.ids_apart(settings.serving))
