"""A web process's update queue that goes through the database, so that several web processes
handle a chat's updates in the order they were sent and lose none a dead process had received.

PTB's webhook answers Telegram as soon as an update is in the process's queue, before it is
handled. With several web processes behind a proxy, a resident's two quick messages can wait in
two queues and be handled the wrong way round; and a process killed with updates in its queue
loses them, because Telegram does not send an answered update again. So a web process writes
each update of a chat (a resident's, or an agency group's) to the `inbox` table before it queues
it (and so before Telegram is answered). When the update's turn comes, holding the chat's lock
(bot.turns), the process:

- handles it, and deletes its row in the transaction that saves its conversation states as the
  turn ends; or
- puts it back in its queue for a moment when an earlier update of the same chat is still in
  the inbox (it waits in another process's queue), so the earlier one goes first; or
- drops it when its row is gone: another process handled it.

Every web process sweeps the inbox now and then and queues the updates that have waited longer
than ORPHANED_AFTER: their process stopped (or died mid-way, its transaction rolled back), or is
far behind. Whichever process's turn comes first handles such an update; the other finds it gone.
A swept update whose handling was started MAX_HANDLINGS times and never finished is given up,
with an apology to its chat: it is likely what stops the processes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot, Update

from bot.jalali import utcnow
from bot.services import inbox
from bot.services.inbox import Verdict
from bot.unit import UpdateUnit
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# An update still in the inbox this long after it came was received by a process that stopped
# or is far behind; another process may as well handle it.
ORPHANED_AFTER = timedelta(seconds=10)
# How long a chat's update waits for an earlier one: long enough for a sweep to queue the earlier
# one again if its process stopped, so that even then they are handled in order.
EARLIER_WAIT = 2 * ORPHANED_AFTER
SWEEP_SECONDS = 5.0
# A swept update started this many times without finishing is given up (each start is counted
# once per process that took it from a sweep, so a slow process's backlog stays well under it).
MAX_HANDLINGS = 3
# Waiting for an earlier update: the first look again after this, then twice as long each time.
FIRST_RETRY_SECONDS = 0.05
LONGEST_RETRY_SECONDS = 1.0


def chat_of(update: object) -> int | None:
    """The chat an update belongs to, if any."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    return update.effective_chat.id


class InboxQueue(asyncio.Queue[object]):
    """PTB's update queue for a web process; chats' updates pass through the inbox."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self.session_factory = session_factory
        # Ids of updates this process queued from the inbox and has not finished with.
        self.kept: set[int] = set()
        # How often each update was put back to let an earlier one go first.
        self.put_back_count: dict[int, int] = {}
        # Ids of updates this process took from a sweep (another process had received them).
        self.swept: set[int] = set()

    async def put(self, item: object) -> None:
        """Keep a chat's update in the inbox, then queue it (Telegram is answered after
        this returns). One that is already kept is not queued twice."""
        chat_id = chat_of(item)
        if isinstance(item, Update) and chat_id is not None:
            try:
                async with self.session_factory() as session:
                    fresh = await inbox.store(
                        session=session, update_id=item.update_id, chat_id=chat_id,
                        payload=item.to_dict(), now=utcnow(),
                    )  # fmt: skip
            except UNREACHABLE as error:  # handled anyway; it answers "try again" on its own
                log.warning("could not keep update in the inbox (%s)", type(error).__name__)
            else:
                if not fresh:
                    log.info("update %s arrived again; it is handled once", item.update_id)
                    return
                self.kept.add(item.update_id)
        await super().put(item)

    async def verdict(self, unit: UpdateUnit, update: Update, chat_id: int) -> Verdict:
        """Whether it is the update's turn (call holding the chat's turn, in the update's unit)."""
        try:
            async with unit.autocommit() as session:
                verdict = await inbox.verdict(
                    session=session, update_id=update.update_id, chat_id=chat_id,
                    wait_since=utcnow() - EARLIER_WAIT,
                )  # fmt: skip
        except UNREACHABLE:
            return Verdict.HANDLE  # it answers "try again in a minute" on its own
        if verdict is Verdict.GONE:
            self.forget(update.update_id)
        return verdict

    async def given_up(self, update: Update) -> bool:
        """Whether to give up an update instead of handling it: one a sweep queued, whose
        handling was started too often without finishing. Counts this start."""
        if update.update_id not in self.swept:
            return False
        try:
            async with self.session_factory() as session:
                handlings = await inbox.count_handling(session=session, update_id=update.update_id)
        except UNREACHABLE:
            return False
        if handlings is None or handlings <= MAX_HANDLINGS:
            return False
        log.warning(
            "gave up update %s of chat %s: started %d times, never finished",
            update.update_id, chat_of(update), handlings - 1,
        )  # fmt: skip
        return True

    def put_back(self, update: Update) -> None:
        """Queue the update again shortly, after the earlier one it waits for."""
        times = self.put_back_count.get(update.update_id, 0)
        self.put_back_count[update.update_id] = times + 1
        delay = min(FIRST_RETRY_SECONDS * 2**times, LONGEST_RETRY_SECONDS)
        asyncio.get_running_loop().call_later(delay, self.put_nowait, update)

    def forget(self, update_id: int) -> None:
        """This process is done with the update (its row may stay for a sweep)."""
        self.kept.discard(update_id)
        self.swept.discard(update_id)
        self.put_back_count.pop(update_id, None)

    async def sweep(self, bot: Bot, *, now: datetime) -> int:
        """Queue the updates that waited too long in the inbox; how many."""
        async with self.session_factory() as session:
            left = await inbox.orphans(session=session, received_before=now - ORPHANED_AFTER)
        queued = 0
        for update_id, payload in left:
            if update_id in self.kept:
                continue  # still waiting in this process's own queue
            self.kept.add(update_id)
            self.swept.add(update_id)
            self.put_nowait(Update.de_json(payload, bot))
            queued += 1
        if queued:
            log.info("queued %d update(s) another process had received", queued)
        return queued

    async def sweep_forever(self, bot: Bot) -> None:
        """Sweep every SWEEP_SECONDS until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep(bot, now=utcnow())
            except Exception:  # the next sweep tries again; the process goes on
                log.exception("sweeping the inbox failed")
