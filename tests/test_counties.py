"""Several counties in one deployment: each with its own places, agencies, coordinators and
council; a coordinator sees and reaches only their county; a one-county config is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ConfigError, CountySettings, DistrictSettings, Settings, load_settings
from bot.services.reference import agency_for, sync_reference_data
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, EXAMPLE_CONFIG, Bot, agency_chat
from tests.conftest import make_settings as one_county_settings
from tests.fakebot import ChatUser, agencies_like, alerts, start_bot, stop_bot, texts
from tests.test_broadcast import add_residents, compose, wait_for_campaigns
from tests.test_desk import apply_for_group
from tests.test_report_flow import DESCRIPTION, cases_in, confirm_report

REY_COORDINATOR, REY_CHAT, REY_COUNCIL = 9101, -100901, -100902
UNSURE = "سلام، یه سوال داشتم درباره این ربات و اینکه چطوری کار میکنه"


def title(stats_text: str) -> str:
    """The first line of the figures, which ends with the number of reports."""
    return stats_text.splitlines()[0]


def rey_agency_chat(index: int) -> int:
    return -100200 - index


def two_counties(database_url: str) -> Settings:
    """The test deployment (Tehran, key "main") plus the county of Rey with its own everything."""
    settings = one_county_settings(database_url, telegram={"rate_limit": False})
    tehran = settings.counties[0]
    rey = CountySettings(
        key="rey",
        name="شهرستان ری",
        coordinators=[REY_COORDINATOR],
        coordinator_chat_id=REY_CHAT,
        council_chat_id=REY_COUNCIL,
        bounding_box={"min_lat": 35.4, "min_lon": 51.3, "max_lat": 35.6, "max_lon": 51.6},
        districts=[
            DistrictSettings(
                key="rey-1",
                name="بخش مرکزی ری",
                neighbourhoods=[
                    {"key": "rey-ebnbabooyeh", "name": "ابن‌بابویه"},
                    {"key": "rey-dolatabad", "name": "دولت‌آباد"},
                ],
            )
        ],
        agencies=agencies_like(tehran, "rey", "ری", rey_agency_chat),
    )
    return settings.model_copy(update={"counties": [tehran, rey]})


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Bot]:
    app, api = await start_bot(two_counties(database_url))
    yield Bot(app, api)
    await stop_bot(app)


async def report_in(resident: ChatUser, place: str, text: str = DESCRIPTION) -> list[str]:
    """File a report in a neighbourhood picked by typing its name."""
    await resident.send("📝 گزارش جدید")
    await resident.send(place)
    await resident.press(place)
    await resident.send(text)
    await resident.send("ادامه ⬅️")
    await resident.send("🙈 ناشناس بمانم")
    return texts(await confirm_report(resident))


# --- configuration -----------------------------------------------------------------------------


def _config_with(tmp_path: Path, county_block: str) -> Path:
    """The example's domains with the given [[counties]] section(s) instead of [county]."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    domains = text[text.index("\n[[domains]]\n") :]
    path = tmp_path / "config.toml"
    path.write_text(county_block + "\n" + domains, encoding="utf-8")
    return path


AGENCY_KINDS = [
    "municipality",
    "utilities",
    "police",
    "welfare-org",
    "women-family",
    "propaganda",
    "health-network",
    "relief-committee",
    "education",
    "basij-sara",
    "secretariat",
]


def _county_block(key: str, *, leave_out: str | None = None) -> str:
    agencies = "".join(
        f'[[counties.agencies]]\nkey = "{key}-{kind}"\nkind = "{kind}"\nname = "اداره {kind}"\n'
        for kind in AGENCY_KINDS
        if kind != leave_out
    )
    return (
        f'[[counties]]\nkey = "{key}"\nname = "شهرستان {key}"\n'
        f'[[counties.districts]]\nkey = "{key}-d1"\nname = "منطقه یک"\n'
        f'neighbourhoods = [{{ key = "{key}-n1", name = "محله {key}" }}]\n' + agencies
    )


