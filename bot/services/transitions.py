"""Moving a case through its lifecycle: one conditional update and one audit row per step."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.attributes import set_committed_value

from bot.jalali import utcnow
from models.db import dialect_of
from models.entities import Case, CaseEvent, CaseStatus

# The statuses whose first arrival is kept on the case itself, for the agencies' figures.
MILESTONES: dict[str, InstrumentedAttribute[datetime | None]] = {
    CaseStatus.FORWARDED: Case.forwarded_at,
    CaseStatus.ACCEPTED: Case.accepted_at,
    CaseStatus.RESOLVED: Case.resolved_at,
}


class TransitionRefusedError(Exception):
    """The case is not in a state that allows the step (someone else got there first)."""

    def __init__(self, status: str | None, actor_name: str | None) -> None:
        super().__init__(f"case is {status}")
        self.status = status
        self.actor_name = actor_name


class CaseMovedError(TransitionRefusedError):
    """The case went to another agency since the step was checked: the step was the former
    agency's to take, not the new one's."""


async def last_event(
    session: AsyncSession, case_id: int, *, named: bool = False
) -> CaseEvent | None:
    """The case's most recent audit row: one this transaction added and has not yet written,
    or else the newest written. `named`: the most recent with a person's name (staff or a
    coordinator; the reporter's steps and the system's are unnamed)."""
    pending = [
        e
        for e in session.new
        if isinstance(e, CaseEvent) and e.case_id == case_id and (e.actor_name or not named)
    ]
    if pending:
        return pending[-1]
    query = select(CaseEvent).where(CaseEvent.case_id == case_id)
    if named:
        query = query.where(CaseEvent.actor_name.is_not(None))
    return await session.scalar(query.order_by(CaseEvent.id.desc()).limit(1))


async def transition(
    session: AsyncSession,
    *,
    case_id: int,
    allowed_from: Collection[str],
    to: str,
    actor_id: int | None,
    actor_name: str | None,
    note: str | None = None,
    now: datetime | None = None,
    held_by: str | None = None,
    **values: Any,
) -> str:
    """Compare-and-set the status; returns the status it left. Two people pressing at once:
    one update matches, the other raises TransitionRefusedError naming who won. `held_by`: an
    agency's step, taken only while the case is still at that agency (CaseMovedError if a
    coordinator rerouted it since the step was checked)."""
    now = now or utcnow()
    if milestone := MILESTONES.get(to):  # the first time only
        values[milestone.key] = func.coalesce(milestone, now)
    if to in (CaseStatus.FORWARDED, CaseStatus.REOPENED):  # the deadlines start again
        values["handed_over_at"] = now
    found: Any = None
    if dialect_of(session) == "postgresql":
        # One statement: the row locked and read as it stands, then changed only if its status
        # allows the step; the status it left comes back. Another step on the case waits for
        # the lock, then reads the status this one left.
        before = (
            select(Case.id, Case.status, Case.agency_key)
            .where(Case.id == case_id)
            .with_for_update()
            .cte("before")
        )
        found = (
            await session.execute(
                update(Case)
                .where(
                    Case.id == before.c.id,
                    before.c.status.in_(list(allowed_from)),
                    true() if held_by is None else before.c.agency_key == held_by,
                )
                .values(status=to, updated_at=now, **values)
                .returning(before.c.status, before.c.agency_key)
                .execution_options(synchronize_session=False)
            )
        ).first()
    else:  # SQLite: one writer at a time, and no round trips to save
        read = (
            await session.execute(select(Case.status, Case.agency_key).where(Case.id == case_id))
        ).first()
        still_held = read is not None and (held_by is None or read[1] == held_by)
        if read is not None and read[0] in allowed_from and still_held:
            result = await session.execute(
                update(Case)
                .where(Case.id == case_id, Case.status == read[0])
                .values(status=to, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
            found = read if result.rowcount == 1 else None  # type: ignore[attr-defined]
    if found is None:
        latest = await last_event(session, case_id)
        now_at = (
            await session.execute(select(Case.status, Case.agency_key).where(Case.id == case_id))
        ).first()
        status, holder = (now_at[0], now_at[1]) if now_at is not None else (None, None)
        refusal = (
            CaseMovedError if held_by is not None and holder != held_by else TransitionRefusedError
        )
        raise refusal(status, latest.actor_name if latest else None)
    current, holder = found[0], found[1]
    _as_written(session, case_id, {"status": to, "updated_at": now, **values})
    session.add(
        CaseEvent(
            case_id=case_id, from_status=current, to_status=to,
            actor_id=actor_id, actor_name=actor_name, note=note, created_at=now,
            agency_key=values.get("agency_key", holder),
        )
    )  # fmt: skip
    return str(current)


def _as_written(session: AsyncSession, case_id: int, values: dict[str, Any]) -> None:
    """The case as this session holds it takes the values the update wrote, as if read back
    (the update bypasses the session): what follows reads them without another statement.
    A value the database computes (a milestone's first time) is left as it was."""
    case = session.identity_map.get(session.identity_key(Case, case_id))
    if not isinstance(case, Case):
        return
    for key, value in values.items():
        if not isinstance(value, ColumnElement):
            set_committed_value(case, key, value)
