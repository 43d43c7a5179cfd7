"""The tables. Times are stored in UTC; what people read is converted at the edge."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from bot.jalali import utcnow

# Stable constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class CaseStatus(enum.StrEnum):
    """The case lifecycle of the design; stored as its string value."""

    SUBMITTED = "submitted"
    TRIAGE = "triage"
    FORWARDED = "forwarded"
    ACCEPTED = "accepted"
    NEEDS_INFO = "needs_info"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    REROUTED = "rerouted"
    REOPENED = "reopened"


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    county_key: Mapped[str] = mapped_column(String(64), index=True, server_default="main")
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    neighbourhoods: Mapped[list[Neighbourhood]] = relationship(back_populates="district")


class Neighbourhood(Base):
    __tablename__ = "neighbourhoods"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Spacing- and spelling-blind form of the name, for typed search.
    search_key: Mapped[str] = mapped_column(String(200))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    district: Mapped[District] = relationship(back_populates="neighbourhoods", lazy="joined")


class Agency(Base):
    __tablename__ = "agencies"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    county_key: Mapped[str] = mapped_column(String(64), server_default="main")
    # The [[domains]] agency this one stands for in its county.
    kind: Mapped[str] = mapped_column(String(64), server_default="")


class Domain(Base):
    __tablename__ = "domains"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    # Which kind of agency handles it; each county has its own agency of that kind.
    agency_kind: Mapped[str] = mapped_column(String(64), server_default="")


class User(Base):
    __tablename__ = "users"

    # The messenger's user id; Telegram ids exceed 32 bits.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    language: Mapped[str] = mapped_column(String(8), default="fa")
    neighbourhood_id: Mapped[int | None] = mapped_column(ForeignKey("neighbourhoods.id"))
    broadcasts_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set once the user chose for themselves; until then the first report opts them in.
    broadcasts_chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    # The first broadcast a user gets says how to stop them.
    broadcast_intro_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # A coordinator blocked this user for abuse: their updates are ignored.
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    # The bot they last wrote to, where a deployment serves several: the one that reaches them
    # (a bot can message only those who started it). None: the deployment's only or first bot.
    bot_key: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    neighbourhood: Mapped[Neighbourhood | None] = relationship(lazy="joined")


class HandledUpdate(Base):
    """An update already handled (or, in one process, being handled), kept for a day: one that
    arrives again, sent twice by Telegram or replayed, is dropped (bot/services/handled.py)."""

    __tablename__ = "handled_updates"
    __table_args__ = (Index("ix_handled_updates_handled_at", "handled_at"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_at: Mapped[datetime] = mapped_column()


class GroupPacing(Base):
    """How much of Telegram's allowance into one group (about 20 messages a minute) the outbox
    has used: a bucket that empties evenly over a minute. Kept here, not in a worker's memory,
    so that every worker (and one just restarted) counts the same sends."""

    __tablename__ = "group_pacing"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    level: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column()


class CaseSequence(Base):
    """The last tracking-code sequence handed out in a Jalali year."""

    __tablename__ = "case_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("year", "sequence", name="uq_cases_year_sequence"),
        Index("ix_cases_reporter_created", "reporter_id", "created_at"),
        # Statistics and exports select a period of cases.
        Index("ix_cases_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    # The draft this case came from: confirming twice finds the same case.
    draft_token: Mapped[str] = mapped_column(String(36), unique=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    neighbourhood_id: Mapped[int] = mapped_column(ForeignKey("neighbourhoods.id"), index=True)
    text_original: Mapped[str] = mapped_column(Text)
    text_normalized: Mapped[str] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    photo_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    voice_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    share_phone: Mapped[bool] = mapped_column(Boolean, default=False)
    reporter_phone: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.SUBMITTED, index=True)
    domain_key: Mapped[str | None] = mapped_column(ForeignKey("domains.key"))
    agency_key: Mapped[str | None] = mapped_column(ForeignKey("agencies.key"))
    # Filed on behalf of an approved local group (its name travels with the report).
    group_id: Mapped[int | None] = mapped_column(ForeignKey("local_groups.id"))
    triage_confidence: Mapped[float | None] = mapped_column(Float)
    # Where the agency's card for this case lives, once delivered (edited as the case moves).
    card_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The agency chat could never be reached: the coordinator must reroute.
    undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When the case first reached each milestone (the audit log has every step; these let the
    # agencies' figures over a month of cases be read without it).
    forwarded_at: Mapped[datetime | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    # When it last reached an agency (forwarded, rerouted or reopened): the deadlines' clock.
    handed_over_at: Mapped[datetime | None] = mapped_column()
    # A second domain the report also concerns (two problems in one message), shown on the card.
    second_domain_key: Mapped[str | None] = mapped_column(ForeignKey("domains.key"))
    # When triage, unsure, asked the reporter which domain it is (None: never asked); the case
    # stays submitted until they answer or the wait runs out.
    domain_asked_at: Mapped[datetime | None] = mapped_column()
    # The case's present domain is the one its reporter chose (counted as a correction once the
    # agency accepts it; cleared when the case goes elsewhere).
    reporter_chose_domain: Mapped[bool] = mapped_column(Boolean, default=False)

    neighbourhood: Mapped[Neighbourhood] = relationship(lazy="joined")
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseEvent(Base):
    """The audit log: one row per status change."""

    __tablename__ = "case_events"
    __table_args__ = (
        # The digest counts moves into a status over the last day.
        Index("ix_case_events_to_status_created", "to_status", "created_at"),
        # An agency's staff look up the cases it holds or once held.
        Index("ix_case_events_agency_case", "agency_key", "case_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    # The actor's display name at the time, for "already done by …".
    actor_name: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The agency holding the case after this step (none while it waits for triage).
    agency_key: Mapped[str | None] = mapped_column(String(64))

    case: Mapped[Case] = relationship(back_populates="events")


class Draft(Base):
    """A report being written: survives restarts and moves between processes."""

    __tablename__ = "drafts"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversationState(Base):
    """Where each chat stands in each persistent ConversationHandler."""

    __tablename__ = "conversation_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxStatus(enum.StrEnum):
    """Where an outgoing message stands."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # the chat can never be reached


