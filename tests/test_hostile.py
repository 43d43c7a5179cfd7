"""Random and malformed updates into the running application: no unhandled error, no reply over
Telegram's limits, and the database still consistent afterwards."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update

from handlers.common import is_benign
from tests.conftest import make_settings
from tests.fakebot import FakeBotAPI, start_bot, stop_bot
from tests.test_report_flow import cases_in

USERS = (4101, 4102)
GROUP = -100555
_ids = itertools.count(1)

text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.sampled_from("سلامیك ي\u200c\u200f\u202e\u2066<b>&/ـ۱٤5"), max_size=300),
    st.sampled_from(["/start", "/new", "/cancel", "/help", "/mine", "/settings", "/group", "/stats", "/broadcast",
                     "📝 گزارش جدید", "ادامه ⬅️", "🙈 ناشناس بمانم", "✖️ انصراف", "جهاد", "۱۴۰۵-۰۰۰۰۱",
                     "سطل زباله سر کوچه سه روز است خالی نشده", "x" * 5000, "<b><i><a href='x'>" * 50]),
)  # fmt: skip
callback = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["rn:n:1", "rn:d", "rn:d:1:9", "rc:x", "rx:edit", "re:media", "my:p:99", "my:c:1", "an:1:x", "cs:ac:1:x", "tq:1:municipal:x", "bt:done", "rg:0", "sp:week"]),
)  # fmt: skip


def _message(chat: dict[str, Any], sender: dict[str, Any] | None, **content: Any) -> dict[str, Any]:
    message = {"message_id": next(_ids), "date": int(time.time()), "chat": chat, **content}
    if sender:
        message["from"] = sender
    return message


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    user_id = draw(st.sampled_from(USERS))
    sender = {"id": user_id, "is_bot": False, "first_name": draw(st.text(max_size=20)) or "x"}
    private = {"id": user_id, "type": "private", "first_name": "x"}
    group = {"id": GROUP, "type": "supergroup", "title": "g"}
    chat = draw(st.sampled_from([private, private, private, group]))
    kind = draw(
        st.sampled_from(
            [
                "text",
                "text",
                "text",
                "callback",
                "photo",
                "location",
                "contact",
                "sticker",
                "edited",
                "channel",
                "unknown",
            ]
        )
    )
    update: dict[str, Any] = {"update_id": next(_ids)}
    if kind == "text":
        body = draw(text)
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(body.split()[0])}]
            if body.startswith("/") and body.split()
            else []
        )
        update["message"] = _message(chat, sender, text=body, entities=entities)
    elif kind == "callback":
        bot_message = _message(chat, {"id": 1, "is_bot": True, "first_name": "b"}, text="x")
        update["callback_query"] = {
            "id": str(next(_ids)),
            "from": sender,
            "chat_instance": "c",
            "data": draw(callback),
            "message": bot_message,
        }
    elif kind == "photo":
        update["message"] = _message(
            chat,
            sender,
            photo=[{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}],
            caption=draw(text),
        )
    elif kind == "location":
        update["message"] = _message(
            chat,
            sender,
            location={
                "latitude": draw(st.floats(-90, 90)),
                "longitude": draw(st.floats(-180, 180)),
            },
        )
    elif kind == "contact":
        update["message"] = _message(
            chat,
            sender,
            contact={
                "phone_number": "+98912",
                "first_name": "c",
                "user_id": draw(st.sampled_from(USERS)),
            },
        )
    elif kind == "sticker":
        update["message"] = _message(
            chat,
            sender,
            sticker={
                "file_id": "s",
                "file_unique_id": "s",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            },
        )
    elif kind == "edited":
        update["edited_message"] = _message(
            chat, sender, text=draw(text), edit_date=int(time.time())
        )
    elif kind == "channel":
        update["channel_post"] = _message(
            {"id": -1001, "type": "channel", "title": "c"}, None, text=draw(text)
        )
    else:
        update["message_reaction"] = {
            "chat": chat,
            "message_id": 1,
            "date": int(time.time()),
            "old_reaction": [],
            "new_reaction": [],
        }
    return update


@pytest.mark.telegram_refuses  # forged presses name messages that do not exist
@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "together"])
async def test_hostile_updates_break_nothing(database_url: str, together: bool) -> None:
    settings_ = make_settings(database_url, telegram={"rate_limit": False})
    app, api = await start_bot(settings_)
    errors: list[BaseException] = []

    async def record(update: object, context: Any) -> None:
        if not is_benign(context.error):  # e.g. editing a message Telegram no longer has
            errors.append(context.error)

    app.add_error_handler(record)
    if together:  # each example's updates arrive at once, as the fetcher hands them over
        await _run_examples(app, api, handle=_through_the_processor(app), together=True)
    else:
        await _run_examples(app, api)
    await stop_bot(app)
    assert errors == []
    assert not refused_but_forged(api), "every other call is one Telegram accepts"
    assert all(case.text_original for case in await cases_in(settings_))


def refused_but_forged(api: FakeBotAPI) -> list[tuple[str, str]]:
    """Calls Telegram would refuse, but edits of messages the bot never sent (forged presses
    name any message) and edits that change nothing (the bot takes both as done)."""
    forgiven = "Bad Request: message to edit not found"
    return [(call.method, why) for call, why in api.unmeant_refusals(forgiven)]


def _through_the_processor(app: Any) -> Callable[[Update], Awaitable[None]]:
    """Hand an update to the application's update processor, as PTB's fetcher does: on
    PostgreSQL several chats' updates are handled at once, each chat's in turn."""

    async def handle(update: Update) -> None:
        await app.update_processor.process_update(update, app.process_update(update))

    return handle


async def _run_examples(
    app: Any,
    api: FakeBotAPI,
    *,
    handle: Callable[[Update], Awaitable[None]] | None = None,
    examples: int = 150,
    together: bool = False,
) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(updates(), min_size=1, max_size=6))
    def scenario(batch: list[dict[str, Any]]) -> None:
        pending.append(batch)

    pending: list[list[dict[str, Any]]] = []
    scenario()
    handle = handle or app.process_update
    for batch in pending:
        updates_ = [Update.de_json(payload, app.bot) for payload in batch]
        if together:
            await asyncio.gather(*(handle(update) for update in updates_))
            continue
        for update in updates_:
            await handle(update)
