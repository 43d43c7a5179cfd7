"""Loading the county's places, agencies and domains from the config into the database, and
holding them in memory for the updates that read them.

Reference data changes only when a process starts and writes the config into the database
(`sync_reference_data`), so each process keeps a snapshot of it, one for each engine (a test
process has several databases), taken on first use and dropped by every sync: an update that
needs a neighbourhood's county or a domain's agency reads it from memory instead of querying.
The snapshot holds plain values, never ORM objects, so no session's state is shared.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import SINGLE_COUNTY, Settings
from bot.normalize import squash
from models.entities import Agency, District, Domain, Neighbourhood

REFERENCE_LOCK = 0x6D6168616C6C6572  # "mahaller"


async def sync_reference_data(*, session: AsyncSession, settings: Settings) -> None:
    """Upsert by key, so renames keep their rows; what left the config is hidden, not deleted."""
    if session.get_bind().dialect.name == "postgresql":
        # Processes started together take turns (held until the commit below).
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFERENCE_LOCK})
    await _sync_places(session=session, settings=settings)
    await _sync_agencies_and_domains(session=session, settings=settings)
    await session.commit()
    _snapshots.clear()  # every engine's: another one may be on the same database


@dataclass(frozen=True, slots=True)
class Place:
    """A neighbourhood as the snapshot holds it."""

    id: int
    search_key: str
    position: int
    active: bool
    county_key: str
    name: str
    district_name: str


@dataclass(frozen=True, slots=True)
class DistrictRow:
    """A district as the snapshot holds it."""

    id: int
    key: str
    name: str
    county_key: str
    position: int
    active: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The reference data an update reads: places by id, each domain's agency kind, and each
    county's agency of each kind."""

    places: dict[int, Place]
    districts: tuple[DistrictRow, ...]  # in config order
    domain_kinds: dict[str, str]
    domain_titles: dict[str, str]
    agency_keys: dict[tuple[str, str], str]


_snapshots: weakref.WeakKeyDictionary[Engine, Snapshot] = weakref.WeakKeyDictionary()


async def snapshot(session: AsyncSession) -> Snapshot:
    """This process's snapshot of the session's database, loaded on first use."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    held = _snapshots.get(engine)
    if held is not None:
        return held
    places = await session.execute(
        select(
            Neighbourhood.id,
            Neighbourhood.search_key,
            Neighbourhood.position,
            Neighbourhood.active,
            District.county_key,
            Neighbourhood.name,
            District.name,
        ).join(District, District.id == Neighbourhood.district_id)
    )
    districts = await session.execute(
        select(
            District.id, District.key, District.name, District.county_key, District.position,
            District.active,
        ).order_by(District.position, District.id)
    )  # fmt: skip
    domains = (await session.execute(select(Domain.key, Domain.agency_kind, Domain.title))).all()
    agencies = await session.execute(
        select(Agency.county_key, Agency.kind, Agency.key).order_by(Agency.key.desc())
    )
    held = Snapshot(
        places={row.id: Place(*row) for row in places},
        districts=tuple(DistrictRow(*row) for row in districts),
        domain_kinds={key: kind for key, kind, _ in domains},
        domain_titles={key: title for key, _, title in domains},
        # The first agency by key of a county and kind, as a query for one would find.
        agency_keys={(county, kind): key for county, kind, key in agencies},
    )
    _snapshots[engine] = held
    return held


async def _sync_places(*, session: AsyncSession, settings: Settings) -> None:
    districts = {d.key: d for d in (await session.scalars(select(District))).all()}
    neighbourhoods = {n.key: n for n in (await session.scalars(select(Neighbourhood))).all()}
    await session.execute(update(District).values(active=False))
    await session.execute(update(Neighbourhood).values(active=False))
    county_districts = [(c.key, d) for c in settings.counties for d in c.districts]
    for d_position, (county_key, district_cfg) in enumerate(county_districts):
        district = districts.get(district_cfg.key) or District(key=district_cfg.key)
        district.name, district.position, district.active = district_cfg.name, d_position, True
        district.county_key = county_key
        session.add(district)
        await session.flush()
        for n_position, place in enumerate(district_cfg.neighbourhoods):
            neighbourhood = neighbourhoods.get(place.key) or Neighbourhood(key=place.key)
            neighbourhood.name = place.name
            neighbourhood.search_key = squash(place.name)
            neighbourhood.district_id = district.id
            neighbourhood.position = n_position
            neighbourhood.active = True
            session.add(neighbourhood)


async def _sync_agencies_and_domains(*, session: AsyncSession, settings: Settings) -> None:
    # An agency that left the config stands for nothing (its old cases keep its name).
    await session.execute(update(Agency).values(kind=""))
    for county in settings.counties:
        for agency_cfg in county.agencies:
            agency = await session.get(Agency, agency_cfg.key) or Agency(key=agency_cfg.key)
            agency.name, agency.chat_id = agency_cfg.name, agency_cfg.chat_id
            agency.county_key, agency.kind = county.key, agency_cfg.role
            session.add(agency)
    await session.flush()
    for domain_cfg in settings.domains:
        domain = await session.get(Domain, domain_cfg.key) or Domain(key=domain_cfg.key)
        domain.title, domain.agency_kind = domain_cfg.title, domain_cfg.agency
        session.add(domain)


async def list_agencies(*, session: AsyncSession, county_key: str | None = None) -> list[Agency]:
    """Every agency (of one county, when given), by key."""
    query = select(Agency).order_by(Agency.key)
    if county_key is not None:
        query = query.where(Agency.county_key == county_key)
    return list((await session.scalars(query)).all())


async def county_of_neighbourhood(session: AsyncSession, neighbourhood_id: int) -> str:
    """The key of the county a neighbourhood lies in."""
    place = (await snapshot(session)).places.get(neighbourhood_id)
    return place.county_key if place is not None and place.county_key else SINGLE_COUNTY


async def domain_title(session: AsyncSession, domain_key: str | None) -> str | None:
    """A domain's title, or None when there is no such domain."""
    return (await snapshot(session)).domain_titles.get(domain_key) if domain_key else None


async def is_domain(session: AsyncSession, domain_key: str) -> bool:
    """Whether a domain of this key exists."""
    return domain_key in (await snapshot(session)).domain_kinds


async def agency_for(session: AsyncSession, *, county_key: str, domain_key: str) -> Agency | None:
    """The county's agency for a domain."""
    held = await snapshot(session)
    kind = held.domain_kinds.get(domain_key)
    key = held.agency_keys.get((county_key, kind)) if kind is not None else None
    return await session.get(Agency, key) if key is not None else None


def neighbourhoods_of_county(county_key: str) -> Select[Any]:
    """A subquery of the ids of a county's neighbourhoods, for scoping cases and people."""
    return (
        select(Neighbourhood.id)
        .join(District, District.id == Neighbourhood.district_id)
        .where(District.county_key == county_key)
    )
