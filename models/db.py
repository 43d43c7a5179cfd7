"""Engine, session factory and schema upgrades."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Table, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A database that is down or drops connections: refused, reset, or a driver error.
UNREACHABLE = (DBAPIError, OSError)


def create_engine(url: str, *, connections: int = 5) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout so writers queue.
    `connections`: how many a PostgreSQL pool keeps open (ten more are opened at a peak).
    A failed statement's error names the statement, never its values (a description, a phone
    number, an id): they would reach the logs with it."""
    if url.startswith("sqlite"):
        keep_sqlite_files_private(url)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    else:
        engine = create_async_engine(
            url,
            pool_size=connections,
            max_overflow=10,
            hide_parameters=True,
            pool_recycle=RECYCLE_SECONDS,
            # Each connection says whose it is (pg_stat_activity): `mahalle status` names the
            # process holding a lock, an operator finds it with ps or systemctl.
            connect_args={"server_settings": {"application_name": process_name()}},
        )
        event.listen(engine.sync_engine, "connect", _mark_new)
        event.listen(engine.sync_engine, "checkout", _replace_if_closed)
        event.listen(engine.sync_engine, "handle_error", _ended_by_the_server)
    event.listen(engine.sync_engine, "handle_error", _without_values)
    return engine


def process_name() -> str:
    """This process as its database connections name it: the host and the process id."""
    return f"mahalle pid {os.getpid()} on {socket.gethostname()}"[:63]


