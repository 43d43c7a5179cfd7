"""Forwarding to agencies and the agency's work on a case, driven chat by chat."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.config import Settings
from bot.digits import persian_digits
from models.db import create_engine, create_session_factory
from models.entities import Case, CaseEvent, Invite, Staff, TriageCorrection
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot, agency_chat
from tests.fakebot import ApiCall, ChatUser, alerts, bot_side, query_too_old, texts
from tests.test_report_flow import DESCRIPTION, cases_in, confirm_report, walk_to_summary

MUNICIPALITY = agency_chat(0)
POLICE = agency_chat(2)
THEFT = "دیشب دزد از پشت‌بام وارد خانه همسایه شد و طلاهایشان را برد"


async def add_staff(settings: Settings, user_id: int, agency_key: str, name: str) -> None:
    """Make someone staff of an agency directly (invites have their own test)."""
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        session.add(Staff(user_id=user_id, agency_key=agency_key, name=name))
        await session.commit()
    await engine.dispose()


async def one_case(settings: Settings) -> Case:
    [case] = await cases_in(settings)
    return case


async def events_of(settings: Settings, case_id: int) -> list[tuple[str | None, str, str | None]]:
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(CaseEvent.from_status, CaseEvent.to_status, CaseEvent.note)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.id)
        )
        found = [tuple(row) for row in rows]
    await engine.dispose()
    return found  # type: ignore[return-value]


async def report(resident: ChatUser, text: str = DESCRIPTION) -> None:
    await walk_to_summary(resident, text)
    await confirm_report(resident)


def sent_to(bot: Bot, chat_id: int, method: str = "sendMessage") -> list[ApiCall]:
    return [c for c in bot.api.to_chat(chat_id) if c.method == method]


async def test_card_shows_the_case_and_html_stays_literal(bot: Bot, settings: Settings) -> None:
    resident = bot.user()
    tricky = 'سطل زباله <b>پر</b> شده & <a href="http://x.ir">اینجا</a> بوی بد می‌دهد'
    await resident.send("📝 گزارش جدید")
    await resident.send("یوسف آباد")
    await resident.press("یوسف‌آباد")
    await resident.send(tricky)
    await resident.send_photo("PH1")
    await resident.send_photo("PH2")
    await resident.send_location(35.73, 51.41)
    await resident.send("ادامه ⬅️")
    await resident.send_contact("+989121234567")
    await resident.press("ثبت گزارش")

    case = await one_case(settings)
    [album] = sent_to(bot, MUNICIPALITY, "sendMediaGroup")
    assert [m["media"] for m in album.params["media"]] == ["PH1", "PH2"]
    [location] = sent_to(bot, MUNICIPALITY, "sendLocation")
    assert (location.params["latitude"], location.params["longitude"]) == (35.73, 51.41)
    [card] = sent_to(bot, MUNICIPALITY)
    assert tricky in card.text, "the reporter's text, character for character"
    assert "parse_mode" not in card.params
    for shown in (persian_digits(case.code), "خدمات شهری", "یوسف‌آباد", "منطقه ۶", "+989121234567"):
        assert shown in card.text
    labels = [b["text"] for row in card.params["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["✅ پذیرش", "❓ پرسش از گزارش‌دهنده", "⛔️ رد", "↪️ ارجاع به دستگاه دیگر"]
    calls = bot.api.to_chat(MUNICIPALITY)
    assert calls.index(album) < calls.index(card), "photos first, the card with its buttons last"


async def test_anonymous_reporter_phone_is_not_shown(bot: Bot) -> None:
    await report(bot.user())
    [card] = sent_to(bot, MUNICIPALITY)
    assert "☎️" not in card.text


async def test_similar_open_case_is_flagged_as_possible_duplicate(
    bot: Bot, settings: Settings
) -> None:
    await report(bot.user(1001))
    await report(bot.user(1002), DESCRIPTION + " واقعا")
    first, second = sent_to(bot, MUNICIPALITY)
    [case, _] = await cases_in(settings)
    assert "تکراری" not in first.text
    assert "تکراری" in second.text and persian_digits(case.code) in second.text


async def test_accept_edits_the_card_and_tells_the_reporter(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    calls = await clerk.press("پذیرش")
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert "در دست بررسی" in edit.text and "کارشناس رضایی" in edit.text
    assert "پذیرش" not in str(edit.params["reply_markup"]), "accept is gone once accepted"
    assert "پذیرفت" in resident.last_text
    case = await one_case(settings)
    assert case.status == "accepted"
    assert (await events_of(settings, case.id))[-1][:2] == ("forwarded", "accepted")


async def test_only_that_agencys_staff_or_coordinators_may_act(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2002, "police", "سرکار احمدی")
    await report(bot.user())
    outsider = bot.in_group(2002, MUNICIPALITY, "سرکار احمدی")
    assert "مربوط به دستگاه شما نیست" in alerts(await outsider.press("پذیرش"))[0]
    stranger = bot.in_group(3333, MUNICIPALITY, "رهگذر")
    assert "مربوط به دستگاه شما نیست" in alerts(await stranger.press("پذیرش"))[0]
    assert (await one_case(settings)).status == "forwarded"
    coordinator = bot.in_group(COORDINATOR, MUNICIPALITY, "دبیرخانه")
    await coordinator.press("پذیرش")
    assert (await one_case(settings)).status == "accepted"


async def test_presses_handled_late_in_a_group_still_act_and_say_nothing_aloud(
    bot: Bot, settings: Settings
) -> None:
    """After a backlog Telegram no longer takes a button's answer: the accept still happens;
    the outsider's refusal, meant for them alone, is not posted to the agency's group."""
    await add_staff(settings, 2001, "municipality", "کارشناس رضایی")
    await add_staff(settings, 2002, "police", "سرکار احمدی")
    resident = bot.user()
    await report(resident)
    bot.api.fail = query_too_old
    outsider = bot.in_group(2002, MUNICIPALITY, "سرکار احمدی")
    assert texts(await outsider.press("پذیرش")) == []
    clerk = bot.in_group(2001, MUNICIPALITY, "کارشناس رضایی")
    [edit] = [c for c in await clerk.press("پذیرش") if c.method == "editMessageText"]
    assert "در دست بررسی" in edit.text
    assert (await one_case(settings)).status == "accepted"
    assert "پذیرفت" in resident.last_text


async def test_two_staff_pressing_accept_one_wins(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await add_staff(settings, 2003, "municipality", "کریمی")
    await report(bot.user())
    first = bot.in_group(2001, MUNICIPALITY, "رضایی")
    second = bot.in_group(2003, MUNICIPALITY, "کریمی")
    data = first.data_of("پذیرش")
    await first.press_data(data)
    answer = alerts(
        await second.press_data(data)
    )  # the card on the second phone was not refreshed yet
    assert "رضایی" in answer[0] and "پیش‌تر" in answer[0]
    case = await one_case(settings)
    assert [e[1] for e in await events_of(settings, case.id)].count("accepted") == 1


async def test_forged_or_altered_card_buttons_are_refused(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    await report(bot.user())
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    genuine = clerk.data_of("پذیرش")
    body, _, signature = genuine.rpartition(":")
    for forged in (
        f"{body}:{'A' * len(signature)}",
        genuine.replace(":accept:", ":resolve:"),
        "cs:ac:1",
        "cs:ac:1:x:y",
    ):
        assert "دیگر فعال نیست" in alerts(await clerk.press_data(forged))[0]
    assert (await one_case(settings)).status == "forwarded"


async def test_question_relay_both_ways_without_identities(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user(1007)
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    pressed = await clerk.press("پرسش از گزارش‌دهنده")
    assert "گفت‌وگوی خصوصی" in alerts(pressed)[0], "the group is told where the bot asks"
    assert "همین‌جا بنویسید" in clerk.private().last_text
    await clerk.reply("دقیقاً جلوی کدام پلاک است؟")
    assert "ثبت شد" in clerk.private().last_text

    question = resident.last_text
    assert "دقیقاً جلوی کدام پلاک است؟" in question and "رضایی" not in question
    await resident.press("پاسخ می‌دهم")
    await resident.send("جلوی پلاک ۱۲، کنار نانوایی")
    assert "به دستگاه رسید" in resident.last_text

    [relay] = [c for c in sent_to(bot, MUNICIPALITY) if "پاسخ گزارش‌دهنده" in c.text]
    case = await one_case(settings)
    assert "جلوی پلاک ۱۲" in relay.text and str(1007) not in relay.text
    [shown] = [m for m in bot.api.delivered(MUNICIPALITY) if "پاسخ گزارش‌دهنده" in m.text]
    assert shown.reply_to == case.card_message_id, "threaded under the card, on either messenger"
    assert case.status == "accepted"
    edits = [c for c in bot.api.to_chat(MUNICIPALITY) if c.method == "editMessageText"]
    assert "در دست بررسی" in edits[-1].text, "the card shows the case back in progress"


async def test_reporter_can_answer_with_a_photo(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پرسش از گزارش‌دهنده")
    await clerk.reply("عکس از نزدیک بفرستید")
    await resident.press("پاسخ می‌دهم")
    await resident.send_photo("ANSWER-PHOTO", caption="این هم عکس")
    [photo] = sent_to(bot, MUNICIPALITY, "sendPhoto")
    assert photo.params["photo"] == "ANSWER-PHOTO" and "این هم عکس" in photo.text


async def test_resolve_then_fixed_closes_and_takes_one_rating(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("سطل تخلیه و محل شست‌وشو شد")
    assert "سطل تخلیه و محل شست‌وشو شد" in resident.last_text
    await resident.press("بله، برطرف شد")
    assert "از ۱ تا ۵" in resident.last_text
    rate_five, rate_one = resident.data_of("۵⭐"), resident.data_of("۱⭐")
    rated = await resident.press_data(rate_five)
    assert texts(rated) == ["از امتیاز شما ممنونیم."] and alerts(rated) == [], "thanked once"
    case = await one_case(settings)
    assert (case.status, case.rating) == ("closed", 5)
    again = alerts(await resident.press_data(rate_one))
    assert "پیش‌تر" in again[0]
    assert (await one_case(settings)).rating == 5


async def test_not_fixed_reopens_at_the_same_agency_and_counts(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("پذیرش")
    await clerk.press("رسیدگی شد")
    await clerk.reply("انجام شد")
    await resident.press("نه، برطرف نشده")
    case = await one_case(settings)
    assert (case.status, case.reopen_count, case.agency_key) == ("reopened", 1, "municipality")
    assert any("برطرف نشده" in c.text for c in sent_to(bot, MUNICIPALITY))
    assert "دوباره باز شد" in resident.last_text
    await clerk.press("پذیرش")
    assert (await one_case(settings)).status == "accepted"


async def test_reject_with_a_reason_tells_the_reporter(bot: Bot, settings: Settings) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("رد")
    await clerk.reply("این کوچه در حریم بزرگراه و خارج از محدوده ماست")
    assert "خارج از محدوده ماست" in resident.last_text and "نتوانست" in resident.last_text
    assert (await one_case(settings)).status == "rejected"


async def test_reroute_moves_the_case_and_is_kept_as_a_correction(
    bot: Bot, settings: Settings
) -> None:
    await add_staff(settings, 2001, "municipality", "رضایی")
    resident = bot.user()
    await report(resident)
    clerk = bot.in_group(2001, MUNICIPALITY, "رضایی")
    await clerk.press("ارجاع به دستگاه دیگر")
    assert "خدمات شهری" not in clerk.button_labels()[-11:], "its own domain is not offered"
    await clerk.press("انتظامی و امنیت")
    case = await one_case(settings)
    assert (case.status, case.agency_key, case.domain_key) == ("forwarded", "police", "security")
    [police_card] = sent_to(bot, POLICE)
    assert DESCRIPTION in police_card.text
    old_card = [c for c in bot.api.to_chat(MUNICIPALITY) if c.method == "editMessageText"][-1]
    assert "ارجاع شد" in old_card.text and not old_card.params.get("reply_markup")
    assert "کلانتری" in resident.last_text
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        corrections = (await session.scalars(select(TriageCorrection))).all()
    await engine.dispose()
    assert [(c.domain_key, c.source) for c in corrections] == [("security", "reroute")]
    assert [e[1] for e in await events_of(settings, case.id)][-2:] == ["rerouted", "forwarded"]


async def test_unsure_triage_goes_to_the_coordinator_who_places_it(
    bot: Bot, settings: Settings
) -> None:
    resident = bot.user()
    await report(resident, "سلام، یه سوال داشتم درباره این ربات و اینکه چطوری کار میکنه")
    case = await one_case(settings)
    assert case.status == "triage"
    [queue_card] = sent_to(bot, COORDINATOR_CHAT)
    assert persian_digits(case.code) in queue_card.text
    intruder = bot.in_group(2001, COORDINATOR_CHAT, "رضایی")
    assert "دبیرخانه" in alerts(await intruder.press("مشارکت و پیشنهاد"))[0]
    coordinator = bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
    other = coordinator.data_of("سایر")
    await coordinator.press("مشارکت و پیشنهاد")
    case = await one_case(settings)
    assert (case.status, case.domain_key) == ("forwarded", "participation")
    assert len(sent_to(bot, agency_chat(9))) == 1, "the card reached the chosen agency"
    late = alerts(await coordinator.press_data(other))
    assert "پیش‌تر" in late[0]


async def test_urgent_danger_gets_the_emergency_numbers(bot: Bot, settings: Settings) -> None:
    resident = bot.user()
    await report(resident, "بوی گاز شدید در راه‌پله ساختمان می‌آید و همه ترسیده‌اند")
    replies = texts(bot.api.to_chat(resident.user_id))
    [warning] = [r for r in replies if "فوراً تماس" in r]
    assert "۱۹۴" in warning and "۱۲۵" in warning and "۱۱۰" not in warning, "gas: gas and fire"
    assert (await one_case(settings)).status in {"forwarded", "triage"}


async def test_invites_make_staff_once(bot: Bot, settings: Settings) -> None:
    coordinator = bot.user(COORDINATOR)
    usage = texts(await coordinator.send("/invite"))
    assert "کدام دستگاه" in usage[0] and "police" not in usage[0], "agencies offered by name"
    link_text = texts(await coordinator.send("/invite police"))[0]
    token = link_text.rsplit("join_", 1)[1].strip()
    assert f"{settings.telegram.deep_link_base}mahalle_bot?start=join_" in link_text

    newcomer = bot.user(2500)
    assert "کارشناس «کلانتری / فراجا»" in texts(await newcomer.send(f"/start join_{token}"))[0]
    again = bot.user(2600)
    assert "معتبر نیست" in texts(await again.send(f"/start join_{token}"))[0]
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        staff = (await session.scalars(select(Staff.user_id))).all()
    await engine.dispose()
    assert list(staff) == [2500]

    resident = bot.user(1001)
    assert "فرمان" in texts(await resident.send("/invite police"))[0], "not for residents"


async def test_an_invite_names_its_agency_in_persian_or_from_buttons(
    bot: Bot, settings: Settings
) -> None:
    """A coordinator need not know the agencies' Latin keys: the name (or a part of it only
    one agency has) will do, and without one the agencies are offered as buttons."""
    coordinator = bot.user(COORDINATOR)
    by_name = texts(await coordinator.send("/invite کمیته‌ی امداد"))[0]
    assert "«کمیته امداد»" in by_name and "start=join_" in by_name
    unknown = texts(await coordinator.send("/invite آتش‌نشانی"))[0]
    assert "پیدا نشد" in unknown and "کدام دستگاه" in unknown
    assert "start=join_" not in unknown, "no invite made for a guess"
    several = await coordinator.send("/invite و")
    [said] = texts(several)
    assert "چند دستگاه" in said and "پیدا نشد" not in said, said
    offered = [
        b["text"] for row in several[-1].params["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert "آموزش و پرورش" in offered and "بهزیستی" not in offered, "only those it matches"
    await coordinator.send("/invite")
    welfare = coordinator.data_of("بهزیستی")
    edited = await coordinator.press("کلانتری / فراجا")
    [link] = [c.text for c in edited if c.method == "editMessageText"]
    assert "«کلانتری / فراجا»" in link and "start=join_" in link
    token = link.rsplit("join_", 1)[1].strip()
    assert (
        "کارشناس «کلانتری / فراجا»" in texts(await bot.user(2500).send(f"/start join_{token}"))[0]
    )
    resident = bot.user(1001)
    await resident.send("/start")
    refused = await resident.press_data(welfare)
    assert "start=join_" not in " ".join(texts(refused) + alerts(refused))
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        invites = (
            await session.scalars(select(Invite.agency_key).order_by(Invite.created_at))
        ).all()
    await engine.dispose()
    assert list(invites) == ["relief-committee", "police"], "a resident's press made none"


async def test_numbers_of_cases_and_events_stay_consistent(bot: Bot, settings: Settings) -> None:
    await report(bot.user())
    engine = create_engine(settings.database.url)
    async with create_session_factory(engine)() as session:
        events = await session.scalar(select(func.count()).select_from(CaseEvent))
    await engine.dispose()
    assert events == 2  # submitted, forwarded


async def test_chatid_in_a_group_tells_the_number_for_the_config(bot: Bot) -> None:
    """The number is the one the bot knows the group by: on Bale a positive one."""
    member = bot.in_group(2001, -100424242, "مدیر گروه")
    assert f"\u2066{bot_side(-100424242)}\u2069" in texts(await member.send("/chatid"))[0]


async def test_a_failed_routing_still_gives_the_code_and_the_sweep_places_the_case(
    bot: Bot, settings: Settings, monkeypatch: object
) -> None:
    from datetime import timedelta

    import pytest

    from bot import pipeline
    from bot.jalali import utcnow

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    from bot.services.routing import route_new_case as real

    async def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("bot.pipeline.route_new_case", broken)
    resident = bot.user()
    await walk_to_summary(resident)
    replies = texts(await resident.press("ثبت گزارش"))
    assert "کد پیگیری" in replies[0], "the case was committed, so the code is given"
    assert (await one_case(settings)).status == "submitted"
    monkeypatch.setattr("bot.pipeline.route_new_case", real)
    runtime = bot.jobs_runtime
    assert await pipeline.route_stranded(runtime, now=utcnow() + timedelta(minutes=2)) == 1
    assert (await one_case(settings)).status == "forwarded"


async def test_the_code_does_not_wait_for_triage_and_routing(
    bot: Bot, settings: Settings, monkeypatch: object
) -> None:
    import asyncio

    import pytest

    from bot import pipeline
    from bot.services.routing import route_new_case as real

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    routing = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> str:  # a busy database
        await routing.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr("bot.pipeline.route_new_case", slow)
    resident = ChatUser(bot.app, bot.api, 1001, settle=False)
    await walk_to_summary(resident)
    replies = texts(await asyncio.wait_for(resident.press("ثبت گزارش"), 5))
    assert "کد پیگیری" in replies[0], "answered while the case is still being placed"
    assert (await one_case(settings)).status == "submitted"
    routing.set()
    await pipeline.settle(bot.app.bot_data["runtime"])
    assert (await one_case(settings)).status == "forwarded"
    assert await bot.app.bot_data["runtime"].sender.deliver_due()
    assert any("فرستاده شد" in t for t in texts(bot.api.to_chat(1001))), "then told where"
