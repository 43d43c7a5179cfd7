"""What agency, coordinator and reporter chats are sent about a case: text and signed buttons.

Plain text, no parse_mode: Bale does not honour it everywhere, and plain text shows whatever a
reporter typed (tags, ampersands) literally without escaping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.digits import isolate
from bot.fit import fit_card
from bot.jalali import TrackingCode, format_datetime
from bot.rules import Act, Role, Verdict, allowed_from, card_buttons, judge, task_buttons
from bot.signing import Signer
from models.entities import CaseStatus, TaskStatus

Translate = Callable[..., str]
Buttons = list[list[dict[str, str]]]

STATUS_KEYS = {
    CaseStatus.SUBMITTED: "status-submitted",
    CaseStatus.TRIAGE: "status-triage",
    CaseStatus.FORWARDED: "status-forwarded",
    CaseStatus.ACCEPTED: "status-accepted",
    CaseStatus.NEEDS_INFO: "status-needs-info",
    CaseStatus.RESOLVED: "status-resolved",
    CaseStatus.CLOSED: "status-closed",
    CaseStatus.REJECTED: "status-rejected",
    CaseStatus.REROUTED: "status-rerouted",
    CaseStatus.REOPENED: "status-reopened",
}


# The kinds of help a local group may offer with a case, and their labels' locale keys.
OFFER_KIND_KEYS = {
    "cleanup": "offer-kind-cleanup",
    "elderly": "offer-kind-elderly",
    "class": "offer-kind-class",
    "other": "offer-kind-other",
}


def status_key(status: str, *, undeliverable: bool = False) -> str:
    """The locale key of a status as a resident reads it: a case handed to an agency the bot
    cannot reach (no chat configured, or removed from it) is waiting, not sent."""
    if undeliverable and status == CaseStatus.FORWARDED:
        return "status-waiting-for-agency"
    return STATUS_KEYS[CaseStatus(status)]


# Callback data prefixes of the case buttons: the agency card's acts (`case:<act>:<id>`), a
# domain picked to reroute to, and a domain a coordinator picks for a case triage could not place.
CASE_PREFIX, REROUTE_PREFIX, PLACE_PREFIX = "case", "case-to", "place"
BACK = "back"  # from the reroute picker back to the card's buttons


@dataclass(frozen=True)
class CaseView:
    """Everything a card shows, read from the database by the caller."""

    case_id: int
    code: str
    status: str
    domain_key: str | None
    domain_title: str
    agency_name: str
    neighbourhood: str
    district: str
    created_at: datetime
    text: str
    phone: str | None
    duplicate_of: str | None
    last_actor: str | None
    last_change: datetime | None
    confidence: float | None
    group_name: str | None = None
    # False once the reporter was forgotten: nobody is left to ask.
    reporter_known: bool = True
    # Where the reporter said the problem is, if they shared a location.
    latitude: float | None = None
    longitude: float | None = None
    # Residents who joined the case ("me too"), and the local groups' help the agency accepted
    # as (group name, kind of help).
    joined: int = 0
    offers: tuple[tuple[str, str], ...] = ()
    # Other agencies asked for a part of the work: (agency name, task status), oldest first.
    tasks: tuple[tuple[str, str], ...] = ()
    # The title of a second domain the report also concerns (two problems in one message).
    second_domain_title: str | None = None
    # The reporter chose the domain when triage was unsure.
    reporter_chose_domain: bool = False
    # (key, name) of the second domain's agency, when the lead may ask it in one press.
    second_agency: tuple[str, str] | None = None


def map_links(latitude: float, longitude: float) -> tuple[str, str]:
    """A place on OpenStreetMap and on Neshan (the map most people in Iran use)."""
    lat, lon = f"{latitude:.5f}", f"{longitude:.5f}"
    return (
        f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}",
        f"https://neshan.org/maps/@{lat},{lon},17z",
    )


def code_for_display(code: str, language: str) -> str:
    """A stored code as people read it."""
    return TrackingCode.from_canonical(code).display(language)


def _button(text: str, data: str) -> dict[str, str]:
    return {"text": text, "callback_data": data}


def agency_card(view: CaseView, t: Translate, signer: Signer, language: str) -> dict[str, Any]:
    """The card an agency acts on: the case, its state, and the buttons that state allows."""
    lines = [
        t("card-title", code=code_for_display(view.code, language)),
        t("card-domain", domain=view.domain_title),
        t("card-place", neighbourhood=isolate(view.neighbourhood), district=isolate(view.district)),
        t("card-date", date=format_datetime(view.created_at, language)),
    ]
    lines += domain_notes(view, t)
    if view.group_name:
        lines.append(t("card-group", group=isolate(view.group_name)))
    if view.phone:
        lines.append(t("card-phone", phone=isolate(view.phone)))
    if view.duplicate_of:
        lines.append(t("card-duplicate", code=code_for_display(view.duplicate_of, language)))
    if view.latitude is not None and view.longitude is not None:
        osm, neshan = map_links(view.latitude, view.longitude)
        lines.append(t("card-map", osm=osm, neshan=neshan))
    if view.joined:
        lines.append(t("card-joined", count=view.joined))
    lines += [
        t("card-offer", group=isolate(group), kind=t(OFFER_KIND_KEYS.get(kind, "offer-kind-other")))
        for group, kind in view.offers
    ]
    lines += ["", isolate(view.text), ""]
    lines.append(t("card-status", status=t(STATUS_KEYS[CaseStatus(view.status)])))
    if view.last_actor and view.last_change:
        lines.append(
            t(
                "card-by",
                name=isolate(view.last_actor),
                date=format_datetime(view.last_change, language),
            )
        )
    lines += [
        t("card-task", agency=isolate(name), status=t(TASK_STATUS_KEYS[TaskStatus(status)]))
        for name, status in view.tasks
    ]
    rows = [
        [_button(t(key), signer.sign(CASE_PREFIX, act, view.case_id)) for act, key in row]
        for row in card_buttons(view.status, reporter=view.reporter_known)
    ]
    if view.second_agency and judge(Act.COOPERATE, {Role.STAFF}, view.status) is Verdict.ALLOWED:
        label = t("button-ask-second", agency=view.second_agency[1])
        rows.append([_button(label, signer.sign(SECOND_PREFIX, view.case_id))])
    return {"text": "\n".join(lines), "reply_markup": {"inline_keyboard": rows}}


def domain_picker(
    case_id: int,
    domains: Sequence[tuple[str, str]],
    signer: Signer,
    *,
    action: str,
    back: str | None,
    t: Translate,
) -> dict[str, Any]:
    """One button per domain (key, title), two a row; used for reroute and triage."""
    buttons = [_button(title, signer.sign(action, case_id, key)) for key, title in domains]
    rows: Buttons = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    if back:
        rows.append([_button(t("button-back"), signer.sign(CASE_PREFIX, back, case_id))])
    return {"inline_keyboard": rows}


def triage_card(
    view: CaseView,
    domains: Sequence[tuple[str, str]],
    t: Translate,
    signer: Signer,
    language: str,
    reason_key: str,
) -> dict[str, Any]:
    """The coordinator's card for a case triage could not place."""
    confidence = round((view.confidence or 0) * 100)
    lines = [
        t("triage-title", code=code_for_display(view.code, language)),
        t(reason_key, domain=view.domain_title, confidence=confidence),
        t("card-place", neighbourhood=isolate(view.neighbourhood), district=isolate(view.district)),
        t("card-date", date=format_datetime(view.created_at, language)),
        "",
        isolate(view.text),
    ]
    markup = domain_picker(view.case_id, domains, signer, action=PLACE_PREFIX, back=None, t=t)
    return {"text": "\n".join(lines), "reply_markup": markup}


