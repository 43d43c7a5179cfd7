"""Districts and neighbourhoods: listing, paging and forgiving typed search."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from difflib import SequenceMatcher

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import BoundingBox, Settings
from bot.normalize import squash
from bot.services.reference import DistrictRow, Place, county_of_neighbourhood, snapshot
from models.entities import Neighbourhood

# Below this similarity a typed name is not offered as a match.
MATCH_THRESHOLD = 0.7


async def list_districts(
    *,
    session: AsyncSession,
    county_key: str | None = None,
    counties: Collection[str] | None = None,
) -> list[DistrictRow]:
    """Active districts (of one county, or of some, when given) in config order, from the
    process's reference data (bot/services/reference.py)."""
    return [
        district
        for district in (await snapshot(session)).districts
        if district.active
        and (county_key is None or district.county_key == county_key)
        and (counties is None or district.county_key in counties)
    ]


async def neighbourhood_page(
    *, session: AsyncSession, district_id: int, page: int, page_size: int
) -> tuple[list[Neighbourhood], int]:
    """One page of a district's active neighbourhoods, and how many pages there are."""
    where = (Neighbourhood.district_id == district_id, Neighbourhood.active)
    total = await session.scalar(select(func.count()).select_from(Neighbourhood).where(*where))
    pages = max(1, -(-(total or 0) // page_size))
    page = min(max(page, 0), pages - 1)
    query = (
        select(Neighbourhood)
        .where(*where)
        .order_by(Neighbourhood.position)
        .offset(page * page_size)
        .limit(page_size)
    )
    return list((await session.scalars(query)).all()), pages


async def get_neighbourhood(
    *, session: AsyncSession, neighbourhood_id: int, counties: Collection[str] | None = None
) -> Place | None:
    """An active neighbourhood (of the given counties, when given), or None (unknown id,
    removed from the config, or another bot's county); from the process's reference data."""
    place = (await snapshot(session)).places.get(neighbourhood_id)
    if place is None or not place.active:
        return None
    if counties is not None and place.county_key not in counties:
        return None
    return place


def served(place: Neighbourhood | None, counties: Collection[str] | None) -> bool:
    """Whether a place (its district loaded) is one of the counties a bot serves (None: all)."""
    return place is not None and (counties is None or place.district.county_key in counties)


def _may_match(typed: str, name: str) -> bool:
    """False only where `_similarity` must fall below MATCH_THRESHOLD: a ratio is 2·matched
    letters / (both lengths), and no stretch of the name matches more of what was typed than
    the letters the two share. Rules out most of a county's hundreds of names without a
    SequenceMatcher (~0.1 ms each, on the event loop)."""
    shared = (Counter(typed) & Counter(name)).total()
    return 2 * shared >= MATCH_THRESHOLD * (len(typed) + min(len(name), len(typed)))


def _similarity(typed: str, name: str) -> float:
    if typed in name:
        return 1.0 + len(typed) / max(len(name), 1)  # whole-substring hits first, closer first
    best = SequenceMatcher(None, typed, name).ratio()
    # Compare against every stretch of the name as long as what was typed, so a misspelt part of
    # a long name ("Yusef" for "Yousefabad") still scores high.
    width = len(typed)
    for start in range(max(len(name) - width + 1, 1)):
        best = max(best, SequenceMatcher(None, typed, name[start : start + width]).ratio())
    return best


async def search_neighbourhoods(
    *,
    session: AsyncSession,
    typed: str,
    limit: int = 6,
    county_key: str | None = None,
    counties: Collection[str] | None = None,
) -> list[Place]:
    """Neighbourhoods (of one county, when given) whose name matches what was typed, tolerant
    of letters, ZWNJ and typos; from the process's reference data."""
    wanted = squash(typed)
    if len(wanted) < 2:
        return []
    # Scored on the process's snapshot of the places; only the matches are loaded.
    places = (await snapshot(session)).places.values()
    scored = [
        (score, place)
        for place in places
        if place.active
        and (county_key is None or place.county_key == county_key)
        and (counties is None or place.county_key in counties)
        and _may_match(wanted, place.search_key)
        and (score := _similarity(wanted, place.search_key)) >= MATCH_THRESHOLD
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1].position))
    return [place for _, place in scored[:limit]]


async def bounding_box(
    *, session: AsyncSession, settings: Settings, neighbourhood_id: int | None
) -> BoundingBox | None:
    """The box a location shared for a report in this neighbourhood must fall in, if any."""
    if neighbourhood_id is None or len(settings.counties) == 1:
        return settings.counties[0].bounding_box
    county_key = await county_of_neighbourhood(session, neighbourhood_id)
    return settings.county_named(county_key).bounding_box
