"""People find their way without knowing the bot's words: a resident's own code typed as people
type it, a problem typed before «📝 گزارش جدید», and a council member's help and menu."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.digits import ltr, persian_digits
from bot.menus import COUNCIL_COMMANDS, SECRETARY_COMMANDS, menus
from tests.conftest import Bot
from tests.fakebot import ChatUser, start_bot, stop_bot, texts
from tests.test_agency import one_case, report
from tests.test_council import MEMBER, SECRETARY, with_council


@pytest.mark.parametrize("how", ["without the dash", "after کد", "copied from the bot"])
async def test_a_resident_typing_their_code_sees_their_case(
    bot: Bot, settings: Settings, how: str
) -> None:
    """«۱۴۰۵۰۰۰۰۱», «کد ۱۴۰۵-۰۰۰۰۱», or the code pasted from the bot's message with its
    direction marks: each shows the resident their case."""
    resident = bot.user()
    await report(resident)
    code = persian_digits((await one_case(settings)).code)
    typed = {
        "without the dash": code.replace("-", ""),
        "after کد": f"کد {code}",
        "copied from the bot": ltr(code),
    }[how]
    replies = texts(await resident.send(typed))
    assert replies and "وضعیت:" in replies[-1]


async def test_another_residents_code_is_not_found(bot: Bot, settings: Settings) -> None:
    """A code typed without its dash is still only its reporter's to see."""
    await report(bot.user(1001))
    code = persian_digits((await one_case(settings)).code).replace("-", "")
    [reply] = texts(await bot.user(1002).send(code))
    assert "وضعیت:" not in reply and "پیدا نشد" in reply


async def test_a_phone_number_is_not_taken_for_a_code(resident: ChatUser) -> None:
    """A mobile number typed at the menu is not looked up as a code."""
    await resident.send("/start")
    [reply] = texts(await resident.send("۰۹۱۲۱۲۳۴۵۶۷"))
    assert "پیدا نشد" not in reply and "گزارش جدید" in reply


async def test_a_problem_typed_before_new_report_is_pointed_to_new_report(
    resident: ChatUser,
) -> None:
    """Many people simply type their problem after /start: the answer says reporting starts
    with «📝 گزارش جدید»."""
    await resident.send("/start")
    [reply] = texts(await resident.send("سلام، سطل زباله سر کوچه ما سه روز است خالی نشده"))
    assert "«📝 گزارش جدید» را بزنید" in reply


async def test_council_members_help_names_their_commands(database_url: str, messenger: str) -> None:
    """A member's /help names /agenda and /stats; the secretary's also /meeting and /decision;
    a resident's help names none of them."""
    app, api = await start_bot(with_council(database_url))
    try:
        [member] = texts(await ChatUser(app, api, MEMBER).send("/help"))
        assert "/agenda" in member and "/stats" in member and "/decision" not in member
        [secretary] = texts(await ChatUser(app, api, SECRETARY).send("/help"))
        assert "/meeting" in secretary and "/decision" in secretary
        [resident] = texts(await ChatUser(app, api, 1001).send("/help"))
        assert "/agenda" not in resident
    finally:
        await stop_bot(app)


def test_council_members_get_their_own_command_menu(database_url: str) -> None:
    """Each member's private chat gets the council's menu, the secretary's with /meeting."""
    found = dict(menus(with_council(database_url)))
    assert found[MEMBER] is COUNCIL_COMMANDS and found[SECRETARY] is SECRETARY_COMMANDS
    assert "agenda" in COUNCIL_COMMANDS and "meeting" in SECRETARY_COMMANDS
