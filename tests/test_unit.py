"""One database session per update (bot/unit.py): blocks share it and keep their own meaning."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import ConversationHandler

from bot.unit import update_unit
from models.db import create_engine, create_session_factory
from models.entities import ConversationState, User
from tests.conftest import Bot
from tests.fakebot import ChatUser


@pytest.fixture
async def engine(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncEngine]:
    """A second engine on the migrated test database, to count its connections."""
    bind = session_factory.kw["bind"]
    own = create_engine(bind.url.render_as_string(hide_password=False))
    yield own
    await own.dispose()


def count_checkouts(engine: AsyncEngine) -> list[int]:
    """A list that grows by one each time the engine's pool hands out a connection."""
    taken: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: taken.append(1))
    return taken


async def users_named(engine: AsyncEngine, *ids: int) -> int:
    async with create_session_factory(engine)() as session:
        found = await session.scalar(select(func.count()).where(User.id.in_(ids)))
        return int(found or 0)


async def test_blocks_of_an_update_share_one_connection(engine: AsyncEngine) -> None:
    taken = count_checkouts(engine)
    async with update_unit(engine, create_session_factory(engine)) as unit:
        for user_id in (1, 2, 3):
            async with unit.session() as session:
                session.add(User(id=user_id))
                await session.commit()
    assert len(taken) == 1, "one connection for the whole update"
    assert await users_named(engine, 1, 2, 3) == 3, "every block's commit kept"


async def test_what_a_block_wrote_without_committing_is_gone_when_it_ends(
    engine: AsyncEngine,
) -> None:
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.session() as session:
            session.add(User(id=11))
            await session.flush()  # written, never committed
        async with unit.session() as session:
            session.add(User(id=12))
            await session.commit()  # must not commit the first block's row with it
    assert await users_named(engine, 11) == 0
    assert await users_named(engine, 12) == 1


async def test_a_failed_block_leaves_the_next_one_working(engine: AsyncEngine) -> None:
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.session() as session:
            session.add(User(id=21))
            await session.commit()
        with pytest.raises(IntegrityError):
            async with unit.session() as session:
                await session.execute(insert(User).values(id=21))  # the same id again
        async with unit.session() as session:
            session.add(User(id=22))
            await session.commit()
    assert await users_named(engine, 21, 22) == 2


async def test_what_a_block_loaded_stays_readable_and_is_not_reused_stale(
    engine: AsyncEngine,
) -> None:
    async with create_session_factory(engine)() as session:
        session.add(User(id=31, language="fa"))
        await session.commit()
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.session() as session:
            first = await session.get(User, 31)
        async with create_session_factory(engine)() as other:  # another process changes it
            changed = await other.get(User, 31)
            assert changed is not None
            changed.language = "en"
            await other.commit()
        async with unit.session() as session:
            again = await session.get(User, 31)
    assert first is not None and first.language == "fa", "detached, still readable"
    assert again is not None and again.language == "en", "read afresh, not the old object"


async def test_each_step_of_a_report_takes_one_connection(bot: Bot) -> None:
    taken = count_checkouts(bot.app.bot_data["runtime"].engine)
    resident = ChatUser(bot.app, bot.api, 1001, deliver=False, settle=False)
    await resident.send("/start")
    await resident.send("📝 گزارش جدید")
    taken.clear()
    await resident.send("یوسف آباد")
    assert len(taken) == 1, "the search and the saved step on one connection"
    taken.clear()
    await resident.press("یوسف‌آباد")
    assert len(taken) == 1, "the press limit, the draft and the saved step on one connection"
    async with bot.app.bot_data["runtime"].session_factory() as session:
        saved = await session.scalar(
            select(ConversationState.state).where(ConversationState.key == "[1001, 1001]")
        )
    assert saved == "description", "the step was saved in the update's session"


async def test_a_row_locked_in_a_block_is_free_when_the_block_ends(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks")
    async with create_session_factory(engine)() as session:
        session.add(User(id=41))
        await session.commit()
    locking = select(User.id).where(User.id == 41).with_for_update(nowait=True)
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.session() as session:
            await session.scalar(locking)  # locked, never committed
        async with create_session_factory(engine)() as other:  # another process wants it now
            assert await other.scalar(locking) is not None, "the lock went with its block"


async def test_a_block_that_only_read_leaves_nothing_for_a_migration_to_wait_on(
    engine: AsyncEngine,
) -> None:
    """Between blocks the handler may wait seconds on Telegram; an upgrade's ALTER TABLE (and
    every query queued behind it) must not wait with it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes no table locks for reading")
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.session() as session:
            await session.scalar(select(func.count()).select_from(User))
        # The update goes on (a reply being sent); another process upgrades the schema.
        async with engine.connect() as migration:
            await migration.execute(text("SET LOCAL lock_timeout = '1s'"))
            await migration.execute(text("ALTER TABLE users ADD COLUMN probe integer"))
            await migration.rollback()


async def test_reads_that_stand_alone_pay_no_transaction_and_the_next_block_has_one(
    engine: AsyncEngine,
) -> None:
    """Most of an update's blocks are one read or one write: each as a transaction of its own,
    not between BEGIN and ROLLBACK (three round trips for one); the blocks after it are
    transactions again, whose uncommitted writes are rolled back."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads take no transaction anyway")
    transaction_id = text("SELECT txid_current()")  # one per transaction
    async with update_unit(engine, create_session_factory(engine)) as unit:
        async with unit.autocommit() as session:
            first = await session.scalar(transaction_id)
            assert await session.scalar(transaction_id) != first, "each read its own"
        async with unit.session() as session:
            first = await session.scalar(transaction_id)
            assert await session.scalar(transaction_id) == first, "a transaction again"
            session.add(User(id=51))
            await session.flush()  # written, never committed
    assert await users_named(engine, 51) == 0, "what the block wrote was rolled back"


async def test_a_report_step_writes_its_draft_next_step_and_record_in_one_statement(
    bot: Bot,
) -> None:
    """The draft a step saves, the conversation's next step and the update's record as handled
    go to the database in one statement (PostgreSQL): all three or none."""
    from models.entities import Draft, HandledUpdate

    runtime = bot.app.bot_data["runtime"]
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips to save")
    resident = ChatUser(bot.app, bot.api, 1001, deliver=False, settle=False)
    for text_sent in ("/start", "📝 گزارش جدید", "یوسف آباد"):
        await resident.send(text_sent)
    writes: list[str] = []

    def executed(_c: object, _cur: object, statement: str, *_: object) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", executed)
    await resident.press("یوسف‌آباد")
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", executed)
    assert len(writes) == 1 and "moved" in writes[0] and "recorded" in writes[0], writes
    async with runtime.session_factory() as session:
        [(name, step)] = (
            await session.execute(
                select(ConversationState.name, ConversationState.state).where(
                    ConversationState.key == "[1001, 1001]"
                )
            )
        ).all()
        draft = await session.get(Draft, 1001)
        handled = await session.scalar(select(func.max(HandledUpdate.update_id)))
    assert step == "description" and draft is not None and draft.data["neighbourhood_id"]
    every = [h for group in bot.app.handlers.values() for h in group]
    persistent = [h for h in every if isinstance(h, ConversationHandler) and h.persistent]
    assert [h.name for h in persistent] == [name], "the state of this bot's conversation"
    assert handled == runtime.handled_key(next(resident._update_ids) - 1)
