"""Round trips to PostgreSQL an update, through the whole report flow.

Each message the process writes to the database's socket is a request it then waits on, so the
count is the update's round trips: with PostgreSQL on another machine, each costs the network's
round-trip time on top of the work. The Bot API is the offline fake (no socket), so every write
counted is the database's. The count does not depend on the machine's speed.

    .venv/bin/python -m bench.round_trips --database-url postgresql+asyncpg://…/test
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.selector_events
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from bench.report_flow import STEPS, run


@contextlib.contextmanager
def counting_socket_writes() -> Iterator[list[int]]:
    """A one-item list holding how many writes the process's asyncio sockets made meanwhile."""
    # The transport every asyncio TCP connection writes through (asyncpg's too); private, and a
    # benchmark's business only.
    transport: Any = getattr(asyncio.selector_events, "_SelectorSocketTransport")  # noqa: B009
    original = transport.write
    count = [0]

    def write(self: Any, data: Any) -> None:
        count[0] += 1
        original(self, data)

    transport.write = write
    try:
        yield count
    finally:
        transport.write = original


async def writes_of_a_run(database_url: str, users: int, role: str) -> int:
    with counting_socket_writes() as writes:
        await run(users, database_url, role=role)
    return writes[0]


async def measure(database_url: str, users: int) -> None:
    for role in ("all", "web"):
        # The difference between two runs leaves out what both pay once (migrating the
        # database, starting and stopping the bot).
        fewer = await writes_of_a_run(database_url, users, role)
        flow = await writes_of_a_run(database_url, 2 * users, role) - fewer
        updates = users * len(STEPS)
        print(f"role={role} updates={updates} round_trips_per_update={flow / updates:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL")
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        sys.exit("round trips are counted on PostgreSQL (SQLite is in the process)")
    asyncio.run(measure(args.database_url, args.users))


if __name__ == "__main__":
    main()
