"""A process handles several chats' updates at once, and each chat's one at a time, in order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from telegram import Update

from bot.persistence import SQLConversationPersistence
from tests.conftest import make_settings
from tests.fakebot import AnyApplication, ChatUser, FakeBotAPI, start_bot, stop_bot, wait_for
from tests.test_report_flow import cases_in

NEW_REPORT = "📝 گزارش جدید"
STEPS = [
    ("send", "📝 گزارش جدید"),
    ("send", "جهاد"),
    ("press", "جهاد"),
    ("send", None),  # the resident's own description
    ("send", "ادامه ⬅️"),
    ("send", "🙈 ناشناس بمانم"),
    ("press", "ثبت گزارش"),
]


def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite handles one update at a time")


class SlowChatAPI(FakeBotAPI):
    """The fake Bot API, slow to answer calls to the chats in `slow` (seconds each)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow: dict[int, float] = {}
        self.answered: dict[int, list[float]] = {}

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        request_data = args[0] if args else kwargs.get("request_data")
        chat_id = request_data.parameters.get("chat_id") if request_data else None
        if isinstance(chat_id, int) and chat_id in self.slow:
            await asyncio.sleep(self.slow[chat_id])
        answer = await super().do_request(url, method, *args, **kwargs)
        if isinstance(chat_id, int):
            self.answered.setdefault(chat_id, []).append(time.perf_counter())
        return answer


class FetchedUser(ChatUser):
    """A resident whose updates come through the process's update queue, as the webhook's do,
    and are handled by its update processor; each step waits for the bot to finish it."""

    async def _process(self, payload: dict[str, Any]) -> list[Any]:
        before = len(self.api.calls)
        payload["update_id"] = next(self._update_ids)
        await self.app.update_queue.put(Update.de_json(payload, self.app.bot))
        finished = self.app.bot_data["finished"]
        await wait_for(lambda: payload["update_id"] in finished, what="the update", seconds=20)
        return [c for c in self.api.calls[before:] if c.chat_id in (self.chat_id, None)]


async def _running(settings: Any, api: FakeBotAPI, role: str = "all") -> AnyApplication:
    """The bot with its update fetcher running, as behind the webhook; the ids of the updates
    it has finished with are in bot_data["finished"]."""
    app, _ = await start_bot(settings, api, role=role)
    handle, finished = app.process_update, set()

    async def handle_and_record(update: Any) -> None:
        await handle(update)
        finished.add(update.update_id)

    app.process_update = handle_and_record  # type: ignore[method-assign]
    app.bot_data["finished"] = finished
    await app.start()
    return app


def _asked_where(person: ChatUser) -> bool:
    """Whether the resident was asked where the problem is."""
    return any("نام محله را تایپ کنید" in call.text for call in person.api.to_chat(person.chat_id))


async def _stop(app: AnyApplication) -> None:
    await app.stop()
    await stop_bot(app)


async def test_a_slow_reply_to_one_chat_holds_up_no_other(database_url: str) -> None:
    _postgresql_only(database_url)
    api = SlowChatAPI()
    app = await _running(make_settings(database_url, telegram={"rate_limit": False}), api)
    slow, quick = ChatUser(app, api, 1001), ChatUser(app, api, 1002)
    api.slow[slow.chat_id] = 1.0  # Telegram takes a second to answer this chat
    started = time.perf_counter()
    await app.update_queue.put(slow.text_update("/start"))
    await app.update_queue.put(quick.text_update("/start"))
    await wait_for(lambda: quick.chat_id in api.answered, what="the other chat's answer")
    assert api.answered[quick.chat_id][0] - started < 0.5, "answered without waiting"
    await wait_for(lambda: slow.chat_id in api.answered, what="the slow chat's answer")
    await _stop(app)