def outbox_status(status: OutboxStatus) -> ColumnElement[str]:
    """An outbox status written into the SQL rather than bound (see OutboxMessage's indexes)."""
    return literal_column(f"'{status}'")


def _only(status: OutboxStatus) -> dict[str, Any]:
    """A partial index's condition: rows with this status only."""
    condition = text(f"status = '{status}'")
    return {"postgresql_where": condition, "sqlite_where": condition}


class OutboxMessage(Base):
    """One Bot API call to another chat, committed before it is attempted."""

    __tablename__ = "outbox"
    # Partial indexes: the rows still to send are a handful among every message ever sent.
    # With indexes over all rows, a burst after a quiet spell (the table's statistics still
    # saying "nothing pending") led PostgreSQL to plans that read every pending row once for
    # each pending row: 2.5 s a claim with 3,000 waiting. Queries write the status into the SQL
    # (`outbox_status`): a partial index cannot serve a bound parameter, unknown to PostgreSQL's
    # generic plans and to SQLite's planner.
    __table_args__ = (
        # The waiting rows in order.
        Index("ix_outbox_pending", "id", **_only(OutboxStatus.PENDING)),
        # Rows go out in order per chat: "is an older row of this chat still pending?"
        Index("ix_outbox_pending_chat", "chat_id", "id", **_only(OutboxStatus.PENDING)),
        # `mahalle status`: what could not be delivered lately.
        Index("ix_outbox_dead", "created_at", **_only(OutboxStatus.DEAD)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    # The bot that sends it, where the deployment's settings cannot tell (a group that became a
    # supergroup under a new id); None: the chat's own bot (bot.services.outbox.sent_by).
    bot_key: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    # Enqueuing the same thing twice (a retried handler, a repeated job) keeps one row.
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class Staff(Base):
    """A member of an agency, who may act on its cases."""

    __tablename__ = "staff"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    agency_key: Mapped[str] = mapped_column(ForeignKey("agencies.key"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    """A one-time deep link that makes its user staff of one agency."""

    __tablename__ = "invites"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_key: Mapped[str] = mapped_column(ForeignKey("agencies.key"))
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_by: Mapped[int | None] = mapped_column(BigInteger)
    used_at: Mapped[datetime | None] = mapped_column()


class PendingInput(Base):
    """A question, note or reason the bot is waiting for from one person in one chat."""

    __tablename__ = "pending_inputs"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # a typed act of bot/rules.py
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The agency holding the case when the button was pressed: the step lapses if it moves.
    agency_key: Mapped[str | None] = mapped_column(String(64))
    # The bot's message that asked for the text: in a group only a reply to it is the step.
    prompt_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # A task step: the task it is about, or the agency a request for help will go to.
    task_id: Mapped[int | None] = mapped_column(Integer)
    target_key: Mapped[str | None] = mapped_column(String(64))


class BanEvent(Base):
    """Who blocked or unblocked whom, and when: the audit of /block and /unblock."""

    __tablename__ = "ban_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    banned: Mapped[bool] = mapped_column(Boolean)
    actor_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TriageCorrection(Base):
    """A human's domain for a case (coordinator pick, staff reroute, or the reporter's own choice
    once the agency accepted it): training data."""

    __tablename__ = "triage_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    domain_key: Mapped[str] = mapped_column(ForeignKey("domains.key"))
    source: Mapped[str] = mapped_column(String(16))
    # The domain the case had before this choice (the one triage or someone else got wrong).
    from_domain_key: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupStatus(enum.StrEnum):
    """A local group's registration."""

    DRAFT = "draft"  # the resident is still typing it in
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class LocalGroup(Base):
    """A civil-society group (تشکل مردمی) registered through the bot."""

    __tablename__ = "local_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    field: Mapped[str] = mapped_column(String(200), default="")
    neighbourhood_id: Mapped[int | None] = mapped_column(ForeignKey("neighbourhoods.id"))
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.DRAFT)
    # The founder; NULL once they asked to be forgotten (the group and its members stay).
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    # Members join with /start grp_<token>.
    invite_token: Mapped[str] = mapped_column(String(64), unique=True)
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()

    neighbourhood: Mapped[Neighbourhood | None] = relationship(lazy="joined")


class GroupMember(Base):
    """A user who may report on behalf of a group."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("local_groups.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignStatus(enum.StrEnum):
    """A broadcast's life."""

    DRAFT = "draft"  # being composed; the row itself is the draft, so a restart keeps it
    SCHEDULED = "scheduled"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(enum.StrEnum):
    """One recipient of one broadcast."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"


class Campaign(Base):
    """A broadcast: its content, audience, schedule and progress message."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT, index=True)
    scheduled_at: Mapped[datetime] = mapped_column(default=utcnow)
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class CampaignRecipient(Base):
    """One row per person a broadcast goes to; the sender walks these in batches."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        Index("ix_campaign_recipients_due", "campaign_id", "status", "next_attempt_at"),
    )

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))


class CaseJoin(Base):
    """A resident who has the same problem as an open case and joined it ("me too") instead of
    filing another report: the agency sees how many are affected, and they hear its progress.
    user_id is NULL once they asked to be forgotten (the count stays, as their reports do)."""

    __tablename__ = "case_joins"
    __table_args__ = (
        UniqueConstraint("case_id", "user_id", name="uq_case_joins_case_user"),
        Index("ix_case_joins_user_id", "user_id"),
        Index("ix_case_joins_joined_at", "joined_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class OfferStatus(enum.StrEnum):
    """A local group's offer of help with a case."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class HelpOffer(Base):
    """An approved local group offers to help with an open case in its neighbourhood (a
    clean-up, visiting the elderly, a class); the agency holding the case accepts or declines."""

    __tablename__ = "help_offers"
    __table_args__ = (
        # One offer per group and case: a second press finds the first.
        UniqueConstraint("case_id", "group_id", name="uq_help_offers_case_group"),
        Index("ix_help_offers_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("local_groups.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # Who offered (the group's founder); NULL once they asked to be forgotten.
    offered_by: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()


class HelpOfferEvent(Base):
    """The audit of offers: who made, accepted or declined which, and when."""

    __tablename__ = "help_offer_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("help_offers.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    # The staff member's display name at the time, for "already decided by …".
    actor_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskStatus(enum.StrEnum):
    """A part of a case's work one agency asked of another (همکاری میان‌بخشی)."""

    ASKED = "asked"  # waiting for the asked agency to take it on
    ACCEPTED = "accepted"
    DONE = "done"
    CANNOT = "cannot"  # the asked agency cannot do it, with a reason
    CANCELLED = "cancelled"  # withdrawn by the lead agency or a coordinator, or the case ended


class CaseTask(Base):
    """One agency's part in a case another agency holds: asked with a short note, worked on its
    own card in the asked agency's chat."""

    __tablename__ = "case_tasks"
    __table_args__ = (Index("ix_case_tasks_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    # The agency that asked (the case's holder then); NULL when a coordinator or the bot asked.
    from_agency_key: Mapped[str | None] = mapped_column(String(64))
    to_agency_key: Mapped[str] = mapped_column(ForeignKey("agencies.key"))
    note: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.ASKED)
    # Why the asked agency cannot, or why the task was withdrawn.
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # Where the task's card lives in the asked agency's chat, once delivered.
    card_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)


class TaskEvent(Base):
    """The audit log of tasks: one row per status change."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("case_tasks.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HandbookVersion(Base):
    """One published version of the network's handbook (framework and agencies' duties)."""

    __tablename__ = "handbook_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    published_by: Mapped[int | None] = mapped_column(BigInteger)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What changed from the version before, one line per file (names and counts, no text).
    summary: Mapped[str] = mapped_column(Text, default="")


class HandbookFile(Base):
    """One file of a version: its name (framework.md, <agency>.md), hash and text."""

    __tablename__ = "handbook_files"
    __table_args__ = (
        UniqueConstraint("version_id", "name", name="uq_handbook_files_version_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("handbook_versions.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class HandbookReading(Base):
    """A person asked to read a version, and when they confirmed (NULL: not yet). The row is
    its own record: set once, by a compare-and-set, by the person themself."""

    __tablename__ = "handbook_readings"
    __table_args__ = (
        UniqueConstraint("version_id", "user_id", name="uq_handbook_readings_version_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("handbook_versions.id"), index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    county_key: Mapped[str] = mapped_column(String(64))
    # The agency they read for; NULL for a council member.
    agency_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column()
    confirmed_at: Mapped[datetime | None] = mapped_column()


class DecisionStatus(enum.StrEnum):
    """Where a council decision (مصوبه) stands at its responsible agency."""

    OPEN = "open"  # recorded, its card sent to the agency
    ACCEPTED = "accepted"  # the agency took it on
    DONE = "done"


class CouncilMeeting(Base):
    """One meeting of a county's council: its agenda collects until its date passes."""

    __tablename__ = "council_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    county_key: Mapped[str] = mapped_column(String(64), index=True)
    # The start of the meeting's day in Tehran, as UTC; NULL until the secretary sets it.
    meets_at: Mapped[datetime | None] = mapped_column()
    agenda_sent_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgendaItem(Base):
    """A case or a pattern put on a meeting's agenda by a coordinator."""

    __tablename__ = "agenda_items"
    __table_args__ = (UniqueConstraint("meeting_id", "topic", name="uq_agenda_items_topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("council_meetings.id"), index=True)
    # "case:<id>" or "pattern:<neighbourhood id>:<domain>": one item per topic and meeting.
    topic: Mapped[str] = mapped_column(String(96))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    text: Mapped[str] = mapped_column(Text)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouncilDecision(Base):
    """A decision (مصوبه) of a meeting: what, which agency, by when, and where it stands."""

    __tablename__ = "council_decisions"
    __table_args__ = (Index("ix_council_decisions_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("council_meetings.id"), index=True)
    county_key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    agency_key: Mapped[str] = mapped_column(ForeignKey("agencies.key"))
    # The start of the deadline's day in Tehran, as UTC: overdue once that day has ended.
    deadline_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=DecisionStatus.OPEN)
    progress: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()


class DecisionEvent(Base):
    """The audit log of decisions: one row per status change or progress report."""

    __tablename__ = "decision_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("council_decisions.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouncilStep(Base):
    """A typed step the bot waits for in a council secretary's or agency clerk's private chat:
    a meeting's date, a decision's text or deadline, a progress report."""

    __tablename__ = "council_steps"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(24))
    county_key: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    agency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
