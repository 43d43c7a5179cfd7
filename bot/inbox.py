"""A web process's update queue that goes through the database, so that several web processes
handle a chat's updates in the order they were sent and lose none a dead process had received.

PTB's webhook answers Telegram as soon as an update is in the process's queue, before it is
handled. With several web processes behind a proxy, a resident's two quick messages can wait in
two queues and be handled the wrong way round; and a process killed with updates in its queue
loses them, because Telegram does not send an answered update again. So a web process writes
each private chat's update to the `inbox` table before it queues it (and so before Telegram is
answered). When the update's turn comes, holding the chat's lock (bot.turns), the process:

- takes it and handles it, then deletes the row; or
- puts it back in its queue for a moment when an earlier update of the same chat has not been
  taken yet (it waits in another process's queue), so the earlier one goes first; or
- drops it when another process took it already.

Every web process sweeps the inbox now and then: updates nobody took for ORPHANED_AFTER are
queued again (their process stopped), and ones taken but unfinished for ABANDONED_AFTER are
forgotten (their process died mid-way; handling them again could answer twice).
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
from models.db import UNREACHABLE

log = logging.getLogger(__name__)

# An untaken update this old was received by a process that has stopped.
ORPHANED_AFTER = timedelta(seconds=30)
# A taken update unfinished this long was being handled by a process that died.
ABANDONED_AFTER = timedelta(minutes=10)
SWEEP_SECONDS = 10.0
# Waiting for an earlier update: the first look again after this, then twice as long each time.
FIRST_RETRY_SECONDS = 0.05
LONGEST_RETRY_SECONDS = 1.0


def private_chat(update: object) -> int | None:
    """The private chat an update belongs to, if it is one."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    return update.effective_chat.id if update.effective_chat.type == "private" else None


class InboxQueue(asyncio.Queue[object]):
    """PTB's update queue for a web process; private chats' updates pass through the inbox."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self.session_factory = session_factory
        # Ids of updates this process queued from the inbox and has not finished with.
        self.kept: set[int] = set()
        # How often each update was put back to let an earlier one go first.
        self.put_back_count: dict[int, int] = {}

    async def put(self, item: object) -> None:
        """Keep a private chat's update in the inbox, then queue it (Telegram is answered after
        this returns). One that is already kept is not queued twice."""
        chat_id = private_chat(item)
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

    async def verdict(self, update: Update, chat_id: int) -> Verdict:
        """Take the update from the inbox if it is its turn (call holding the chat's turn)."""
        if update.update_id not in self.kept:
            return Verdict.HANDLE  # not kept: the database was down when it came
        now = utcnow()
        try:
            async with self.session_factory() as session:
                verdict = await inbox.take(
                    session=session, update_id=update.update_id, chat_id=chat_id, now=now,
                    wait_since=now - ORPHANED_AFTER,
                )  # fmt: skip
        except UNREACHABLE:
            return Verdict.HANDLE
        if verdict is Verdict.GONE:
            self._forget(update.update_id)
        return verdict

    def put_back(self, update: Update) -> None:
        """Queue the update again shortly, after the earlier one it waits for."""
        times = self.put_back_count.get(update.update_id, 0)
        self.put_back_count[update.update_id] = times + 1
        delay = min(FIRST_RETRY_SECONDS * 2**times, LONGEST_RETRY_SECONDS)
        asyncio.get_running_loop().call_later(delay, self.put_nowait, update)

    async def finish(self, update: Update) -> None:
        """The update was handled: delete it from the inbox."""
        if update.update_id not in self.kept:
            return
        self._forget(update.update_id)
        try:
            async with self.session_factory() as session:
                await inbox.finish(session=session, update_id=update.update_id)
        except UNREACHABLE as error:  # the sweep forgets it once it looks abandoned
            log.warning("could not clear a handled update (%s)", type(error).__name__)

    def _forget(self, update_id: int) -> None:
        self.kept.discard(update_id)
        self.put_back_count.pop(update_id, None)

    async def sweep(self, bot: Bot, *, now: datetime) -> int:
        """Queue the updates a stopped process left untaken; forget abandoned ones. How many
        were queued."""
        async with self.session_factory() as session:
            left = await inbox.orphans(session=session, received_before=now - ORPHANED_AFTER)
            dropped = await inbox.drop_abandoned(
                session=session, taken_before=now - ABANDONED_AFTER
            )
        if dropped:
            log.warning("%d update(s) were left half-handled by a process that stopped", dropped)
        queued = 0
        for update_id, payload in left:
            if update_id in self.kept:
                continue  # still waiting in this process's own queue
            self.kept.add(update_id)
            self.put_nowait(Update.de_json(payload, bot))
            queued += 1
        if queued:
            log.info("queued %d update(s) a stopped process had received", queued)
        return queued

    async def sweep_forever(self, bot: Bot) -> None:
        """Sweep every SWEEP_SECONDS until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep(bot, now=utcnow())
            except Exception:  # the next sweep tries again; the process goes on
                log.exception("sweeping the inbox failed")
