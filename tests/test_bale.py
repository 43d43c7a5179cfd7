"""Bale's differences from Telegram that the request class, the handlers and the limits absorb.

Every chat-level test runs on both messengers (tests/conftest.py); these check the differences
one by one: Markdown read in every message, the reply field, commands without entities, old
clients that show no button answers, groups with positive ids, and /agencies without admin
rights (in tests/test_desk.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from telegram import Update

from bot.bale import bale_parameters, shown_as_written, with_command_entities
from bot.config import Settings
from tests.conftest import Bot, make_settings
from tests.fakebot import (
    BALE,
    TELEGRAM,
    ChatUser,
    alerts,
    bot_side,
    speak,
    start_bot,
    stop_bot,
    texts,
)
from tests.test_agency import MUNICIPALITY, POLICE, add_staff, one_case, report

MARKED_UP = (
    "*فوری* سطل زباله سر کوچه سه روز است خالی نشده، _همین امروز_ تخلیه کنید."
    " [عکس‌ها این‌جاست](http://evil.example/x_y) `بوی بد` ~واقعاً~"
)


async def test_a_residents_markdown_shows_as_typed_on_the_agency_card(
    bot: Bot, settings: Settings
) -> None:
    """On Bale, whatever a resident types shows as typed: no bold, no link under their words."""
    await report(bot.user(), MARKED_UP)
    [card] = [m for m in bot.api.delivered(MUNICIPALITY) if "زباله" in m.text]
    assert card.links == [], "no link made of the resident's words"
    assert "http://evil.example/x_y" in card.text, "the address itself shows, as typed"
    if bot.api.dialect.markdown:
        assert "∗فوری∗" in card.text and "ˍهمین امروزˍ" in card.text and "ˋبوی بدˋ" in card.text
        assert "［عکس‌ها این‌جاست](http://evil.example/x_y)" in card.text
    else:
        assert MARKED_UP in card.text
    assert (await one_case(settings)).text_original == MARKED_UP, "kept as typed"


def test_bales_text_keeps_addresses_snake_case_and_brackets_alone() -> None:
    text = "chat_id را بنویسید: https://ble.ir/mahalle_bot?start=join_AB_cd [حذف‌شده] *x*"
    assert shown_as_written(text) == (
        "chat_id را بنویسید: https://ble.ir/mahalle_bot?start=join_AB_cd [حذف‌شده] ∗x∗"
    )


def test_bale_gets_reply_to_message_id_and_plain_captions() -> None:
    parameters: dict[str, Any] = {
        "chat_id": 5,
        "text": "_a_",
        "reply_parameters": {"message_id": 42},
    }
    assert bale_parameters("sendMessage", parameters) == {
        "text": "ˍaˍ",
        "reply_to_message_id": 42,
    }
    album = {"media": [{"type": "photo", "media": "P", "caption": "*b*"}, {"media": "Q"}]}
    assert bale_parameters("sendMediaGroup", album)["media"][0]["caption"] == "∗b∗"
    assert bale_parameters("sendPhoto", {"caption": "*c*"}) == {"caption": "∗c∗"}
    assert bale_parameters("answerCallbackQuery", {"text": "*d*"}) == {}


async def test_a_reply_under_the_card_is_threaded_by_the_field_each_messenger_reads(
    bot: Bot, settings: Settings
) -> None:
    """The reporter's answer goes under the card: on Bale by reply_to_message_id, the only
    reply field Bale documents (the fake threads by that field alone in Bale's dialect)."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1007)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply("کدام پلاک؟")
    await resident.press("پاسخ می‌دهم")
    await resident.send("پلاک ۱۲")
    case = await one_case(settings)
    [relay] = [m for m in bot.api.delivered(MUNICIPALITY) if "پلاک ۱۲" in m.text]
    assert relay.reply_to == case.card_message_id


def test_a_command_without_its_entity_is_given_one() -> None:
    from telegram import Bot as PTBBot

    from tests.fakebot import FAKE_TOKEN

    ptb_bot = PTBBot(FAKE_TOKEN)

    def update(text: str, **extra: Any) -> Update:
        message = {"message_id": 1, "date": 0, "chat": {"id": 7, "type": "private"}, "text": text}
        return Update.de_json({"update_id": 1, "message": {**message, **extra}}, ptb_bot)

    marked = with_command_entities(update("/start join_abc"), ptb_bot)
    assert isinstance(marked, Update) and marked.message is not None
    [entity] = marked.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    plain = update("/ نه فرمان")
    assert with_command_entities(plain, ptb_bot) is plain
    has_one = update("/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    assert with_command_entities(has_one, ptb_bot) is has_one


@pytest.mark.one_messenger
async def test_commands_from_bales_older_servers_work(database_url: str) -> None:
    """Commands come without their entity: /start and /cancel work all the same."""
    speak(BALE)
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    resident = ChatUser(app, api, 1001)
    assert "محله" in texts(await resident.send("/start"))[-1]
    assert "entities" not in api.calls[-1].params
    await resident.send("📝 گزارش جدید")
    assert "لغو" in texts(await resident.send("/cancel"))[-1]
    await stop_bot(app)


@pytest.mark.one_messenger
@pytest.mark.parametrize("old_clients", [True, False])
async def test_old_bale_clients_hear_a_buttons_answer_as_a_message(
    database_url: str, old_clients: bool
) -> None:
    """A press from an old Bale client (query id starting "1") cannot show the answer box: the
    presser gets it as a message, in their private chat. A newer client gets the box alone."""
    speak(dataclasses.replace(BALE, old_clients=old_clients))
    settings = make_settings(database_url, telegram={"rate_limit": False})
    app, api = await start_bot(settings)
    bot = Bot(app, api)
    await add_staff(settings, 2001, "police", "کریمی")
    resident = bot.user(1001)
    await report(resident)
    stranger = bot.in_group(2001, MUNICIPALITY, "کریمی")  # police staff in the wrong group
    pressed = await stranger.press("پذیرش")
    [box] = alerts(pressed)
    told = [m.text for m in api.delivered(2001)]
    assert (told == [box]) is old_clients and (told == []) is not old_clients
    forged = await resident.press_data("case:accept:1:forged")
    [stale] = alerts(forged)
    assert (stale in texts(forged)) is old_clients
    assert (await one_case(settings)).status == "forwarded", "nothing changed"
    await stop_bot(app)


@pytest.mark.one_messenger
async def test_telegram_press_ids_starting_with_1_are_not_old_clients(database_url: str) -> None:
    speak(dataclasses.replace(TELEGRAM, old_clients=True))
    app, api = await start_bot(make_settings(database_url, telegram={"rate_limit": False}))
    resident = ChatUser(app, api, 1001)
    await resident.send("/start")
    forged = await resident.press_data("case:accept:1:forged")
    assert alerts(forged) and texts(forged) == []
    await stop_bot(app)


async def test_agency_groups_are_groups_whatever_the_sign_of_their_id(bot: Bot) -> None:
    """Pacing and the flood limiter go by what a chat is: the config's groups, and groups
    updates show, with Bale's positive ids as with Telegram's negative ones."""
    groups = bot.app.bot_data["runtime"].groups
    assert bot_side(MUNICIPALITY) in groups and bot_side(POLICE) in groups
    assert 1001 not in groups
    newcomer = bot.in_group(2002, -100424242, "مدیر")
    assert bot_side(-100424242) not in groups or bot_side(-100424242) < 0
    await newcomer.send("/chatid")
    assert bot_side(-100424242) in groups
