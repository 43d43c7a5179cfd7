"""The council's desk in chat: /agenda_add, the agenda button under a case as coordinators see
it and the pattern buttons under /stats (coordinators), /agenda (coordinators and council
members), /meeting and /decision (the secretary, with typed steps in their private chat), the
decision card's buttons (the responsible agency, with the progress report typed in the
presser's private chat), and /council_export (CSV for the minutes).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType

from bot.cards import code_for_display
from bot.config import CountySettings, Settings
from bot.context import MahalleContext
from bot.digits import isolate
from bot.jalali import as_utc, format_date, jalali_year, parse_jalali_date, spoken_codes, utcnow
from bot.reports import inert, stats_text
from bot.rules import Act, Verdict
from bot.services import casework, council, stats
from bot.services.transitions import TransitionRefusedError
from handlers import staff
from handlers.buttons import acknowledge, alert, already_done, refused
from handlers.desk import period_words
from models.entities import Agency, Case, CouncilDecision, CouncilStep, DecisionStatus

PATTERN_PREFIX = "agp"  # `agp:<neighbourhood id>:<domain key>`: put a pattern on the agenda
AGENCY_PREFIX = "cx"  # `cx:<agency key>`: the decision's responsible agency
DECISION_ACTS = {Act.DECISION_ACCEPT, Act.DECISION_PROGRESS, Act.DECISION_DONE}
STEP_MINUTES = 30
BIDI_MARKS = "[\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def _county_as_coordinator(context: MahalleContext, user_id: int) -> CountySettings | None:
    return context.runtime.settings.county_of_coordinator(user_id)


def _county_as_secretary(context: MahalleContext, user_id: int) -> CountySettings | None:
    county = context.runtime.settings.council_county_of(user_id)
    if county is None or user_id not in council.members_of(county, "secretary"):
        return None
    return county


def members(settings: Settings) -> set[int]:
    """Every council member of every county."""
    found = {m.id for county in settings.counties for m in county.council_members}
    return found - settings.coordinators  # a coordinator's /stats is the full one


async def member_stats(update: Update, context: MahalleContext) -> None:
    """/stats for a council member who is no coordinator: this week's figures of their
    county, read-only (no buttons); asked for another period, they are told so first."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    settings = context.runtime.settings
    county = settings.council_county_of(user.id)
    assert county is not None  # the handler's filter lets only members through
    now = utcnow()
    async with context.session() as session:
        figures = await stats.collect(
            session, settings=settings, start=stats.week_start(now), end=now, now=now,
            county_key=settings.case_filter_county(county.key),
        )  # fmt: skip
    text = stats_text(figures, context.t, context.language)
    if period_words(context, context.args or []) not in ([], ["week"]):
        text = f"{context.t('stats-members-week')}\n\n{text}"
    await message.reply_text(text)


async def agenda_add(update: Update, context: MahalleContext) -> None:
    """/agenda_add <code>: a coordinator puts a case on the next meeting's agenda."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    if _county_as_coordinator(context, user.id) is None:
        await message.reply_text(context.t("coordinators-only"))
        return
    typed = re.sub(BIDI_MARKS, "", " ".join(context.args or []))  # a code copied from a card
    codes = spoken_codes(typed, this_year=jalali_year(utcnow()))
    if not codes:
        await message.reply_text(context.t("agenda-add-usage"))
        return
    cards = context.runtime.card_renderer
    async with context.session() as session:
        for code in codes:
            try:
                added, case = await council.add_case(
                    session, settings=context.runtime.settings, user_id=user.id,
                    code=code.canonical, now=utcnow(),
                )  # fmt: skip
            except council.CouncilRefusedError:
                continue
            await session.commit()
            key = "agenda-added" if added else "agenda-already"
            await message.reply_text(
                context.t(key, item=code_for_display(case.code, cards.language))
            )
            return
    await message.reply_text(context.t("agenda-case-unknown"))


async def pattern_buttons(update: Update, context: MahalleContext) -> None:
    """Under a coordinator's /stats: one button per top neighbourhood × domain of the month."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    county = _county_as_coordinator(context, user.id)
    if county is None:
        return
    signer = context.runtime.card_renderer.signer
    async with context.session() as session:
        found = await council.top_patterns(session, county_key=county.key, now=utcnow())
    if not found:
        return
    rows = [
        [
            {
                "text": context.t(
                    "agenda-pattern-button", count=p.count, domain=p.domain,
                    neighbourhood=p.neighbourhood,
                ),
                "callback_data": signer.sign(PATTERN_PREFIX, p.neighbourhood_id, p.domain_key),
            }
        ]
        for p in found
    ]  # fmt: skip
    markup = InlineKeyboardMarkup.de_json({"inline_keyboard": rows}, None)
    await message.reply_text(context.t("agenda-patterns"), reply_markup=markup)


