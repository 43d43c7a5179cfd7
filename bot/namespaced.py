"""Request classes around another: `HandingOn`, the wrapper itself, and `Namespaced`, a bot's
in a deployment on both messengers: each call's ids moved back to the messenger's own, each
answer's moved in (bot/ids.py), and no call made to an id of the other messenger."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
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


Onward = Callable[[RequestData | None], Awaitable[tuple[int, bytes]]]


class HandingOn(BaseRequest):
    """A request class that hands each call to another (`inner`), through `hand_on`: what a
    wrapper changes on the way, or keeps of the answer, without the transport's arguments."""

    def __init__(self, inner: BaseRequest) -> None:
        self.inner = inner

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
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """The call, through `hand_on`, to the request class within."""

        async def onward(data: RequestData | None) -> tuple[int, bytes]:
            return await self.inner.do_request(
                url, method, data, read_timeout, write_timeout, connect_timeout, pool_timeout
            )

        return await self.hand_on(url, method, request_data, onward)

    async def hand_on(
        self, url: str, method: str, request_data: RequestData | None, onward: Onward
    ) -> tuple[int, bytes]:
        """Make the call with `onward(request_data)`; unchanged here."""
        return await onward(request_data)


class Namespaced(HandingOn):
    """A bot's request class in a deployment on both messengers: `apart` for a bot of the
    other messenger than the first bot's, whose ids are moved; a bot of the first bot's
    messenger moves nothing but refuses a moved id."""

    def __init__(self, inner: BaseRequest, *, apart: bool) -> None:
        super().__init__(inner)
        self.apart = apart

    async def hand_on(
        self, url: str, method: str, request_data: RequestData | None, onward: Onward
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
        code, body = await onward(request_data)
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
