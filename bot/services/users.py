"""The people who talk to the bot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Executable,
    ScalarSelect,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bot.cards import Cards
from bot.config import Settings
from bot.digits import isolate
from bot.ids import APART
from bot.jalali import utcnow
from bot.normalize import normalize
from bot.rules import BlockRefusal, judge_block, judge_unblock
from bot.services import casework, outbox, participation, tasks
from models.db import built_once, dialect_insert, table_of
from models.entities import (
    AgendaItem,
    BanEvent,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Case,
    CaseEvent,
    CaseTask,
    ConversationState,
    CouncilDecision,
    CouncilStep,
    DecisionEvent,
    District,
    Draft,
    GroupMember,
    GroupStatus,
    HandbookReading,
    HandbookVersion,
    Invite,
    LocalGroup,
    Neighbourhood,
    PendingInput,
    Staff,
    TaskEvent,
    TriageCorrection,
    User,
)

# The PostgreSQL channels on which a change to who is blocked, and a person's moving to another
# bot of the deployment ("user id:bot key"), are announced (bot/listening.py).
BLOCKLIST_CHANNEL = "mahalle_blocklist"
WRITERS_CHANNEL = "mahalle_writers"
_USERS = table_of(User)


async def get_or_create_user(*, session: AsyncSession, user_id: int, language: str) -> User:
    """The user's row, created on first contact; talking to us again means they unblocked us."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id, language=language)
        session.add(user)
        await session.flush()
    elif user.blocked_bot:
        user.blocked_bot = False
    return user


@built_once
def _write_to_bot(dialect: str) -> Executable:
    """The upsert noting a person's bot, returning their id when it changed (new, or moved);
    on PostgreSQL it also tells every process (`WRITERS_CHANNEL`, bot/listening.py)."""
    upsert = dialect_insert(dialect, _USERS).values(
        id=bindparam("user_id"), language=bindparam("language"), bot_key=bindparam("bot_key"),
        created_at=bindparam("now"),
    )  # fmt: skip
    noted = upsert.on_conflict_do_update(
        index_elements=[_USERS.c.id],
        set_={"bot_key": upsert.excluded.bot_key},
        where=or_(_USERS.c.bot_key.is_(None), _USERS.c.bot_key != upsert.excluded.bot_key),
    ).returning(_USERS.c.id)
    if dialect != "postgresql":
        return noted
    moved = noted.cte("moved")
    told = func.pg_notify(WRITERS_CHANNEL, func.concat(moved.c.id, ":", bindparam("bot_key")))
    return select(moved.c.id, told)


async def write_to_bot(*, session: AsyncSession, user_id: int, bot_key: str, language: str) -> bool:
    """Note the bot a person wrote to (a deployment with several): the one that reaches them.
    One statement, committed; the row is written only when new or when they changed bots, and
    then True."""
    values = {"user_id": user_id, "language": language, "bot_key": bot_key, "now": utcnow()}
    changed = (await session.execute(_write_to_bot(session), values)).first() is not None
    await session.commit()
    return changed


async def save_neighbourhood(*, session: AsyncSession, user: User, neighbourhood_id: int) -> None:
    """Remember the user's own neighbourhood, offered first on their next report."""
    await session.execute(
        update(User).where(User.id == user.id).values(neighbourhood_id=neighbourhood_id)
    )
    await session.commit()


async def mark_blocked(*, session: AsyncSession, user_id: int, bot_key: str | None = None) -> None:
    """The user blocked the bot: stop writing to them until they write again. With several
    bots, only when it is the bot that reaches them (they may have left one for another)."""
    user = await session.get(User, user_id)
    if user is None or user.blocked_bot:
        return
    if bot_key is not None and user.bot_key not in (None, bot_key):
        return
    user.blocked_bot = True
    await session.commit()