async def pattern_pressed(update: Update, context: MahalleContext) -> None:
    """A pattern button: it goes on the next agenda, once."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 3 or parts[0] != PATTERN_PREFIX or not parts[1].isdigit():
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        try:
            added, text = await council.add_pattern(
                session, settings=context.runtime.settings, user_id=query.from_user.id,
                neighbourhood_id=int(parts[1]), domain_key=parts[2],
                cards=context.runtime.card_renderer, now=utcnow(),
            )  # fmt: skip
        except council.CouncilRefusedError as error:
            await alert(query, context.t(error.reason))
            return
        await session.commit()
    await alert(query, context.t("agenda-added" if added else "agenda-already", item=text))


async def case_pressed(update: Update, context: MahalleContext) -> None:
    """The case card's agenda button: a coordinator puts the case on the next agenda, once."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if (
        parts is None
        or len(parts) != 2
        or parts[0] != council.AGENDA_CASE_PREFIX
        or not parts[1].isdigit()
    ):
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        case = await session.get(Case, int(parts[1]))
        if case is None:
            await alert(query, context.t("button-stale"))
            return
        try:
            added, case = await council.put_case(
                session, settings=context.runtime.settings, user_id=query.from_user.id,
                case=case, now=utcnow(), refusal="agenda-button-refused",
            )  # fmt: skip
        except council.CouncilRefusedError as error:
            await alert(query, context.t(error.reason))
            return
        await session.commit()
    item = code_for_display(case.code, context.language)
    await alert(query, context.t("agenda-added" if added else "agenda-already", item=item))


async def show_agenda(update: Update, context: MahalleContext) -> None:
    """/agenda: the next meeting's date and items, for coordinators and council members."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    settings = context.runtime.settings
    county = settings.county_of_coordinator(user.id) or settings.council_county_of(user.id)
    if county is None:
        await message.reply_text(context.t("council-only"))
        return
    async with context.session() as session:
        parts = await council.agenda_messages(
            session, county_key=county.key, cards=context.runtime.card_renderer, now=utcnow()
        )
        await session.commit()
    for text in parts:
        await message.reply_text(text)


async def set_meeting(update: Update, context: MahalleContext) -> None:
    """/meeting: the secretary is asked for the next meeting's Jalali date."""
    await _start_step(update, context, "meeting-date", "prompt-meeting-date")


async def new_decision(update: Update, context: MahalleContext) -> None:
    """/decision: the secretary is asked for a decision's text."""
    await _start_step(update, context, "decision-text", "prompt-decision-text")


async def _start_step(update: Update, context: MahalleContext, kind: str, prompt: str) -> None:
    """A secretary's typed step begins in their private chat."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    county = _county_as_secretary(context, user.id)
    if county is None:
        await message.reply_text(context.t("secretary-only"))
        return
    async with context.session() as session:
        await council.wait_for(
            session, user_id=user.id, kind=kind, county_key=county.key, now=utcnow()
        )
        await session.commit()
    await message.reply_text(context.t(prompt))


async def agency_picked(update: Update, context: MahalleContext) -> None:
    """The decision's responsible agency, picked by the secretary: the deadline is asked next."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or len(parts) != 2 or parts[0] != AGENCY_PREFIX:
        await alert(query, context.t("button-stale"))
        return
    async with context.session() as session:
        step = await council.get_step(session, query.from_user.id)
        if step is None or step.kind != "decision-agency":
            await alert(query, context.t("button-stale"))
            return
        step.kind, step.agency_key, step.created_at = "decision-deadline", parts[1], utcnow()
        await session.commit()
    await acknowledge(query)
    await context.bot.send_message(query.from_user.id, context.t("prompt-decision-deadline"))


