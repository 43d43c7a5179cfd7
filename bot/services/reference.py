"""Loading the county's places, agencies and domains from the config into the database."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.normalize import squash
from models.entities import Agency, District, Domain, Neighbourhood


async def sync_reference_data(*, session: AsyncSession, settings: Settings) -> None:
    """Upsert by key, so renames keep their rows; what left the config is hidden, not deleted."""
    await _sync_places(session=session, settings=settings)
    await _sync_agencies_and_domains(session=session, settings=settings)
    await session.commit()


async def _sync_places(*, session: AsyncSession, settings: Settings) -> None:
    districts = {d.key: d for d in (await session.scalars(select(District))).all()}
    neighbourhoods = {n.key: n for n in (await session.scalars(select(Neighbourhood))).all()}
    await session.execute(update(District).values(active=False))
    await session.execute(update(Neighbourhood).values(active=False))
    for d_position, district_cfg in enumerate(settings.county.districts):
        district = districts.get(district_cfg.key) or District(key=district_cfg.key)
        district.name, district.position, district.active = district_cfg.name, d_position, True
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
    for agency_cfg in settings.agencies:
        agency = await session.get(Agency, agency_cfg.key) or Agency(key=agency_cfg.key)
        agency.name, agency.chat_id = agency_cfg.name, agency_cfg.chat_id
        session.add(agency)
    await session.flush()
    for domain_cfg in settings.domains:
        domain = await session.get(Domain, domain_cfg.key) or Domain(key=domain_cfg.key)
        domain.title, domain.agency_key = domain_cfg.title, domain_cfg.agency
        session.add(domain)


async def list_agencies(*, session: AsyncSession) -> list[Agency]:
    """Every agency, by key."""
    return list((await session.scalars(select(Agency).order_by(Agency.key))).all())
