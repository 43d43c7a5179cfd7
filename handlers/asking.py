"""The reporter's answer to "which kind of problem is it?", asked when triage is unsure."""

from __future__ import annotations

from telegram import Update

from bot.cards import DONT_KNOW, PICK_PREFIX, PLAIN_DOMAIN_KEYS
from bot.context import MahalleContext
from bot.jalali import utcnow
from bot.rules import Act, Verdict
from bot.services import asking, casework
from bot.services.transitions import TransitionRefusedError
from handlers.buttons import alert, close_with, signed_case
from models.entities import CaseStatus, Domain


async def pick_domain(update: Update, context: MahalleContext) -> None:
    """A domain (or "don't know") pressed under the question: the case goes where it says."""
    query = update.callback_query
    assert query is not None
    checked = await signed_case(query, context, PICK_PREFIX, case_at=1)
    if checked is None:
        return
    (_, _, choice), case = checked
    runtime = context.runtime
    async with context.session() as session:
        found = await casework.verdict(
            session, user_id=query.from_user.id, act=Act.CHOOSE, case=case,
            settings=runtime.settings,
        )  # fmt: skip
        domain = None if choice == DONT_KNOW else await session.get(Domain, choice)
        known = domain is not None and domain.key in PLAIN_DOMAIN_KEYS
        if found is Verdict.NOT_YOURS or (choice != DONT_KNOW and not known):
            await alert(query, context.t("button-stale"))
            return
        try:
            reached = await asking.reporter_chose(
                session, case=case, domain_key=domain.key if domain else None,
                guessed=runtime.triage.classify(case.text_original).domain,
                reporter_id=query.from_user.id, settings=runtime.settings,
                cards=runtime.card_renderer, now=utcnow(),
            )  # fmt: skip
        except TransitionRefusedError:
            await alert(query, context.t("domain-answer-late"))
            return
        await session.commit()
    runtime.wake_outbox()
    if domain is None:
        line = context.t("domain-chosen-dont-know")
    elif reached == CaseStatus.FORWARDED:
        line = context.t("domain-chosen", choice=context.t(PLAIN_DOMAIN_KEYS[domain.key]))
    else:
        line = context.t("domain-chosen-waits", choice=context.t(PLAIN_DOMAIN_KEYS[domain.key]))
    await close_with(query, line)