def test_one_county_config_is_one_county_named_main() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={})
    assert [county.key for county in settings.counties] == ["main"]
    assert settings.case_filter_county("main") is None, "nothing to narrow with one county"


def test_several_counties_load_and_each_needs_every_agency(tmp_path: Path) -> None:
    settings = load_settings(
        _config_with(tmp_path, _county_block("varamin") + _county_block("rey")), environ={}
    )
    assert [county.key for county in settings.counties] == ["varamin", "rey"]
    assert settings.counties[1].agency_for("police").key == "rey-police"  # type: ignore[union-attr]
    broken = _config_with(
        tmp_path, _county_block("varamin") + _county_block("rey", leave_out="police")
    )
    with pytest.raises(ConfigError, match="unknown agency 'police' in county 'rey'"):
        load_settings(broken, environ={})


def test_both_forms_at_once_or_repeated_keys_are_refused(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8") + "\n" + _county_block("rey")
    both = tmp_path / "both.toml"
    both.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="either \\[county\\] or \\[\\[counties\\]\\]"):
        load_settings(both, environ={})
    twice = _config_with(tmp_path, _county_block("rey") + _county_block("rey"))
    with pytest.raises(ConfigError, match="keys must be unique, repeated: rey"):
        load_settings(twice, environ={})


# --- routing -----------------------------------------------------------------------------------


async def test_a_report_goes_to_the_agency_of_its_own_county(bot: Bot, settings: Settings) -> None:
    await report_in(bot.user(1001), "دولت‌آباد")
    await report_in(bot.user(1002), "یوسف‌آباد")
    rey_cards = [c for c in bot.api.to_chat(rey_agency_chat(0)) if c.method == "sendMessage"]
    tehran_cards = [c for c in bot.api.to_chat(agency_chat(0)) if c.method == "sendMessage"]
    assert len(rey_cards) == 1 and "دولت‌آباد" in rey_cards[0].text
    assert len(tehran_cards) == 1 and "یوسف‌آباد" in tehran_cards[0].text
    rey_case = next(c for c in await cases_in(settings) if c.reporter_id == 1001)
    assert rey_case.agency_key == "rey-municipality"


async def test_unsure_reports_queue_with_their_own_countys_coordinators(bot: Bot) -> None:
    await report_in(bot.user(1001), "ابن‌بابویه", UNSURE)
    assert [c.method for c in bot.api.to_chat(REY_CHAT)].count("sendMessage") == 1
    assert bot.api.to_chat(COORDINATOR_CHAT) == [], "Tehran's coordinators never see it"
    tehran = bot.in_group(COORDINATOR, REY_CHAT, "هماهنگ‌کننده تهران")
    assert alerts(await tehran.press("مشارکت و پیشنهاد")), "another county's coordinator is refused"
    rey = bot.in_group(REY_COORDINATOR, REY_CHAT, "هماهنگ‌کننده ری")
    await rey.press("مشارکت و پیشنهاد")
    assert len(bot.api.to_chat(rey_agency_chat(9))) == 1, "placed with Rey's own agency"


async def test_a_location_is_checked_against_its_own_countys_box(bot: Bot) -> None:
    resident = bot.user(1001)
    await resident.send("📝 گزارش جدید")
    await resident.send("دولت‌آباد")
    await resident.press("دولت‌آباد")
    await resident.send(DESCRIPTION)
    assert "بیرون" in texts(await resident.send_location(35.75, 51.40))[0], "Tehran is not Rey"
    assert "بیرون" not in texts(await resident.send_location(35.58, 51.44))[0]


# --- the coordinator's desk --------------------------------------------------------------------


