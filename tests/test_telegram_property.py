"""Random text, every length and mix of characters, through a case's whole life: each call the
bot makes is one Telegram accepts, and nobody gets the generic error.

The texts (up to 5,000 characters) mix Persian letters, astral emoji (two UTF-16 units each),
combining marks, ZWNJ and ZWJ, direction controls, filler characters, spaces and new lines. Each
example is a resident's description (then the summary, confirming, the agency card, with or
without their phone), an agency's question, the resident's answer, the resolution note, and the
resident opening their case (from the list, and by typing its code).

Hypothesis draws the examples first and the bot then runs them in one database, one resident
each (the bot runs on the test's event loop, which a Hypothesis test cannot await): a failure
names its example but is not shrunk. It runs on SQLite only, to keep it under a minute.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.config import Settings
from bot.digits import persian_digits
from models.db import create_engine, create_session_factory
from models.entities import Case
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot
from tests.fakebot import ChatUser, SentMessage, as_tests_know, texts
from tests.test_agency import add_staff
from tests.test_report_flow import DESCRIPTION

EXAMPLES = 25
GENERIC_ERROR = "مشکلی پیش آمد"
PERSIAN = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیءآأؤئة"
EMOJI = ["😀", "🚧", "🕳", "🏚", "💡", "🧱", "👩\u200d👩\u200d👧"]
MARKS = ["\u064e", "\u064f", "\u0650", "\u0651", "\u0652", "\u0670", "\u0301"]
JOINERS = ["\u200c", "\u200d"]
BIDI = ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069"]
FILLERS = ["\u200b", "\u2060", "\u3164", "\u00ad", "\u0640", "\u115f", "\u1160", "\uffa0"]
OTHERS = [" ", "  ", "\n", "\n\n", "۱۲۳", "42", ".", "،", "؟"]
EVERYTHING = [*PERSIAN, *EMOJI, *MARKS, *JOINERS, *BIDI, *FILLERS, *OTHERS]
# Mixes an example's text is drawn from: everything alike, or heavy in what normalising drops
# (marks, tatweel, direction controls: long as shown, short once normalised), in emoji (two
# units each), or in what nobody sees.
MIXES = [
    EVERYTHING,
    [*PERSIAN[:8], *MARKS, *BIDI, "\u0640", "\u0640"] * 2 + EVERYTHING,
    [*EMOJI, *EMOJI, *PERSIAN[:6], " "],
    [*FILLERS, *JOINERS, *BIDI, " ", "\n"],
]


def texts_up_to(longest: int, shortest: int = 0) -> st.SearchStrategy[str]:
    """A text of at most `longest` characters from one of the MIXES: as many pieces (one to a
    few characters each) as drawn, often as many as fill it."""
    pieces = st.integers(shortest, longest) | st.just(longest)
    return st.tuples(st.sampled_from(MIXES), pieces).flatmap(
        lambda mix_and_count: st.lists(
            st.sampled_from(mix_and_count[0]),
            min_size=mix_and_count[1],
            max_size=mix_and_count[1],
        ).map(lambda chosen: "".join(chosen)[:longest])
    )


def draw_examples(count: int) -> list[tuple[str, str, str, bool]]:
    """(description, question, answer, share the phone), `count` of them."""
    found: list[tuple[str, str, str, bool]] = []

    @settings(
        max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        description=texts_up_to(5000),
        question=texts_up_to(1000, 2),
        answer=texts_up_to(2000, 2),
        share=st.booleans(),
    )
    def collect(description: str, question: str, answer: str, share: bool) -> None:
        found.append((description, question, answer, share))

    collect()
    return found


def _button(message: SentMessage, label: str) -> str:
    """The callback data of the button labelled `label` on `message`."""
    for button in message.buttons():
        if label in button["text"]:
            return str(button["callback_data"])
    raise AssertionError(f"no {label!r} on the message; saw {message.buttons()}")


class Life:
    """One example's case, from the description to the resident opening it."""

    def __init__(self, bot: Bot, settings: Settings, user_id: int) -> None:
        self.bot, self.settings = bot, settings
        self.resident = bot.user(user_id)
        self.clerk_id, self.staffed = user_id + 100_000, False

    async def case(self) -> Case:
        """The resident's case as it is now."""
        engine = create_engine(self.settings.database.url)
        async with create_session_factory(engine)() as session:
            case = await session.scalar(
                select(Case).where(Case.reporter_id == self.resident.user_id)
            )
        await engine.dispose()
        assert case is not None
        return case

    async def card(self) -> tuple[ChatUser, SentMessage]:
        """The case's agency card, and the coordinator in that chat (who may act on it)."""
        case = await self.case()
        answers: list[str] = []  # what the resident's and the coordinator's presses were told
        if case.status == "submitted":  # triage unsure: its reporter was asked, and does not know
            calls = await self.resident.press("نمی‌دانم")
            answers += [c.text for c in calls if c.text]
            case = await self.case()
        if case.status == "triage":  # the coordinator places it
            # at a person's pace: one coordinator places many examples' cases, which counted
            # in one window would be slowed down as button mashing (tests/test_privacy.py)
            self.bot.app.bot_data["runtime"].presses.forget(COORDINATOR)
            coordinator = self.bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه")
            [card] = [
                m
                for m in self.bot.api.delivered(COORDINATOR_CHAT)
                if persian_digits(case.code) in m.text and m.buttons()
            ]
            calls = await coordinator.press_data(_button(card, "خدمات شهری"), card)
            answers += [c.text for c in calls if c.text]
            case = await self.case()
        assert case.card_chat_id is not None and case.card_message_id is not None, (
            case.status,
            answers,
            (case.text_original or "")[:80],
        )
        assert case.agency_key is not None
        if not self.staffed:  # one clerk per example: presses are limited per person
            await add_staff(self.settings, self.clerk_id, case.agency_key, "کارشناس")
            self.staffed = True
        chat_id = as_tests_know(case.card_chat_id)
        staff = self.bot.in_group(self.clerk_id, chat_id, "کارشناس")
        return staff, self.bot.api.messages[(chat_id, case.card_message_id)]

    async def press_on_card(self, label: str) -> None:
        """Press a button of the case's card."""
        staff, card = await self.card()
        await staff.press_data(_button(card, label), card)

    async def run(self, description: str, question: str, answer: str, share: bool) -> None:
        """The case's whole life."""
        resident = self.resident
        await resident.send("📝 گزارش جدید")
        await resident.send("یوسف آباد")
        await resident.press("یوسف‌آباد")
        await resident.send(description)
        if "عکس" not in resident.last_text:  # refused, and asked again: a real description
            await resident.send(DESCRIPTION)
        await resident.send("ادامه ⬅️")
        if share:
            await resident.send_contact("+989121234567")
        else:
            await resident.send("🙈 ناشناس بمانم")
        await resident.press("ثبت گزارش")

        await self.press_on_card("پذیرش")
        await self.press_on_card("پرسش از گزارش‌دهنده")
        await self.type_in_card_chat(question)
        await resident.press("پاسخ می‌دهم")
        if not any("به دستگاه رسید" in t for t in texts(await resident.send(answer))):
            await resident.send("جلوی پلاک ۱۲، کنار نانوایی")  # too short: a real answer
        await self.press_on_card("رسیدگی شد")
        await self.type_in_card_chat(question)

        case = await self.case()
        await resident.send("📋 گزارش‌های من")
        await resident.press(persian_digits(case.code))
        for _ in range(20):
            if "سابقهٔ قدیمی‌تر" not in " ".join(resident.button_labels()[-3:]):
                break
            await resident.press("سابقهٔ قدیمی‌تر")
        await resident.send(case.code)

    async def type_in_card_chat(self, note: str) -> None:
        """Type the question or note the card's button asked for (a real one if `note` is
        refused for its length)."""
        staff, _ = await self.card()
        if not any("ثبت شد" in t for t in texts(await staff.reply(note))):
            await staff.reply("لطفاً پلاک دقیق را بفرمایید")


async def test_random_text_through_a_case_is_always_accepted_by_telegram(
    bot: Bot, settings: Settings
) -> None:
    if settings.database.url.startswith("postgresql"):
        pytest.skip("random text runs on SQLite only, to stay under a minute")
    for number, example in enumerate(draw_examples(EXAMPLES)):
        life = Life(bot, settings, 50_000 + number)
        await life.run(*example)
        refused = [(c.method, why) for c, why in bot.api.unmeant_refusals()]
        assert not refused, f"example {number} {example!r:.300}: Telegram would refuse {refused}"
        errors = [c.text for c in bot.api.calls if GENERIC_ERROR in c.text]
        assert not errors, f"example {number} {example!r:.300}: the generic error was sent"