async def test_a_chats_updates_are_handled_in_the_order_they_came(database_url: str) -> None:
    api = SlowChatAPI()
    app = await _running(make_settings(database_url, telegram={"rate_limit": False}), api)
    resident = ChatUser(app, api, 1001)
    api.slow[resident.chat_id] = 0.3
    await app.update_queue.put(resident.text_update("/start"))
    await app.update_queue.put(resident.text_update("/help"))
    await wait_for(lambda: len(api.answered.get(1001, [])) >= 2, what="both answers", seconds=10)
    first, second = api.to_chat(1001)[:2]
    assert "/start" not in first.text and first.text != second.text
    welcome = (await _answer_alone(database_url, "/start"))[0]
    assert first.text == welcome, "the first message is answered first"
    await _stop(app)


async def _answer_alone(database_url: str, text: str) -> list[str]:
    """What the bot answers a new resident's `text`, one update at a time."""
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    calls = await ChatUser(app, api, 3003).send(text)
    await stop_bot(app)
    return [call.text for call in calls if call.method == "sendMessage"]


@pytest.mark.parametrize("role", ["all", "web"])
async def test_residents_reporting_at_once_each_keep_their_own_report(
    database_url: str, role: str
) -> None:
    if role == "web":
        _postgresql_only(database_url)
    settings = make_settings(
        database_url, telegram={"rate_limit": False}, bot={"reports_per_hour": 100}
    )
    api = SlowChatAPI()
    app = await _running(settings, api, role)
    residents = [FetchedUser(app, api, 5000 + n, deliver=False) for n in range(12)]
    for person in residents[::3]:
        api.slow[person.chat_id] = 0.05  # some chats answered slower, to mix the order up

    async def report(person: FetchedUser) -> None:
        for kind, value in STEPS:
            text = value or f"چراغ کوچهٔ شمارهٔ {person.user_id} یک هفته است خاموش است"
            await (person.send(text) if kind == "send" else person.press(text))
        if "من هم همین مشکل" in person.last_text:  # a neighbour's case reads the same
            await person.press("ثبت گزارش خودم")

    await asyncio.gather(*(report(person) for person in residents))
    await _stop(app)
    cases = await cases_in(settings)
    assert sorted(case.text_original for case in cases) == sorted(
        f"چراغ کوچهٔ شمارهٔ {person.user_id} یک هفته است خاموش است" for person in residents
    ), "one case each, with the resident's own description"


async def test_a_step_is_saved_with_its_own_update_whichever_update_writes_it_out(
    database_url: str,
) -> None:
    _postgresql_only(database_url)
    api = SlowChatAPI()
    app = await _running(make_settings(database_url, telegram={"rate_limit": False}), api, "web")
    persistence = app.persistence
    assert isinstance(persistence, SQLConversationPersistence)
    hand_over, commit = persistence.update_conversation, persistence.write_held
    busy = asyncio.Event()
    first, second, third = (ChatUser(app, api, user_id) for user_id in (3003, 1001, 2002))

    async def slow_hand_over(**state: Any) -> None:  # the states wait behind the first's
        if state["key"] == (first.chat_id, first.user_id):
            busy.set()
            await asyncio.sleep(0.5)
        await hand_over(**state)

    async def slow_commit(unit: Any, **options: Any) -> None:  # the second's update is slow
        if ("resident", (second.chat_id, second.user_id)) in unit.held_states:
            await asyncio.sleep(1.0)
        await commit(unit, **options)

    persistence.update_conversation = slow_hand_over  # type: ignore[method-assign,assignment]
    persistence.write_held = slow_commit  # type: ignore[method-assign]
    await app.update_queue.put(first.text_update(NEW_REPORT))
    await asyncio.wait_for(busy.wait(), 5)
    # Both wait for the first's states to be handed over; the second's update, first in line,
    # then hands over the third's state too, and the third answers at once.
    await app.update_queue.put(second.text_update(NEW_REPORT))
    await wait_for(lambda: _asked_where(second), what="the second asked where")
    await app.update_queue.put(third.text_update(NEW_REPORT))
    await app.update_queue.put(third.text_update("جهاد"))
    await wait_for(
        lambda: any("جهاد" in label for label in third.button_labels()), what="the neighbourhood"
    )
    await _stop(app)
