"""Sending side by side: several lanes of sends, and a send that a stop lets finish.

Used by the outbox and broadcast senders: each runs `sends_at_once` lanes, each lane one send
(claim, call, record, in one transaction) after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def run_lanes(lanes: list[Coroutine[Any, Any, None]]) -> None:
    """Run the lanes until each ends. If one fails or the caller is stopped, the others are
    stopped too, each after the send it lets finish (`to_the_end`), and the failure is raised.
    (Not gather: stopped, it returns at the first lane's end, while the others still send.)"""
    running = [asyncio.ensure_future(lane) for lane in lanes]
    try:
        await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for lane in running:
            lane.cancel()
        await asyncio.wait(running)
    for lane in running:
        if not lane.cancelled() and (error := lane.exception()) is not None:
            raise error


async def to_the_end(step: Coroutine[Any, Any, T]) -> T:
    """Await `step`; if the caller is stopped meanwhile, let the step finish first, then stop.
    A send and its record are one step: cut between them, a message that arrived would stay on
    record as unsent and go again at the next start."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():  # stopped again meanwhile: still let it finish
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.info("a send ended with %s as its sender stopped", type(error).__name__)
        raise


def stopping() -> bool:
    """Whether the running task is being cancelled. A cancellation that reaches the database
    driver mid-statement may come back as the driver's own error (asyncpg's, through
    SQLAlchemy), which a loop that goes on after errors would take for a hiccup and never stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