async def toggle_broadcasts(*, session: AsyncSession, user_id: int) -> bool:
    """Flip the user's broadcast choice; returns whether they now receive broadcasts."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id)
        session.add(user)
    user.broadcasts_opt_in = not user.broadcasts_opt_in
    user.broadcasts_chosen = True
    await session.commit()
    return user.broadcasts_opt_in


async def forget(*, session: AsyncSession, user_id: int, cards: Cards) -> int:
    """Remove a person and everything that could identify them (see the README's privacy
    paragraph): their cases stay, for the statistics, as counts with no words, photos, place
    or contact; the agencies' cards show the redaction; the outbox's copies go at once.
    Returns how many of their cases stay."""
    theirs = select(Case.id).where(Case.reporter_id == user_id).scalar_subquery()
    case_ids = list(await session.scalars(select(Case.id).where(Case.reporter_id == user_id)))
    words = await _their_words(session, user_id=user_id, theirs=theirs)
    groups = await _forget_founder(session, user_id=user_id, marker=cards.t("redacted-group"))
    marker = cards.t("redacted-report")
    # Their answers to the agencies' questions (the events' times and statuses stay).
    await session.execute(
        update(CaseEvent)
        .where(
            CaseEvent.case_id.in_(theirs),
            CaseEvent.actor_id == user_id,
            CaseEvent.note.is_not(None),
        )
        .values(note=marker)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(TriageCorrection).where(TriageCorrection.case_id.in_(theirs)))
    # Their words as the council's agenda quotes them (the item, its place and time stay).
    await session.execute(
        update(AgendaItem).where(AgendaItem.case_id.in_(theirs)).values(text=isolate(marker))
    )
    cases = await session.execute(
        update(Case)
        .where(Case.reporter_id == user_id)
        .values(
            reporter_id=None, reporter_phone=None, share_phone=False,
            text_original=marker, text_normalized=normalize(marker),
            latitude=None, longitude=None, photo_file_ids=[], voice_file_ids=[],
            updated_at=Case.updated_at,  # forgetting is not activity on the case
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    await session.execute(
        update(CaseEvent)
        .where(CaseEvent.actor_id == user_id)
        .values(actor_id=None, actor_name=None)
    )
    await session.execute(
        update(Invite)
        .where(Invite.used_by == user_id)
        .values(used_by=0)  # still used, by no one anyone can name
    )
    await participation.forget(session, user_id=user_id)
    await _unname_actor(session, user_id=user_id)
    await _drop_owned_rows(session, user_id=user_id)
    # The row goes whole: language and neighbourhood would point at them too. (A blocked
    # person's updates never reach the bot, so forgetting is no way around a block.)
    await session.execute(delete(User).where(User.id == user_id))
    await casework.redact_cards(session, case_ids=case_ids, cards=cards)
    await tasks.redact_task_cards(session, case_ids=list(case_ids), cards=cards)
    await outbox.forget_person(
        session, chat_id=user_id, case_ids=case_ids, words=words, marker=marker, groups=groups
    )
    return int(cases.rowcount or 0)  # type: ignore[attr-defined]


async def _their_words(
    session: AsyncSession, *, user_id: int, theirs: ScalarSelect[int]
) -> list[str]:
    """What they wrote that the outbox may still carry: their descriptions (and the first 300
    characters that reminders quote, the first 200 that a council's agenda quotes) and their
    answers to the agencies."""
    descriptions = list(
        await session.scalars(select(Case.text_original).where(Case.id.in_(theirs)))
    )
    answers = await session.scalars(
        select(CaseEvent.note).where(
            CaseEvent.case_id.in_(theirs),
            CaseEvent.actor_id == user_id,
            CaseEvent.note.is_not(None),
        )
    )
    quoted = [text[:length] for text in descriptions for length in (300, 200)]
    found = [*descriptions, *quoted, *answers]
    return [text for text in found if text]


async def _forget_founder(session: AsyncSession, *, user_id: int, marker: str) -> list[str]:
    """The local groups they founded lose their founder. A registration not yet decided goes;
    a group that no one else belongs to loses its name and what it does too (`marker`), while
    one with other members keeps them, as its members' group. Returns the names and fields
    taken away, for the outbox to drop its copies."""
    founded = LocalGroup.created_by == user_id
    undecided = LocalGroup.status.in_((GroupStatus.DRAFT, GroupStatus.PENDING))
    others = exists().where(GroupMember.group_id == LocalGroup.id, GroupMember.user_id != user_id)
    lonely = (founded, ~undecided, ~others)
    rows = await session.execute(
        select(LocalGroup.name, LocalGroup.field).where(founded, undecided | ~others)
    )
    words = [text for row in rows for text in row if text]
    await session.execute(delete(LocalGroup).where(founded, undecided))
    await session.execute(
        update(LocalGroup)
        .where(*lonely)
        .values(name=marker, field=marker)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(LocalGroup)
        .where(founded)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    return words


_Column = InstrumentedAttribute[Any]

# Where a row records who acted (a clerk, a council member, a coordinator): the row stays, for
# the history and the statistics, naming no one. Each entry: the id's column, and the other
# columns cleared with it (a name).
_ACTOR_COLUMNS: tuple[tuple[_Column, tuple[_Column, ...]], ...] = (
    (TaskEvent.actor_id, (TaskEvent.actor_name,)),
    (DecisionEvent.actor_id, (DecisionEvent.actor_name,)),
    (CaseTask.created_by, ()),
    (CouncilDecision.created_by, ()),
    (AgendaItem.added_by, ()),
    (TriageCorrection.actor_id, ()),
    (LocalGroup.decided_by, ()),
    (HandbookVersion.published_by, ()),
)
# The same for columns that must hold an id: 0, someone no one can name.
_REQUIRED_ACTOR_COLUMNS: tuple[_Column, ...] = (
    BanEvent.actor_id,
    Invite.created_by,
    Campaign.created_by,
)


async def _unname_actor(session: AsyncSession, *, user_id: int) -> None:
    """Take their id and name off the rows of what they did (the rows stay); drafts of theirs go."""
    await session.execute(
        delete(Campaign).where(
            Campaign.created_by == user_id, Campaign.status == CampaignStatus.DRAFT
        )
    )
    await session.execute(
        update(Campaign)
        .where(Campaign.progress_chat_id == user_id)
        .values(progress_chat_id=None, progress_message_id=None)
    )
    for column, names in _ACTOR_COLUMNS:
        cleared = {column.key: None, **{name.key: None for name in names}}
        await _clear(session, column, user_id=user_id, values=cleared)
    for column in _REQUIRED_ACTOR_COLUMNS:
        await _clear(session, column, user_id=user_id, values={column.key: 0})


async def _clear(
    session: AsyncSession, column: _Column, *, user_id: int, values: dict[str, Any]
) -> None:
    """Set `values` on the rows of `column`'s table where it holds `user_id`."""
    await session.execute(
        update(column.class_)
        .where(column == user_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )


async def _drop_owned_rows(session: AsyncSession, *, user_id: int) -> None:
    """Delete the rows that are theirs alone: draft, conversations, waiting inputs,
    memberships, staff places, broadcast deliveries, the record of their being blocked and
    unblocked, a council step half-way, the handbook readings asked of them."""
    owned_rows = (
        (BanEvent, BanEvent.user_id),
        (Draft, Draft.user_id),
        (PendingInput, PendingInput.user_id),
        (GroupMember, GroupMember.user_id),
        (Staff, Staff.user_id),
        (CampaignRecipient, CampaignRecipient.user_id),
        (CouncilStep, CouncilStep.user_id),
        (HandbookReading, HandbookReading.user_id),
    )
    for table, column in owned_rows:
        await session.execute(delete(table).where(column == user_id))
    # Conversation keys are "[chat id, user id]": their private chat, and them in any chat.
    await session.execute(
        delete(ConversationState).where(
            ConversationState.key.like(f"[{user_id}, %")
            | ConversationState.key.like(f"%, {user_id}]")
        )
    )


async def drop_old_contacts(*, session: AsyncSession, older_than: datetime) -> int:
    """Remove reporters' phone numbers from cases with no activity since `older_than`, whatever
    their status: a case no one handled keeps the number no longer than a closed one."""
    result = await session.execute(
        update(Case)
        .where(Case.updated_at < older_than, Case.reporter_phone.is_not(None))
        .values(reporter_phone=None, updated_at=Case.updated_at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def block_refusal(
    *, session: AsyncSession, actor_id: int, user_id: int, banned: bool, settings: Settings
) -> BlockRefusal | None:
    """Why this coordinator may not block (or unblock) this person, or None (bot/rules.py).
    In a deployment of several counties the person must live in, or have reported in, the
    coordinator's county; one known in none (never placed) may be blocked by any."""
    person = await session.get(User, user_id)
    county = settings.county_of_coordinator(actor_id)
    scope = settings.case_filter_county(county.key if county else None)
    theirs = await counties_of_person(session, user_id=user_id) if scope else set()
    in_county = scope is None or not theirs or scope in theirs
    is_blocked = person is not None and person.banned
    if not banned:
        return judge_unblock(is_blocked=is_blocked, in_county=in_county)
    is_staff = await session.scalar(select(Staff.user_id).where(Staff.user_id == user_id).limit(1))
    return judge_block(
        is_self=actor_id == user_id, is_coordinator=user_id in settings.coordinators,
        is_council=settings.council_county_of(user_id) is not None,
        is_staff=is_staff is not None, in_county=in_county, known=person is not None,
        is_blocked=is_blocked,
    )  # fmt: skip


async def counties_of_person(session: AsyncSession, *, user_id: int) -> set[str]:
    """The counties a person has a saved neighbourhood or a case in."""
    places = (
        select(User.neighbourhood_id)
        .where(User.id == user_id)
        .union(select(Case.neighbourhood_id).where(Case.reporter_id == user_id))
    )
    keys = await session.scalars(
        select(District.county_key)
        .join(Neighbourhood, Neighbourhood.district_id == District.id)
        .where(Neighbourhood.id.in_(places.scalar_subquery()))
        .distinct()
    )
    return set(keys)


async def set_banned(*, session: AsyncSession, user_id: int, banned: bool, actor_id: int) -> None:
    """Block or unblock a user (coordinators, against abuse), with an audit row, and commit; on
    PostgreSQL, every process listening hears of it at the commit."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id)
        session.add(user)
    user.banned = banned
    session.add(BanEvent(user_id=user_id, banned=banned, actor_id=actor_id, created_at=utcnow()))
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, '')"), {"channel": BLOCKLIST_CHANNEL}
        )
    await session.commit()


async def banned_ids(*, session: AsyncSession) -> set[int]:
    """Everyone currently blocked."""
    return set((await session.scalars(select(User.id).where(User.banned.is_(True)))).all())


async def stored_unmoved(*, session: AsyncSession, bot_keys: list[str]) -> int:
    """How many people of these bots (of the other messenger than the first bot's) are stored
    under their messenger's own number, as before the two messengers' people were kept apart
    (bot/ids.py): each may share a row with the other messenger's person of that number."""
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.bot_key.in_(bot_keys), User.id > -APART, User.id < APART)
    )
    return int(count or 0)
