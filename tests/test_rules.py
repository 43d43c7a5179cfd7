"""The rules table (bot/rules.py) is what every card, press and typed step obeys: checked over
every act, role and status, and through the chat where a step completes long after its press."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from bot.cards import CaseView, agency_card
from bot.config import Settings
from bot.i18n import Translator
from bot.jalali import utcnow
from bot.rules import CARD_ORDER, RULES, Act, Role, Verdict, card_buttons, judge
from bot.services import casework
from bot.services.transitions import TransitionRefusedError
from bot.signing import Signer
from models.db import create_engine, create_session_factory
from models.entities import (
    BanEvent,
    Case,
    CaseEvent,
    CaseStatus,
    DecisionStatus,
    PendingInput,
    Staff,
    TaskStatus,
    User,
)
from tests.conftest import COORDINATOR, Bot
from tests.fakebot import ChatUser, alerts, texts
from tests.test_agency import MUNICIPALITY, POLICE, THEFT, add_staff, one_case, report

# No role, each role, each role with the coordinator's, and all of them: a verdict is "any of
# the person's roles may".
ROLE_SETS = [
    frozenset(),
    *(frozenset({role}) for role in Role),
    *(frozenset({role, Role.COORDINATOR}) for role in Role if role is not Role.COORDINATOR),
    frozenset(Role),
]
# Every status an act can start from: a case's, a task's, a council decision's, a reading's.
STATUSES = sorted({*CaseStatus, *TaskStatus, *DecisionStatus, "unread", "read"})
# What each act may start from, written out by hand from the lifecycle, so that the table is
# checked against the lifecycle rather than against itself.
EXPECTED_FROM: dict[Act, set[str]] = {
    Act.ACCEPT: {"forwarded", "reopened"},
    Act.ASK: {"forwarded", "accepted", "reopened"},
    Act.RESOLVE: {"accepted", "needs_info"},
    Act.REJECT: {"forwarded", "accepted", "needs_info", "reopened"},
    Act.REROUTE: {"forwarded", "accepted", "needs_info", "reopened"},
    Act.PLACE: {"triage"},
    Act.ANSWER: {"needs_info"},
    Act.CONFIRM_FIXED: {"resolved"},
    Act.REPORT_UNFIXED: {"resolved"},
    Act.RATE: {"closed"},
    Act.CARD: {"forwarded", "accepted", "needs_info", "reopened", "resolved", "closed", "rejected"},
    Act.JOIN: {"triage", "forwarded", "accepted", "needs_info", "reopened"},
    Act.LEAVE: {str(status) for status in CaseStatus},
    Act.OFFER_HELP: {"forwarded", "accepted", "needs_info", "reopened"},
    Act.DECIDE_OFFER: {"forwarded", "accepted", "needs_info", "reopened"},
    Act.COOPERATE: {"accepted", "needs_info"},
    # A task's acts start from the task's status (asked, accepted, done, cannot, cancelled).
    Act.TASK_ACCEPT: {"asked"},
    Act.TASK_DONE: {"accepted"},
    Act.TASK_CANNOT: {"asked", "accepted"},
    Act.TASK_CANCEL: {"asked", "accepted"},
    Act.CHOOSE: {"submitted"},
    # A handbook reading's statuses: only the person asked to read confirms, once.
    Act.READ_HANDBOOK: {"unread"},
    # The council: any case may go on the agenda; a decision's acts start from its status.
    Act.AGENDA_ADD: set(CaseStatus),
    Act.DECISION_ACCEPT: {"open"},
    Act.DECISION_PROGRESS: {"accepted"},
    Act.DECISION_DONE: {"accepted"},
}
AGENCY_ACTS = {
    Act.ACCEPT,
    Act.ASK,
    Act.RESOLVE,
    Act.REJECT,
    Act.REROUTE,
    Act.DECIDE_OFFER,
    Act.CARD,
    Act.COOPERATE,
}
AGENCY_ACTS |= {Act.TASK_CANCEL}  # the lead agency or a coordinator withdraws a request
ASKED_ACTS = {Act.TASK_ACCEPT, Act.TASK_DONE, Act.TASK_CANNOT}  # the asked agency's staff only
# Who may take part in a case other than by handling it.
TAKING_PART = {
    Act.JOIN: Role.RESIDENT,
    Act.LEAVE: Role.CO_REPORTER,
    Act.OFFER_HELP: Role.LOCAL_GROUP,
    Act.READ_HANDBOOK: Role.READER,
}
RESPONSIBLE_ACTS = {Act.DECISION_ACCEPT, Act.DECISION_PROGRESS, Act.DECISION_DONE}
REPORTER_ACTS = {Act.ANSWER, Act.CONFIRM_FIXED, Act.REPORT_UNFIXED, Act.RATE, Act.CHOOSE}


@pytest.mark.parametrize("act", list(Act))
@pytest.mark.parametrize(
    "status", sorted({*CaseStatus, *TaskStatus, *DecisionStatus, "unread", "read"})
)
@pytest.mark.parametrize("roles", ROLE_SETS, ids=lambda r: "+".join(sorted(r)) or "nobody")
def test_every_role_act_and_status(act: Act, status: str, roles: frozenset[Role]) -> None:
    if act in AGENCY_ACTS:
        may = roles & {Role.STAFF, Role.COORDINATOR}
    elif act in ASKED_ACTS:
        may = roles & {Role.ASKED}
    elif act in REPORTER_ACTS:
        may = roles & {Role.REPORTER}
    elif act in RESPONSIBLE_ACTS:
        may = roles & {Role.RESPONSIBLE}
    elif act in TAKING_PART:
        may = roles & {TAKING_PART[act]}
    else:
        may = roles & {Role.COORDINATOR}
    expected = (
        Verdict.NOT_YOURS
        if not may
        else Verdict.ALLOWED
        if status in EXPECTED_FROM[act]
        else Verdict.NOT_NOW
    )
    assert judge(act, roles, status) is expected


@pytest.mark.parametrize("status", list(CaseStatus))
def test_the_card_offers_exactly_what_its_agency_may_do(status: CaseStatus) -> None:
    """The buttons rendered on a real card are the acts the table allows staff in that status:
    a reopened case shows no "resolved" button, and pressing one is refused alike."""
    t = Translator.load()
    view = CaseView(
        case_id=7, code="1405-00007", status=status, domain_key="municipal",
        domain_title="خدمات شهری", agency_name="شهرداری", neighbourhood="یوسف‌آباد",
        district="منطقه ۶", created_at=utcnow(), text="متن", phone=None, duplicate_of=None,
        last_actor=None, last_change=None, confidence=None,
    )  # fmt: skip
    card = agency_card(view, lambda k, **v: t(k, "fa", **v), Signer("x"), "fa")
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    allowed = [a for a in CARD_ORDER if judge(a, {Role.STAFF}, status) is Verdict.ALLOWED]
    assert labels == [t(RULES[a].button or "", "fa") for a in allowed]
    assert [a for row in card_buttons(status) for a, _ in row] == allowed
    if status == CaseStatus.REOPENED:
        assert Act.RESOLVE not in allowed and Act.ACCEPT in allowed


async def test_typed_steps_follow_the_table_for_every_status_and_person(
    bot: Bot, settings: Settings
) -> None:
    """Every typed act, every status, and four people (the agency's staff, a coordinator,
    another agency's staff, a stranger): the step is applied exactly when the table says so,
    and otherwise nothing changes."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await add_staff(settings, 2002, "police", "احمدی")
    await report(bot.user())
    engine = create_engine(settings.database.url)
    factory = create_session_factory(engine)
    people = {2001: {Role.STAFF}, COORDINATOR: {Role.COORDINATOR}, 2002: set(), 4444: set()}
    renderer = bot.app.bot_data["runtime"].card_renderer
    for act in (Act.ASK, Act.RESOLVE, Act.REJECT):
        for status in CaseStatus:
            for person, roles in people.items():
                async with factory() as session:
                    case = await session.scalar(select(Case))
                    assert case is not None
                    await session.execute(update(Case).values(status=status))
                    await session.execute(delete(CaseEvent))
                    await session.commit()
                    await casework.wait_for_input(
                        session, user_id=person, chat_id=MUNICIPALITY, act=act, case=case,
                        now=utcnow(),
                    )  # fmt: skip
                    await session.commit()
                    pending = await casework.pending_input(
                        session, user_id=person, chat_id=MUNICIPALITY
                    )
                    assert pending is not None
                    try:
                        await casework.finish_input(
                            session, pending=pending, text="یادداشت", actor_name="x",
                            cards=renderer, settings=settings, now=utcnow(),
                        )  # fmt: skip
                        await session.commit()
                        applied = True
                    except (casework.StepRefusedError, TransitionRefusedError):
                        await session.rollback()
                        applied = False
                    now_status = await session.scalar(select(Case.status))
                    events = await session.scalar(select(func.count()).select_from(CaseEvent))
                    await session.execute(delete(PendingInput))
                    await session.commit()
                expected = judge(act, frozenset(roles), status) is Verdict.ALLOWED
                assert applied is expected, (act, status, person)
                assert now_status == (RULES[act].to if expected else status), (act, status)
                assert events == (1 if expected else 0)
    await engine.dispose()


async def _pending(settings: Settings) -> list[PendingInput]:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = list((await session.scalars(select(PendingInput))).all())
    await engine.dispose()
    return rows


async def test_a_reason_typed_after_the_case_was_rerouted_is_refused(
    bot: Bot, settings: Settings
) -> None:
    """A clerk presses reject; a coordinator reroutes the case to the police meanwhile; the
    clerk's reason no longer rejects it, at either agency, and the reporter hears nothing of
    a rejection."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("رد")
    coordinator = bot.in_group(COORDINATOR, MUNICIPALITY, "دبیرخانه")
    await coordinator.press("ارجاع به دستگاه دیگر")
    await coordinator.press("انتظامی")
    heard_before = len(bot.api.to_chat(resident.chat_id))
    answer = texts(await clerk.reply("خارج از محدودهٔ ماست"))
    assert any("ارجاع شده" in line for line in answer)
    case = await one_case(settings)
    assert case.status == "forwarded" and case.agency_key == "police"
    assert all("رد" not in c.text for c in bot.api.to_chat(resident.chat_id)[heard_before:])
    assert await _pending(settings) == []


async def test_a_note_from_someone_removed_from_staff_meanwhile_is_refused(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        await session.execute(delete(Staff).where(Staff.user_id == 2001))
        await session.commit()
    await engine.dispose()
    answer = texts(await clerk.reply("انجام شد"))
    assert any("اجازه" in line for line in answer)
    assert (await one_case(settings)).status == "accepted"


async def test_an_old_press_does_not_take_later_chatter_or_a_late_reply(
    bot: Bot, settings: Settings
) -> None:
    """Ordinary messages in the group are never taken as the reason; a reply to the prompt
    after the step lapsed is refused politely and changes nothing."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("رد")
    assert texts(await clerk.send("سلام همکاران، جلسه ساعت ده است")) == []
    assert (await one_case(settings)).status == "forwarded"
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        minutes = settings.staff.input_minutes + 1
        await session.execute(
            update(PendingInput).values(created_at=utcnow() - timedelta(minutes=minutes))
        )
        await session.commit()
    await engine.dispose()
    heard_before = len(bot.api.to_chat(resident.chat_id))
    answer = texts(await clerk.reply("تکراری است"))
    assert any("مهلت" in line for line in answer)
    assert (await one_case(settings)).status == "forwarded"
    assert len(bot.api.to_chat(resident.chat_id)) == heard_before
    assert await _pending(settings) == []


async def test_pressing_a_stale_button_for_a_step_the_status_no_longer_allows(
    bot: Bot, settings: Settings
) -> None:
    """A reject pressed on a card whose case was resolved meanwhile asks for nothing."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    stale_reject = clerk.data_of("رد")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("انجام شد")
    calls = await clerk.press_data(stale_reject)
    assert "رضایی" in alerts(calls)[0]
    assert not [c for c in calls if (c.params.get("reply_markup") or {}).get("force_reply")]
    assert await _pending(settings) == []
    assert (await one_case(settings)).status == "resolved"


async def test_cards_sent_before_the_acts_were_named_still_work(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    signer = bot.app.bot_data["runtime"].card_renderer.signer
    case = await one_case(settings)
    await clerk.press_data(signer.sign("cs", "ac", case.id))
    assert (await one_case(settings)).status == "accepted"


# --- who may be blocked ----------------------------------------------------------------------


async def _ban_events(settings: Settings) -> list[tuple[int, bool, int]]:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(BanEvent.user_id, BanEvent.banned, BanEvent.actor_id).order_by(BanEvent.id)
        )
        found = [(int(a), bool(b), int(c)) for a, b, c in rows]
    await engine.dispose()
    return found


async def _banned(settings: Settings) -> set[int]:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        found = set((await session.scalars(select(User.id).where(User.banned))).all())
    await engine.dispose()
    return found


async def test_a_coordinator_cannot_block_themself_staff_or_coordinators(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    coordinator = bot.user(COORDINATOR)
    for target, says in ((COORDINATOR, "خودتان"), (2001, "/staff")):
        answer = texts(await coordinator.send(f"/block {target}"))[0]
        assert says in answer
    assert await _banned(settings) == set()
    assert await _ban_events(settings) == []
    assert texts(await coordinator.send("/start"))  # not locked out


async def test_a_block_is_audited_with_who_blocked_whom(bot: Bot, settings: Settings) -> None:
    resident = bot.user(1001)
    await report(resident, THEFT)
    coordinator = bot.user(COORDINATOR)
    assert "مسدود شد" in texts(await coordinator.send("/block ۱۰۰۱"))[0]
    await coordinator.send("/unblock 1001")
    assert await _ban_events(settings) == [(1001, True, COORDINATOR), (1001, False, COORDINATOR)]
    assert await _banned(settings) == set()
    assert POLICE  # the theft went to the police: the resident is a resident of this county


async def test_a_coordinator_blocks_only_within_their_county(database_url: str) -> None:
    from tests.fakebot import start_bot, stop_bot
    from tests.test_counties import REY_COORDINATOR, report_in, two_counties

    settings = two_counties(database_url)
    app, api = await start_bot(settings)
    tehrani, rey_resident = ChatUser(app, api, 1001), ChatUser(app, api, 1002)
    await report_in(tehrani, "یوسف‌آباد")
    await report_in(rey_resident, "دولت‌آباد")
    rey = ChatUser(app, api, REY_COORDINATOR)
    refused = texts(await rey.send("/block 1001"))[0]
    assert "شهرستان" in refused
    assert "مسدود" in texts(await rey.send("/block 1002"))[0]
    for someone_elses in (COORDINATOR, 5555):  # another county's coordinator; a stranger
        assert "مسدود شد" not in texts(await rey.send(f"/block {someone_elses}"))[0]
    assert await _banned(settings) == {1002}
    assert await _ban_events(settings) == [(1002, True, REY_COORDINATOR)]
    await stop_bot(app)


async def test_a_clerk_hears_why_a_reply_was_not_taken(bot: Bot, settings: Settings) -> None:
    """A reply to a prompt a later press replaced, a photo, or marks nobody can see: each is
    answered, and nothing changes."""
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("پرسش از گزارش‌دهنده")
    privately = clerk.private()
    asked = [m for m in bot.api.delivered(2001) if (m.reply_markup or {}).get("force_reply")]
    await clerk.press("رسیدگی شد")
    assert "تازه‌تر" in texts(await privately.reply_to(asked[-1].message_id, "کدام کوچه؟"))[0]
    assert (await one_case(settings)).status == "accepted"
    assert "حرف" in texts(await clerk.reply("\u200c\u200c\u200c"))[0]
    photo = [{"file_id": "P", "file_unique_id": "p", "width": 9, "height": 9}]
    await privately.send_content(photo=photo, caption="انجام شد")
    assert "حرف" in privately.last_text
    assert (await one_case(settings)).status == "accepted"
    assert "چیزی ثبت نشد" in texts(await privately.send("/cancel"))[0]
    assert "ثبت شد" not in texts(await privately.send("رسیدگی شد، سطل خالی شد"))[-1]
    assert (await one_case(settings)).status == "accepted", "a cancelled step takes nothing"


async def test_nobody_is_asked_or_said_to_be_told_once_the_reporter_is_forgotten(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    stale_ask = clerk.data_of("پرسش")
    await resident.send("/forget_me")
    await resident.press("بله، پاک شود")
    assert "پرسش از گزارش‌دهنده" not in clerk.button_labels()[-4:]
    assert "پاک کرده" in alerts(await clerk.press_data(stale_ask))[0]
    await clerk.press("رسیدگی شد")
    answer = texts(await clerk.reply("انجام شد"))[0]
    assert "خبری به او نمی‌رسد" in answer and "اطلاع داده شد" not in answer
    assert (await one_case(settings)).status == "resolved"


async def test_unblocking_and_blocking_people_who_never_wrote(bot: Bot, settings: Settings) -> None:
    coordinator = bot.user(COORDINATOR)
    assert "پیامی نداده" in texts(await coordinator.send("/block 777777"))[0]
    assert "مسدود نیست" in texts(await coordinator.send("/unblock 777777"))[0]
    assert "شناسهٔ عددی" in texts(await coordinator.send("/block 99999999999999999999999"))[0]
    assert await _ban_events(settings) == []