def keep_sqlite_files_private(url: str) -> None:
    """Create the SQLite database file 0600 before SQLite does (its -wal, -shm and -journal
    files take the database file's mode), and take group and others' access off files made
    before: they hold residents' reports and phone numbers. A path SQLite itself cannot open
    is left for it to report."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        descriptor = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
        for suffix in ("-wal", "-shm", "-journal"):
            companion = Path(database + suffix)
            if companion.exists() and companion.stat().st_mode & 0o077:
                companion.chmod(0o600)
    except OSError:
        pass  # another user's file: SQLite reports what it cannot do
    finally:
        os.close(descriptor)


# asyncpg's words for a value it could not send: "invalid input for query argument $2: '…' (…)".
_ECHOED_ARGUMENT = re.compile(r"(invalid input for query argument \$\d+): .*", re.DOTALL)


def _without_values(context: ExceptionContext) -> None:
    """Drop what the driver repeats of a failed statement's values: PostgreSQL's DETAIL ("Failing
    row contains (…)", "Key (…)=(…) already exists") and asyncpg's echo of a parameter it could
    not encode. The statement, the constraint's name and the error's kind stay; the parameters
    themselves are hidden by `hide_parameters`."""
    original = context.original_exception
    before = str(original)
    quoted: list[BaseException] = []
    for error in _chain(original):
        if isinstance(getattr(error, "detail", None), str):
            error.detail = None  # type: ignore[attr-defined]
        said = error.args[0] if error.args and isinstance(error.args[0], str) else None
        if said is not None and _ECHOED_ARGUMENT.match(said):
            error.args = (_ECHOED_ARGUMENT.sub(r"\1", said), *error.args[1:])
            quoted.append(error)
    for error in quoted:  # the encoder's own complaint may quote the value too
        if error.__cause__ is not None and not any(error.__cause__ is q for q in quoted):
            error.__cause__.args = ()
    wrapped, after = context.sqlalchemy_exception, str(original)
    if wrapped is not None and after != before and wrapped.args:
        wrapped.args = (str(wrapped.args[0]).replace(before, after), *wrapped.args[1:])


def _chain(error: BaseException) -> list[BaseException]:
    """An exception and those it wraps or was raised from, each once."""
    found: list[BaseException] = []
    waiting: list[BaseException | None] = [error]
    while waiting:
        current = waiting.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        waiting += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return found


# A pooled connection older than this is closed and opened anew when next taken, so one a
# firewall or proxy forgot while it sat idle is not handed to an update.
RECYCLE_SECONDS = 1800


def _mark_new(_dbapi_connection: Any, record: Any) -> None:
    """Mark a connection just opened: its first checkout does not look for the server's
    goodbye (record.info is cleared with the connection it describes)."""
    record.info["new"] = True


def _replace_if_closed(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the database already closed (a restart, a terminated
    backend: the server says so and closes the socket, and the driver notices while the
    connection sits in the pool), without a round trip: the pool retries the checkout with a
    new connection. A probe on every checkout (`pool_pre_ping`, or a one-statement ping) cost
    a round trip an update for the rare connection that died. One that died unseen (a network
    cut) fails its first statement; SQLAlchemy then marks every connection pooled before it
    stale, so the update answers "try again" and the next one gets new connections.
    A connection opened for this very checkout is handed out as it is: were it ended already
    (connections being terminated again and again), replacing it once more would exhaust the
    pool's two tries and fail with an error that names no database; its first statement fails
    as a dropped connection instead, which the update answers with "try again"."""
    if record.info.pop("new", False):
        return
    driver = getattr(dbapi_connection, "_connection", None)
    if driver is not None and (driver.is_closed() or _closing(driver)):
        # The server ended this one: a restart or a termination ends them all, so every
        # connection pooled before now is replaced as it is next taken.
        raise InvalidatePoolError()


# What asyncpg says of a connection that read the server's last words and cannot run another
# statement (its protocol left waiting for a reply that will not come).
_UNUSABLE_AFTER_THE_SERVER_ENDED = ("another operation (2) is in progress", '"failed" state')


def _ended_by_the_server(context: ExceptionContext) -> None:
    """Count it a disconnection when a statement fails on a connection the server ended
    before the driver saw the stream end (asyncpg says "another operation (2) is in
    progress"): the connection and every one pooled before it are replaced, so only this
    statement fails, not one of each connection the pool held."""
    said = str(context.original_exception)
    if any(words in said for words in _UNUSABLE_AFTER_THE_SERVER_ENDED):
        context.is_disconnect = True


def _closing(driver: Any) -> bool:
    """Whether the server already ended a connection the driver has not yet seen end: it read
    the server's last words (a terminated backend's FATAL, which leaves the driver unable to
    run a statement) and the end of the stream waits unread, or anything at all waits unread
    on a connection idle in the pool. A look at the socket's queue (MSG_PEEK, non-blocking):
    a system call, no round trip."""
    transport = getattr(driver, "_transport", None)
    wrapped = transport.get_extra_info("socket") if transport is not None else None
    if wrapped is None:
        return False
    try:
        with socket.fromfd(wrapped.fileno(), wrapped.family, wrapped.type) as duplicate:
            duplicate.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False  # nothing waiting: open, as far as anyone can tell without asking
    except OSError:
        return True
    return True  # the stream's end, or words nobody asked for


def create_session_factory(
    engine: AsyncEngine, *, autocommit: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects readable after commit (handlers render after saving).
    `autocommit`: each statement commits on its own, for callers whose every statement stands
    alone (on PostgreSQL a one-statement transaction costs three round trips, this one)."""
    if autocommit:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_of(executor: AsyncSession | AsyncConnection) -> str:
    """The dialect name ("postgresql", "sqlite") of a session or connection."""
    bind = executor if isinstance(executor, AsyncConnection) else executor.get_bind()
    return bind.dialect.name


def dialect_insert(
    executor: AsyncSession | AsyncConnection | str, table: Any
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT, in the dialect (PostgreSQL or SQLite) of a session or
    connection, or of a dialect name."""
    dialect = executor if isinstance(executor, str) else dialect_of(executor)
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def table_of(entity: type[Any]) -> Table:
    """A mapped class's table, for Core statements: they skip the ORM's bookkeeping."""
    table = entity.__table__
    assert isinstance(table, Table)
    return table


Statement = TypeVar("Statement")


def built_once(
    build: Callable[[str], Statement],
) -> Callable[[AsyncSession | AsyncConnection], Statement]:
    """A statement built once for each dialect and reused, its values passed as parameters.
    Building a small statement and computing its cache key costs about as much as running it
    through the session does, so the statements run on every update are built once."""
    built: dict[str, Statement] = {}

    def statement(executor: AsyncSession | AsyncConnection) -> Statement:
        dialect = dialect_of(executor)
        if dialect not in built:
            built[dialect] = build(dialect)
        return built[dialect]

    return statement


def alembic_config() -> Config:
    """Alembic's config, built in code so the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(connection: Connection, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the schema on this connection to `revision`."""
    config = alembic_config()
    config.attributes["connection"] = connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column by copying the table; the rows pointing at it must not object.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


# Held while migrating, so processes started together (two web, one worker) take turns.
MIGRATION_LOCK = 0x6D69677261746531  # "migrate1"


async def upgrade_database(engine: AsyncEngine) -> None:
    """Apply every pending migration."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at the end of this transaction, after the migrations committed.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await connection.run_sync(migrate)