def yes_no_fixed(case_id: int, t: Translate, signer: Signer) -> dict[str, Any]:
    """The reporter's "was it fixed?" buttons."""
    return {
        "inline_keyboard": [
            [
                _button(t("button-fixed-yes"), signer.sign("fx", "y", case_id)),
                _button(t("button-fixed-no"), signer.sign("fx", "n", case_id)),
            ]
        ]
    }


def rating_buttons(case_id: int, signer: Signer, t: Translate) -> dict[str, Any]:
    """1 to 5 stars."""
    return {
        "inline_keyboard": [
            [
                _button(t("button-rating", stars=n), signer.sign("rt", case_id, n))
                for n in range(1, 6)
            ]
        ]
    }


def answer_button(case_id: int, t: Translate, signer: Signer) -> dict[str, Any]:
    """Lets the reporter answer an agency's question."""
    return {"inline_keyboard": [[_button(t("button-answer"), signer.sign("an", case_id))]]}


def reporter_buttons(
    case_id: int, status: str, rated: bool, t: Translate, signer: Signer
) -> dict[str, Any] | None:
    """The buttons of what a case waits for from its reporter now (an answer to the agency's
    question, whether the resolution fixed it, a rating), as its notice carried them; None
    when it waits for nothing of theirs."""
    if status in allowed_from(Act.ANSWER):
        return answer_button(case_id, t, signer)
    if status in allowed_from(Act.CONFIRM_FIXED):
        return yes_no_fixed(case_id, t, signer)
    if status in allowed_from(Act.RATE) and not rated:
        return rating_buttons(case_id, signer, t)
    return None


TASK_PREFIX = "task"  # a task card's acts: `task:<act>:<task id>`
# On the lead's card: ask the second domain's agency in one press, `task-also:<case id>`.
SECOND_PREFIX = "task-also"
TASK_STATUS_KEYS = {
    TaskStatus.ASKED: "task-status-asked",
    TaskStatus.ACCEPTED: "task-status-accepted",
    TaskStatus.DONE: "task-status-done",
    TaskStatus.CANNOT: "task-status-cannot",
    TaskStatus.CANCELLED: "task-status-cancelled",
}


