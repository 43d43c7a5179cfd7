"""Who a coordinator may block and let back in: only their own county's people, never the
council's members named in the config; nothing changes when refused."""

from __future__ import annotations

from tests.conftest import COORDINATOR
from tests.fakebot import ChatUser, start_bot, stop_bot, texts
from tests.test_council import SECRETARY, with_council
from tests.test_counties import REY_COORDINATOR, report_in, two_counties
from tests.test_rules import _ban_events, _banned


async def test_another_countys_coordinator_cannot_lift_a_block(database_url: str) -> None:
    """Tehran's coordinator blocks an abusive Tehran resident; Rey's coordinator, who could not
    have blocked them (not of Rey), must not be able to let them back in either."""
    settings = two_counties(database_url)
    app, api = await start_bot(settings)
    try:
        abuser = ChatUser(app, api, 1001)
        await report_in(abuser, "یوسف‌آباد")
        tehran, rey = ChatUser(app, api, COORDINATOR), ChatUser(app, api, REY_COORDINATOR)
        assert "مسدود شد" in texts(await tehran.send("/block 1001"))[0]
        answer = texts(await rey.send("/unblock 1001"))[0]
        assert "از مسدودی درآمد" not in answer, answer
        assert "شهرستان" in answer
        assert await _banned(settings) == {1001}
        assert await _ban_events(settings) == [(1001, True, COORDINATOR)]
        assert texts(await abuser.send("/start")) == [], "still ignored"
    finally:
        await stop_bot(app)


async def test_a_council_member_named_in_the_config_cannot_be_blocked(database_url: str) -> None:
    """Coordinators, named in the config, cannot be blocked (the config is where they are
    removed); the council's secretary is named there too. A coordinator's /block of the
    secretary's id (a mistyped id, or a quarrel) must not silence the council's desk."""
    settings = with_council(database_url)
    app, api = await start_bot(settings)
    try:
        secretary = ChatUser(app, api, SECRETARY)
        await secretary.send("/start")
        answer = texts(await ChatUser(app, api, COORDINATOR).send(f"/block {SECRETARY}"))[0]
        assert "مسدود شد" not in answer, answer
        assert await _banned(settings) == set()
        said = texts(await secretary.send("/meeting"))
        assert said and "تاریخ جلسهٔ بعدی" in said[0], "the secretary still sets the meeting"
    finally:
        await stop_bot(app)


async def test_a_second_block_says_the_person_was_blocked_already(database_url: str) -> None:
    """Blocking someone blocked already says so, and records nothing more."""
    settings = two_counties(database_url)
    app, api = await start_bot(settings)
    try:
        await report_in(ChatUser(app, api, 1001), "یوسف‌آباد")
        tehran = ChatUser(app, api, COORDINATOR)
        assert "مسدود شد" in texts(await tehran.send("/block 1001"))[0]
        [again] = texts(await tehran.send("/block ۱۰۰۱"))
        assert "پیش‌تر مسدود" in again and "۱۰۰۱" in again, again
        assert await _ban_events(settings) == [(1001, True, COORDINATOR)]
    finally:
        await stop_bot(app)