# What the council's secretary is told when the decision's agency presses a button.
DECISION_NEWS = {
    Act.DECISION_ACCEPT: "decision-accepted-note",
    Act.DECISION_DONE: "decision-done-note",
}


async def decision_button(update: Update, context: MahalleContext) -> None:
    """Accept, report progress or done, pressed on a decision card in the agency's chat."""
    query = update.callback_query
    assert query is not None
    parts = context.runtime.card_renderer.signer.verify(query.data)
    act = next((a for a in DECISION_ACTS if parts and len(parts) == 3 and a == parts[1]), None)
    if act is None or parts is None or parts[0] != council.DECISION_PREFIX:
        await alert(query, context.t("button-stale"))
        return
    if not parts[2].isdigit():
        await alert(query, context.t("button-stale"))
        return
    cards = context.runtime.card_renderer
    async with context.session() as session:
        decision = await session.get(CouncilDecision, int(parts[2]), populate_existing=True)
        if decision is None:
            await alert(query, context.t("button-stale"))
            return
        found = await council.decision_verdict(
            session, user_id=query.from_user.id, act=act, decision=decision
        )
        if found is Verdict.NOT_YOURS:
            await alert(query, context.t("decision-not-yours"))
            return
        if found is Verdict.NOT_NOW:
            await refused(query, context, TransitionRefusedError(decision.status, None))
            return
        if act is Act.DECISION_PROGRESS:
            await council.wait_for(
                session, user_id=query.from_user.id, kind="decision-progress",
                county_key=decision.county_key, decision_id=decision.id, now=utcnow(),
            )  # fmt: skip
            await session.commit()
            text = context.t("prompt-decision-progress", number=decision.id)
            await staff.ask_privately(query, context, text)
            return
        try:
            decision = await council.work_on(
                session, decision=decision, act=act, actor_id=query.from_user.id,
                actor_name=staff.display_name(query.from_user), now=utcnow(),
            )  # fmt: skip
        except TransitionRefusedError as error:
            await refused(query, context, error)
            return
        agency = await session.get(Agency, decision.agency_key)
        name = agency.name if agency else ""
        said = DECISION_NEWS[act]
        council.tell_secretaries(
            session, decision=decision, settings=context.runtime.settings,
            text=cards.t(said, number=decision.id, agency=name),
        )  # fmt: skip
        await session.commit()
        payload = council.card(decision, name, cards)
    context.runtime.wake_outbox()
    markup = InlineKeyboardMarkup.de_json(payload["reply_markup"], None)
    await acknowledge(query, query.edit_message_text(payload["text"], reply_markup=markup))


# A secretary's steps are typed as the meeting agrees them: they wait the length of a meeting.
MEETING_MINUTES = 180
# What a secretary is told of a step typed after it lapsed: which command begins it again.
LAPSED = {
    "decision-text": "council-step-lapsed-decision",
    "decision-agency": "council-step-lapsed-decision",
    "decision-deadline": "council-step-lapsed-decision",
    "meeting-date": "council-step-lapsed-meeting",
}


# How long after a step lapsed a message is still answered as that step come too late; later
# it is read as whatever else it is.
LAPSE_SAID_WITHIN = timedelta(hours=12)


def _minutes_for(kind: str) -> int:
    """How long a typed step of this kind waits."""
    return MEETING_MINUTES if kind in LAPSED else STEP_MINUTES