@dataclass(frozen=True)
class TaskView:
    """What an asked agency's task card shows: the case, who asks what, and where it stands."""

    task_id: int
    code: str
    status: str
    lead_name: str
    note: str
    domain_title: str
    neighbourhood: str
    district: str
    created_at: datetime
    text: str  # the case's description, cut first when the card is too long
    phone: str | None
    reason: str | None
    last_actor: str | None
    last_change: datetime | None


def task_card(view: TaskView, t: Translate, signer: Signer, language: str) -> dict[str, Any]:
    """The asked agency's card for its part of a case: accept, done, cannot."""
    lines = [
        t("task-card-title", code=code_for_display(view.code, language)),
        t("task-card-from", agency=isolate(view.lead_name)),
        t("task-card-note", note=isolate(view.note)),
        "",
        t("card-domain", domain=view.domain_title),
        t("card-place", neighbourhood=isolate(view.neighbourhood), district=isolate(view.district)),
        t("card-date", date=format_datetime(view.created_at, language)),
    ]
    if view.phone:
        lines.append(t("card-phone", phone=isolate(view.phone)))
    lines += ["", isolate(view.text), ""]
    lines.append(t("task-card-status", status=t(TASK_STATUS_KEYS[TaskStatus(view.status)])))
    if view.reason:
        lines.append(t("task-card-reason", reason=isolate(view.reason)))
    if view.last_actor and view.last_change:
        lines.append(
            t(
                "card-by",
                name=isolate(view.last_actor),
                date=format_datetime(view.last_change, language),
            )
        )
    row = [
        _button(t(key), signer.sign(TASK_PREFIX, act, view.task_id))
        for act, key in task_buttons(view.status)
    ]
    return {"text": "\n".join(lines), "reply_markup": {"inline_keyboard": [row] if row else []}}


@dataclass(frozen=True)
class Cards:
    """Renders cards in the deployment's language with this bot's signer."""

    translate: Translate
    signer: Signer
    language: str

    def t(self, key: str, /, **values: object) -> str:
        """Text in the deployment's language (agency and coordinator chats)."""
        return self.translate(key, self.language, **values)

    def agency(self, view: CaseView) -> dict[str, Any]:
        """The agency card, within a message's length (`bot.fit`)."""
        return fit_card(lambda v: agency_card(v, self.t, self.signer, self.language), view)

    def task(self, view: TaskView) -> dict[str, Any]:
        """An asked agency's task card, within a message's length (`bot.fit`)."""
        return fit_card(lambda v: task_card(v, self.t, self.signer, self.language), view)

    def triage(
        self, view: CaseView, domains: Sequence[tuple[str, str]], reason_key: str
    ) -> dict[str, Any]:
        """The coordinator's triage card, within a message's length (`bot.fit`)."""
        return fit_card(
            lambda v: triage_card(v, domains, self.t, self.signer, self.language, reason_key), view
        )


# The reporter's answer to "which kind of problem is it?" (`pick:<case id>:<domain or ->`).
PICK_PREFIX = "pick"
DONT_KNOW = "-"  # the «نمی‌دانم» button's domain
# Each domain in a resident's words (what they are asked to choose from), not an agency's name.
PLAIN_DOMAIN_KEYS = {
    "municipal": "domain-plain-municipal",
    "utilities": "domain-plain-utilities",
    "security": "domain-plain-security",
    "social": "domain-plain-social",
    "family": "domain-plain-family",
    "cultural": "domain-plain-cultural",
    "health": "domain-plain-health",
    "welfare": "domain-plain-welfare",
    "education": "domain-plain-education",
    "participation": "domain-plain-participation",
    "other": "domain-plain-other",
}


def domain_notes(view: CaseView, t: Translate) -> list[str]:
    """The agency card's lines on how its domain was chosen and what else the report concerns."""
    lines = []
    if view.reporter_chose_domain:
        lines.append(t("card-reporter-chose"))
    if view.second_domain_title:
        lines.append(t("card-second-domain", domain=view.second_domain_title))
    return lines


def domain_question(
    case_id: int,
    code: str,
    choices: Sequence[str],
    signer: Signer,
    t: Translate,
    language: str,
) -> dict[str, Any]:
    """The reporter's one-tap question: each offered domain in plain words, then «نمی‌دانم»."""
    rows: Buttons = [
        [_button(t(PLAIN_DOMAIN_KEYS[key]), signer.sign(PICK_PREFIX, case_id, key))]
        for key in choices
        if key in PLAIN_DOMAIN_KEYS
    ]
    rows.append([_button(t("domain-dont-know"), signer.sign(PICK_PREFIX, case_id, DONT_KNOW))])
    return {
        "text": t("ask-domain", code=code_for_display(code, language)),
        "reply_markup": {"inline_keyboard": rows},
    }
