"""Bale answers an edit with a stub of the message (no date, no chat): the edit was made, and
the bot must take it so, or every button that edits its message ends in an error."""

from __future__ import annotations

import json
from typing import Any

from bot.bale import BaleCalls, BaleRequest, edit_stub_as_done
from bot.config import Settings, load_settings
from tests.conftest import EXAMPLE_CONFIG, Bot, make_settings
from tests.fakebot import ApiCall, FakeBotAPI, start_bot, stop_bot
from tests.test_agency import MUNICIPALITY, add_staff, one_case, report

STUB = {"message_id": 5, "text": "x"}


def answer(result: object) -> bytes:
    return json.dumps({"ok": True, "result": result}).encode()


def test_an_edits_stub_is_read_as_done_and_nothing_else_changes() -> None:
    assert json.loads(edit_stub_as_done("editMessageText", answer(STUB)))["result"] is True
    full = answer({**STUB, "date": 1, "chat": {"id": 1, "type": "private"}})
    assert edit_stub_as_done("editMessageText", full) == full
    assert edit_stub_as_done("sendMessage", answer(STUB)) == answer(STUB)
    refused = json.dumps({"ok": False, "error_code": 400, "description": "x"}).encode()
    assert edit_stub_as_done("editMessageReplyMarkup", refused) == refused
    assert edit_stub_as_done("editMessageText", b"not json") == b"not json"


def test_bale_deployments_use_the_request_that_reads_stubs() -> None:
    from bot.app import default_builder

    settings = load_settings(
        EXAMPLE_CONFIG,
        environ={
            "MAHALLE_BOT_TOKEN": "7012345678:AAHk9dQ2rXv_4mZpLw8sT3uYbN1cE6fG0jI",
            "MAHALLE_DATABASE_URL": "sqlite+aiosqlite://",
        },
    )
    bale = settings.telegram.model_copy(update={"platform": "bale"})
    settings = settings.model_copy(update={"telegram": bale})
    builder: Any = default_builder(settings)
    assert isinstance(builder._request, BaleRequest)
    assert isinstance(builder._get_updates_request, BaleRequest)


class StubbingFake(FakeBotAPI):
    """Bale's way: an edit is made, and answered with a stub of the message."""

    def answer(self, call: ApiCall) -> tuple[int, dict[str, Any]]:
        code, payload = super().answer(call)
        if call.method.startswith("edit") and code == 200 and isinstance(payload["result"], dict):
            payload = {**payload, "result": {"message_id": payload["result"]["message_id"]}}
        return code, payload


class BaleFake(BaleCalls, StubbingFake):
    """The stubbing server behind the request class a Bale deployment uses."""


async def test_a_clerks_press_works_when_edits_answer_with_stubs(database_url: str) -> None:
    settings: Settings = make_settings(database_url, telegram={"rate_limit": False})
    api = BaleFake()
    app, _ = await start_bot(settings, api)
    bot = Bot(app, api)
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    calls = await clerk.press("پذیرش")
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "در دست بررسی" in edit.text
    assert (await one_case(settings)).status == "accepted"
    assert "پذیرفت" in resident.last_text
    assert not any("مشکلی پیش آمد" in c.text for c in api.calls)
    await stop_bot(app)
