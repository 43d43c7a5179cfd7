"""Services against a real session: reference data, search, submitting, and who sees what."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.jalali import TrackingCode
from bot.services import cases, places
from bot.services.drafts import ReportDraft, load_draft, save_draft
from bot.services.reference import sync_reference_data
from bot.services.users import get_or_create_user
from models.entities import Case, CaseEvent, Neighbourhood

Sessions = async_sessionmaker[AsyncSession]


async def _place(session: AsyncSession, key: str) -> Neighbourhood:
    return (await session.scalars(select(Neighbourhood).where(Neighbourhood.key == key))).one()


async def _draft_for(
    session: AsyncSession, user_id: int, text: str = "آسفالت خیابان خراب شده است"
) -> ReportDraft:
    await get_or_create_user(session=session, user_id=user_id, language="fa")
    place = await _place(session, "d06-jahad")
    draft = ReportDraft(neighbourhood_id=place.id, text=text)
    await save_draft(session=session, user_id=user_id, draft=draft)
    return draft


async def test_reference_sync_is_idempotent_and_renames_keep_rows(
    session_factory: Sessions, settings: Settings
) -> None:
    async with session_factory() as session:
        before = await _place(session, "d06-jahad")
        count = await session.scalar(select(func.count()).select_from(Neighbourhood))
    district = settings.counties[0].districts[0]
    renamed = district.neighbourhoods[2].model_copy(update={"name": "جهاد (میدان فاطمی)"})
    changed_district = district.model_copy(
        update={
            "neighbourhoods": [*district.neighbourhoods[:2], renamed, *district.neighbourhoods[4:]]
        }
    )
    county = settings.counties[0].model_copy(
        update={"districts": [changed_district, *settings.counties[0].districts[1:]]}
    )
    async with session_factory() as session:
        await sync_reference_data(
            session=session, settings=settings.model_copy(update={"counties": [county]})
        )
    async with session_factory() as session:
        after = await _place(session, "d06-jahad")
        dropped = await _place(session, "d06-nosrat")
        assert await session.scalar(select(func.count()).select_from(Neighbourhood)) == count
    assert (after.id, after.name) == (before.id, "جهاد (میدان فاطمی)")
    assert not dropped.active, "a place removed from the config is hidden, not deleted"


async def test_search_tolerates_arabic_letters_missing_zwnj_and_typos(
    session_factory: Sessions,
) -> None:
    async with session_factory() as session:
        for typed, expected in [
            ("يوسف اباد", "یوسف‌آباد"),
            ("یوسفآباد", "یوسف‌آباد"),
            ("قزلقلعه", "قزل‌قلعه"),
            ("ولی عصر", "ولیعصر"),
            ("نظام اباد", "نظام‌آباد"),
            ("امیر آبات", "امیرآباد"),  # typo
            ("شیخهادی", "شیخ هادی"),
        ]:
            found = await places.search_neighbourhoods(session=session, typed=typed)
            assert found, typed
            assert found[0].name == expected, (typed, [p.name for p in found])
        assert await places.search_neighbourhoods(session=session, typed="پاریس") == []


# Few letters, so that typed text and names share many and the bound is tested near its edge.
few_letters = st.text(alphabet="ابدسفیوک ", min_size=2, max_size=14)


@hypothesis.settings(max_examples=2000, deadline=None)
@given(typed=few_letters, name=few_letters)
@hypothesis.example(typed="ونکشم", name="ونک")  # more typed than the name holds: 0.75
@hypothesis.example(typed="یوسفاباد", name="یوسفابادشمالی")
def test_names_passed_over_in_search_could_not_have_matched(typed: str, name: str) -> None:
    """Search skips a name on a letter count alone; never one that would have been offered."""
    if places._similarity(typed, name) >= places.MATCH_THRESHOLD:
        assert places._may_match(typed, name)


async def test_neighbourhood_pages_cover_the_district(session_factory: Sessions) -> None:
    async with session_factory() as session:
        [d06, _] = await places.list_districts(session=session)
        first, pages = await places.neighbourhood_page(
            session=session, district_id=d06.id, page=0, page_size=8
        )
        last, _ = await places.neighbourhood_page(
            session=session, district_id=d06.id, page=pages - 1, page_size=8
        )
    assert pages == 3 and len(first) == 8 and len(last) == 2


async def test_sequences_count_per_jalali_year_and_confirming_twice_is_one_case(
    session_factory: Sessions,
) -> None:
    late_1404 = datetime(2026, 3, 20, 20, 0, tzinfo=UTC)
    early_1405 = late_1404 + timedelta(hours=1)
    codes = []
    async with session_factory() as session:
        for user_id, moment in [(1, late_1404), (2, early_1405), (3, early_1405)]:
            draft = await _draft_for(session, user_id)
            submission = await cases.submit_report(
                session=session, reporter_id=user_id, draft=draft, now=moment
            )
            assert submission.created
            codes.append(submission.case.code)
        again = await cases.submit_report(
            session=session, reporter_id=3, draft=draft, now=early_1405
        )
        assert await load_draft(session=session, user_id=3) is None, (
            "the draft is gone once submitted"
        )
        events = await session.scalar(select(func.count()).select_from(CaseEvent))
    assert codes == ["1404-00001", "1405-00001", "1405-00002"]
    assert not again.created and again.case.code == "1405-00002"
    assert events == 3


async def test_hourly_limit_tells_how_long_to_wait(session_factory: Sessions) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with session_factory() as session:
        for minutes_ago in (50, 40, 10):
            draft = await _draft_for(session, 9)
            await cases.submit_report(
                session=session,
                reporter_id=9,
                draft=draft,
                now=now - timedelta(minutes=minutes_ago),
            )
        assert (
            await cases.minutes_until_allowed(session=session, reporter_id=9, limit=4, now=now) == 0
        )
        assert (
            await cases.minutes_until_allowed(session=session, reporter_id=9, limit=3, now=now)
            == 11
        )
        assert (
            await cases.minutes_until_allowed(
                session=session, reporter_id=9, limit=3, now=now + timedelta(minutes=11)
            )
            == 0
        )
        at_once = await cases.allowance(
            session=session, reporter_id=9, limit=3, limit_all=3, now=now - timedelta(minutes=9)
        )
        assert at_once == cases.Allowance(minutes=20, everyone_busy=False), "one in the minute"
        busy = await cases.allowance(
            session=session, reporter_id=8, limit=3, limit_all=1, now=now - timedelta(minutes=9)
        )
        assert busy == cases.Allowance(minutes=0, everyone_busy=True), "another's case counts"


async def test_a_code_is_taken_only_when_the_limits_allow(session_factory: Sessions) -> None:
    """The limits read and the code taken together: a filing refused by either limit uses up
    no code, and the next one allowed takes the next code."""
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with session_factory() as session:
        await cases.submit_report(
            session=session, reporter_id=9, draft=await _draft_for(session, 9), now=now
        )
        mine = await cases.take_code_if_allowed(
            session=session, reporter_id=9, limit=1, limit_all=10, now=now
        )
        everyone = await cases.take_code_if_allowed(
            session=session, reporter_id=8, limit=5, limit_all=1, now=now
        )
        allowed, code = await cases.take_code_if_allowed(
            session=session, reporter_id=8, limit=5, limit_all=2, now=now
        )
    assert mine == (cases.Allowance(minutes=61, everyone_busy=False), None)
    assert everyone == (cases.Allowance(minutes=0, everyone_busy=True), None)
    assert allowed == cases.Allowance(minutes=0, everyone_busy=False)
    assert code is not None and code.canonical == "1405-00002", "no code lost to a refusal"


async def test_a_reporter_sees_only_their_own_cases(session_factory: Sessions) -> None:
    async with session_factory() as session:
        mine = (
            await cases.submit_report(
                session=session, reporter_id=1, draft=await _draft_for(session, 1)
            )
        ).case
        theirs = (
            await cases.submit_report(
                session=session, reporter_id=2, draft=await _draft_for(session, 2)
            )
        ).case
        code = TrackingCode.from_canonical(theirs.code)
        assert (
            await cases.get_reporter_case(session=session, reporter_id=1, case_id=theirs.id) is None
        )
        assert await cases.get_reporter_case(session=session, reporter_id=1, code=code) is None
        found = await cases.get_reporter_case(session=session, reporter_id=1, case_id=mine.id)
        assert found is not None and [e.to_status for e in found.events] == ["submitted"]
        listed, total = await cases.list_reporter_cases(
            session=session, reporter_id=1, offset=0, limit=5
        )
    assert [c.id for c in listed] == [mine.id] and total == 1


def test_description_bounds_count_normalised_characters() -> None:
    assert cases.description_problem("خیـــــــــــلی بد") == ("short", 7)
    assert cases.description_problem("x" * 2001) == ("long", 2001)
    assert cases.description_problem("  " + "ب" * 10 + "  ") is None


async def test_processes_started_together_load_the_places_once(settings: Settings) -> None:
    import asyncio

    from models.db import create_engine, create_session_factory
    from models.entities import District

    if not settings.database.url.startswith("postgresql"):
        pytest.skip("SQLite deployments are one process")
    engines = [create_engine(settings.database.url) for _ in range(3)]  # two web, one worker

    async def start(engine: Any) -> None:
        async with create_session_factory(engine)() as session:
            await sync_reference_data(session=session, settings=settings)

    await asyncio.wait_for(asyncio.gather(*(start(engine) for engine in engines)), 120)
    async with create_session_factory(engines[0])() as session:
        districts = await session.scalar(select(func.count()).select_from(District))
    for engine in engines:
        await engine.dispose()
    assert districts == len(settings.counties[0].districts)


def test_presses_are_counted_per_person_and_window() -> None:
    from bot.windows import Windows

    now = [100.0]
    presses = Windows(10, clock=lambda: now[0])
    counts = [presses.count(7) for _ in range(3)]
    other = presses.count(8)
    now[0] += 9.9
    inside = presses.count(7)
    now[0] += 0.1
    after = presses.count(7)
    assert (counts, other, inside, after) == ([1, 2, 3], 1, 4, 1)
    presses.forget(7)
    assert 7 not in presses and presses.count(7) == 1


def test_windows_over_are_swept_out_as_new_ones_start() -> None:
    from bot.windows import Windows

    now = [0.0]
    messages = Windows(60, clock=lambda: now[0])
    for person in range(Windows.SWEEP_EVERY - 1):
        messages.count(person)
    now[0] = 61.0
    messages.count(-1)  # the sweep: every earlier window is over
    assert len(messages) == 1 and -1 in messages


async def test_confirm_pressed_twice_at_once_makes_one_case_and_no_error(
    session_factory: Sessions, database_url: str
) -> None:
    """Two processes take the same draft's confirm at the same moment: both get the one case."""
    if not database_url.startswith("postgresql"):
        pytest.skip("two transactions at once need PostgreSQL (SQLite takes one writer)")
    async with session_factory() as session:
        draft = await _draft_for(session, 7)

    async def confirm_in_own_session() -> cases.Submission:
        async with session_factory() as session:
            return await cases.submit_report(session=session, reporter_id=7, draft=draft)

    first, second = await asyncio.gather(confirm_in_own_session(), confirm_in_own_session())
    assert sorted([first.created, second.created]) == [False, True]
    assert first.case.code == second.case.code
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 1