async def owed_step(update: Update, context: MahalleContext) -> bool:
    """A private message that is a step owed to the council's desk; True when it was one."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.chat.type != ChatType.PRIVATE:
        return False
    async with context.session() as session:
        step = await council.get_step(session, user.id)
        if step is None:
            return False
        waited = utcnow() - as_utc(step.created_at)
        lapsed = waited > timedelta(minutes=_minutes_for(step.kind))
        if staff.is_cancel(message) or lapsed:
            await session.delete(step)
            other = await casework.pending_input(session, user_id=user.id, chat_id=message.chat.id)
            await session.commit()
            if lapsed and (other is not None or waited > LAPSE_SAID_WITHIN + timedelta(
                minutes=_minutes_for(step.kind)
            )):  # fmt: skip
                return False  # another step is owed, or this one is long forgotten
            said = LAPSED.get(step.kind, "step-expired") if lapsed else "step-cancelled"
            await message.reply_text(context.t(said))
            return True
        reply = await _take(session, message, step, context)
        await session.commit()
    context.runtime.wake_outbox()
    if reply is not None:
        await message.reply_text(reply)
    return True


async def _take(
    session: AsyncSession, message: Message, step: CouncilStep, context: MahalleContext
) -> str | None:
    """Apply one typed step; the answer to give (a picker is sent here instead of a text)."""
    typed, now = message.text or "", utcnow()
    settings, cards = context.runtime.settings, context.runtime.card_renderer
    if step.kind == "decision-agency":  # the agency is a button's to choose: the step waits
        return context.t("expect-decision-agency")
    if step.kind in ("meeting-date", "decision-deadline"):
        day = parse_jalali_date(typed)
        if day is None:
            return context.t("council-date-invalid")
        try:
            if step.kind == "meeting-date":
                await council.set_meeting_date(
                    session, county_key=step.county_key, meets_at=day, now=now
                )
                await session.delete(step)
                return context.t("meeting-date-set", date=format_date(day, context.language))
            assert step.text is not None and step.agency_key is not None
            decision = await council.record_decision(
                session, settings=settings, cards=cards, county_key=step.county_key,
                text=step.text, agency_key=step.agency_key, deadline_at=day,
                by=step.user_id, now=now,
            )  # fmt: skip
        except council.CouncilRefusedError as error:
            return context.t(error.reason)
        await session.delete(step)
        agency = await session.get(Agency, decision.agency_key)
        return context.t(
            "decision-recorded", number=decision.id, agency=agency.name if agency else "",
            date=format_date(day, context.language),
        )  # fmt: skip
    text = council.check_text(typed)
    if text is None:
        return context.t("note-length", high=council.MAX_TEXT)
    if step.kind == "decision-text":
        step.kind, step.text, step.created_at = "decision-agency", text, now
        county = settings.county_named(step.county_key)
        signer = cards.signer
        buttons = [
            {"text": a.name, "callback_data": signer.sign(AGENCY_PREFIX, a.key)}
            for a in county.agencies
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        markup = InlineKeyboardMarkup.de_json({"inline_keyboard": rows}, None)
        await message.reply_text(context.t("prompt-decision-agency"), reply_markup=markup)
        return None
    if step.kind == "decision-progress":
        pressed = await session.get(CouncilDecision, step.decision_id or 0)
        await session.delete(step)
        if pressed is None:
            return context.t("button-stale")
        verdict = await council.decision_verdict(
            session, user_id=step.user_id, act=Act.DECISION_PROGRESS, decision=pressed
        )
        if verdict is not Verdict.ALLOWED:
            return context.t("decision-not-yours")
        try:
            decision = await council.work_on(
                session, decision=pressed, act=Act.DECISION_PROGRESS, actor_id=step.user_id,
                actor_name=staff.display_name(message.from_user) if message.from_user else "",
                now=now, note=text,
            )  # fmt: skip
        except TransitionRefusedError as error:
            return already_done(context, error)
        council.tell_secretaries(
            session, decision=decision, settings=settings,
            text=cards.t("decision-progress-note", number=decision.id, text=isolate(text)),
        )  # fmt: skip
        return context.t("decision-progress-noted", number=decision.id)
    await session.delete(step)
    return None


async def export(update: Update, context: MahalleContext) -> None:
    """/council_export: the county's decisions and their state as CSV, safe for spreadsheets."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    settings = context.runtime.settings
    county = settings.county_of_coordinator(user.id) or settings.council_county_of(user.id)
    if county is None:
        await message.reply_text(context.t("council-only"))
        return
    async with context.session() as session:
        rows = await council.export_rows(session, county_key=county.key, now=utcnow())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([context.t(key) for key in council.EXPORT_HEADERS])
    for number, text, agency, deadline, status, progress, meets, overdue in rows:
        writer.writerow(
            [
                number, inert(text), inert(agency), format_date(deadline, context.language),
                context.t(council.STATUS_KEYS[DecisionStatus(status)]), inert(progress or ""),
                format_date(meets, context.language) if meets else "",
                context.t("council-export-yes") if overdue else "",
            ]
        )  # fmt: skip
    data = ("\ufeff" + buffer.getvalue()).encode()
    await message.reply_document(data, filename="council-decisions.csv")
