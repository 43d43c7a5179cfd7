"""How many button presses and messages each person sent in the current window, kept in the
memory of the process receiving the bot's updates.

One process at a time receives each bot's updates (bot/receiving.py), so it sees every press
and message a person sends that bot: counting them in its memory costs an update no statement
(the count used to be a row in the database, one round trip on every update, so that updates
spread over several processes added up). A process that takes a bot over starts counting
afresh: at worst a person flooding the bot at that moment is slowed a window later. Windows
are a minute long at most; those over are swept out as new ones start, so what is kept is the
people who wrote in the last minute or so, a number and a time each.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Windows:
    """Counts of one kind (presses, or messages) per person, in windows of `seconds`."""

    # Sweep out windows that are over once this many were started since the last sweep.
    SWEEP_EVERY = 10_000

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        # Person → (when their window started, how many it has counted).
        self._windows: dict[int, tuple[float, int]] = {}
        self._started = 0

    def count(self, user_id: int) -> int:
        """Count one more for the person; how many their current window holds, this one too.
        A window starts with the first after the last one is over."""
        now = self.clock()
        started, counted = self._windows.get(user_id, (now - self.seconds, 0))
        if now - started >= self.seconds:
            started, counted = now, 0
            self._started += 1
            if self._started >= self.SWEEP_EVERY:
                self._sweep(now)
        self._windows[user_id] = (started, counted + 1)
        return counted + 1

    def forget(self, user_id: int) -> None:
        """Drop the person's count (they asked to be forgotten)."""
        self._windows.pop(user_id, None)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._windows

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        self._started = 0
        over = [key for key, (started, _) in self._windows.items() if now - started >= self.seconds]
        for key in over:
            del self._windows[key]
