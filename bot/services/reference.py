"""Loading the county's places, agencies and domains from the config into the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, text, update
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
    key = await session.scalar(
        select(District.county_key)
        .join(Neighbourhood, Neighbourhood.district_id == District.id)
        .where(Neighbourhood.id == neighbourhood_id)
    )
    return key or SINGLE_COUNTY


async def agency_for(session: AsyncSession, *, county_key: str, domain_key: str) -> Agency | None:
    """The county's agency for a domain."""
    domain = await session.get(Domain, domain_key)
    if domain is None:
        return None
    return await session.scalar(
        select(Agency).where(Agency.county_key == county_key, Agency.kind == domain.agency_kind)
    )


def neighbourhoods_of_county(county_key: str) -> Select[Any]:
    """A subquery of the ids of a county's neighbourhoods, for scoping cases and people."""
    return (
        select(Neighbourhood.id)
        .join(District, District.id == Neighbourhood.district_id)
        .where(District.county_key == county_key)
    )