async def test_figures_and_broadcasts_stay_within_the_coordinators_county(
    bot: Bot, settings: Settings
) -> None:
    await report_in(bot.user(1001), "دولت‌آباد")
    await report_in(bot.user(1002), "یوسف‌آباد")
    await report_in(bot.user(1003), "یوسف‌آباد")
    rey = bot.user(REY_COORDINATOR)
    assert title(texts(await rey.send("/stats"))[0]).endswith("— ۱ گزارش")
    assert title(texts(await bot.user(COORDINATOR).send("/stats"))[0]).endswith("— ۲ گزارش")

    await add_residents(settings, 4, first_id=100_000, neighbourhood_key="rey-dolatabad")
    await add_residents(settings, 6, first_id=200_000, neighbourhood_key="d06-jahad")
    preview = texts(await compose(rey, "همهٔ مشترکان"))
    assert "۵ نفر" in preview[-1], "Rey's 4 residents and the one who reported there"
    await rey.press("ارسال")
    await wait_for_campaigns(bot)
    assert all(bot.api.delivered(100_000 + n) for n in range(4))
    assert not any(bot.api.delivered(200_000 + n) for n in range(6)), "Tehran's residents untouched"


async def test_weekly_reports_go_to_each_council_with_its_own_figures(bot: Bot) -> None:
    from bot.jalali import utcnow
    from bot.pipeline import send_weekly_report
    from bot.services.stats import week_start

    await report_in(bot.user(1001), "دولت‌آباد")
    # The report goes on the Saturday morning after the week the case was filed in.
    saturday = week_start(utcnow()) + timedelta(days=7, hours=8)
    await send_weekly_report(bot.jobs.bot, bot.jobs_runtime, now=saturday)
    rey_text = [c.text for c in bot.api.to_chat(REY_COUNCIL) if c.method == "sendMessage"]
    tehran_text = [c.text for c in bot.api.to_chat(COORDINATOR_CHAT) if c.method == "sendMessage"]
    assert title(rey_text[0]).endswith("— ۱ گزارش")
    assert title(tehran_text[0]).endswith("— ۰ گزارش")


async def test_an_export_holds_only_the_coordinators_county(bot: Bot) -> None:
    await report_in(bot.user(1001), "دولت‌آباد")
    await report_in(bot.user(1002), "یوسف‌آباد")
    [document] = [c for c in await bot.user(REY_COORDINATOR).send("/export") if c.files]
    lines = document.files["document"][1].decode("utf-8-sig").splitlines()
    assert len(lines) == 2 and "دولت‌آباد" in lines[1], "the header and Rey's one case"


async def test_an_agency_replaced_in_the_config_no_longer_receives_cases(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    county = settings.counties[0]
    replaced = [
        a.model_copy(update={"key": "municipality-2", "kind": "municipality"})
        if a.key == "municipality"
        else a
        for a in county.agencies
    ]
    changed = settings.model_copy(
        update={"counties": [county.model_copy(update={"agencies": replaced})]}
    )
    async with session_factory() as session:
        await sync_reference_data(session=session, settings=changed)
        agency = await agency_for(session, county_key="main", domain_key="municipal")
    assert agency is not None and agency.key == "municipality-2"


async def test_a_group_is_approved_only_by_its_own_countys_coordinators(bot: Bot) -> None:
    founder = bot.user(1101)
    await apply_for_group(founder, "دوستداران محیط زیست ری", "دولت‌آباد")
    assert [m for m in bot.api.delivered(REY_CHAT) if "تشکل" in m.text], "Rey's desk hears"
    assert not bot.api.delivered(COORDINATOR_CHAT), "Tehran's does not"
    tehran = bot.in_group(COORDINATOR, REY_CHAT, "هماهنگ‌کننده تهران")
    assert alerts(await tehran.press("تأیید")), "another county's coordinator is refused"
    assert "تأیید شد" not in founder.last_text
    await bot.in_group(REY_COORDINATOR, REY_CHAT, "هماهنگ‌کننده ری").press("تأیید")
    assert "تأیید شد" in founder.last_text
