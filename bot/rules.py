"""Who may do what to a case, and from which status: the one table the lifecycle is read from.

A case's tasks (a part of the work its agency asked of another agency) are in the same table:
their acts start from a task's status instead of the case's.

The agency card's buttons, every press and every typed step that completes a press (a question,
a resolution note, a rejection reason) ask this table, so what a card offers and what is allowed
cannot drift apart. A person's role is always worked out against the case as it is now: staff of
the agency that holds it now, a coordinator of the county it was filed in, or its reporter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from models.entities import CaseStatus, DecisionStatus, TaskStatus


class Role(enum.StrEnum):
    """A person's relation to one case."""

    STAFF = "staff"  # staff of the agency that holds the case now
    COORDINATOR = "coordinator"  # a coordinator of the county the case was filed in
    REPORTER = "reporter"  # the person who filed it
    RESIDENT = "resident"  # anyone else, writing to the bot in private
    CO_REPORTER = "co-reporter"  # a resident who joined the case ("me too")
    LOCAL_GROUP = "local-group"  # the founder of an approved local group of its neighbourhood
    ASKED = "asked"  # staff of the agency a task of the case asks for help
    READER = "reader"  # a person a handbook version was sent to, to read and confirm
    RESPONSIBLE = "responsible"  # staff of the agency a council decision is assigned to


class Act(enum.StrEnum):
    """What can be done to a case. The values are the words in the case card's callback data."""

    ACCEPT = "accept"
    ASK = "ask"
    RESOLVE = "resolve"
    REJECT = "reject"
    REROUTE = "reroute"
    PLACE = "place"  # a coordinator picks the domain of a case triage could not place
    CHOOSE = "choose"  # the reporter answers "which kind of problem is it?" (triage unsure)
    ANSWER = "answer"  # the reporter answers the agency's question
    CONFIRM_FIXED = "fixed"  # "was it fixed?" — yes
    REPORT_UNFIXED = "unfixed"  # "was it fixed?" — no: reopened
    RATE = "rate"
    CARD = "card"  # the agency's card sent again into its group (from a list or a look-up)
    JOIN = "join"  # "me too": a resident with the same problem joins the case
    LEAVE = "leave"  # a resident who joined stops following the case
    OFFER_HELP = "offer-help"  # a local group offers to help with the case
    DECIDE_OFFER = "decide-offer"  # the agency accepts or declines a group's offer
    COOPERATE = "cooperate"  # ask another agency for a part of the work, with a short note
    # On the asked agency's task card (callback data `task:<act>:<task id>`):
    TASK_ACCEPT = "t-accept"
    TASK_DONE = "t-done"
    TASK_CANNOT = "t-cannot"  # with a typed reason
    TASK_CANCEL = "t-cancel"  # the lead agency or a coordinator withdraws the request
    # On a new handbook version (callback data `hb:ok:<version>`), from a reading's status:
    READ_HANDBOOK = "hb-read"  # "I have read it": only the person it was sent to
    # The council: a case on the next meeting's agenda, and a decision's card
    # (callback data `dec:<act>:<decision id>`), whose acts start from a decision's status.
    AGENDA_ADD = "agenda-add"
    DECISION_ACCEPT = "d-accept"
    DECISION_PROGRESS = "d-progress"  # with a typed progress report
    DECISION_DONE = "d-done"


@dataclass(frozen=True)
class Rule:
    """Who may do an act, from which statuses, to which status, and how it shows on a card."""

    roles: frozenset[Role]
    from_statuses: frozenset[str]  # a case's statuses, or a task's for the task acts
    to: str | None
    typed: bool = False  # completed by a typed question, note or reason
    button: str | None = None  # locale key of the agency card's button


S = CaseStatus
_AGENCY = frozenset({Role.STAFF, Role.COORDINATOR})
_REPORTER = frozenset({Role.REPORTER})
# A reopened case is back at its agency waiting to be taken on again, as a forwarded one is.
_WAITING = frozenset({S.FORWARDED, S.REOPENED})
_OPEN_AT_AGENCY = frozenset({S.FORWARDED, S.ACCEPTED, S.NEEDS_INFO, S.REOPENED})
# Open: waiting for a coordinator or at its agency, not yet resolved.
_OPEN = _OPEN_AT_AGENCY | {S.TRIAGE}
T = TaskStatus
# Only the asked agency's own staff act on its task card (coordinators and the lead cancel).
_ASKED = frozenset({Role.ASKED})
_TASK_OPEN = frozenset({T.ASKED, T.ACCEPTED})
D = DecisionStatus
_RESPONSIBLE = frozenset({Role.RESPONSIBLE})

# A handbook reading's statuses: asked to read a version, and confirmed.
UNREAD, READ = "unread", "read"

RULES: dict[Act, Rule] = {
    Act.ACCEPT: Rule(_AGENCY, _WAITING, S.ACCEPTED, button="button-accept"),
    Act.ASK: Rule(_AGENCY, _WAITING | {S.ACCEPTED}, S.NEEDS_INFO, typed=True, button="button-ask"),
    Act.RESOLVE: Rule(
        _AGENCY,
        frozenset({S.ACCEPTED, S.NEEDS_INFO}),
        S.RESOLVED,
        typed=True,
        button="button-resolve",
    ),
    Act.REJECT: Rule(_AGENCY, _OPEN_AT_AGENCY, S.REJECTED, typed=True, button="button-reject"),
    Act.REROUTE: Rule(_AGENCY, _OPEN_AT_AGENCY, S.REROUTED, button="button-reroute"),
    Act.PLACE: Rule(frozenset({Role.COORDINATOR}), frozenset({S.TRIAGE}), S.FORWARDED),
    # Asked while the case waits to be placed; «نمی‌دانم» leads to the triage queue instead.
    Act.CHOOSE: Rule(_REPORTER, frozenset({S.SUBMITTED}), S.FORWARDED),
    Act.ANSWER: Rule(_REPORTER, frozenset({S.NEEDS_INFO}), S.ACCEPTED),
    Act.CONFIRM_FIXED: Rule(_REPORTER, frozenset({S.RESOLVED}), S.CLOSED),
    Act.REPORT_UNFIXED: Rule(_REPORTER, frozenset({S.RESOLVED}), S.REOPENED),
    Act.RATE: Rule(_REPORTER, frozenset({S.CLOSED}), None),
    Act.CARD: Rule(_AGENCY, _OPEN_AT_AGENCY | {S.RESOLVED, S.CLOSED, S.REJECTED}, None),
    # Participation: none of these moves the case; each is a compare-and-set of its own row.
    Act.JOIN: Rule(frozenset({Role.RESIDENT}), _OPEN, None),
    Act.LEAVE: Rule(frozenset({Role.CO_REPORTER}), frozenset(S), None),
    Act.OFFER_HELP: Rule(frozenset({Role.LOCAL_GROUP}), _OPEN_AT_AGENCY, None),
    Act.DECIDE_OFFER: Rule(_AGENCY, _OPEN_AT_AGENCY, None),
    # Asked of another agency once the case is taken on; the agency holding it stays its lead.
    Act.COOPERATE: Rule(
        _AGENCY, frozenset({S.ACCEPTED, S.NEEDS_INFO}), None, typed=True, button="button-cooperate"
    ),
    Act.TASK_ACCEPT: Rule(_ASKED, frozenset({T.ASKED}), T.ACCEPTED, button="button-task-accept"),
    Act.TASK_DONE: Rule(_ASKED, frozenset({T.ACCEPTED}), T.DONE, button="button-task-done"),
    Act.TASK_CANNOT: Rule(_ASKED, _TASK_OPEN, T.CANNOT, typed=True, button="button-task-cannot"),
    Act.TASK_CANCEL: Rule(_AGENCY, _TASK_OPEN, T.CANCELLED, button="button-task-cancel"),
    Act.READ_HANDBOOK: Rule(frozenset({Role.READER}), frozenset({UNREAD}), READ),
    Act.AGENDA_ADD: Rule(frozenset({Role.COORDINATOR}), frozenset(S), None),
    Act.DECISION_ACCEPT: Rule(
        _RESPONSIBLE, frozenset({D.OPEN}), D.ACCEPTED, button="button-decision-accept"
    ),
    Act.DECISION_PROGRESS: Rule(
        _RESPONSIBLE, frozenset({D.ACCEPTED}), None, typed=True, button="button-decision-progress"
    ),
    Act.DECISION_DONE: Rule(
        _RESPONSIBLE, frozenset({D.ACCEPTED}), D.DONE, button="button-decision-done"
    ),
}

# The order of the agency card's buttons, two to a row.
CARD_ORDER = (Act.ACCEPT, Act.ASK, Act.RESOLVE, Act.REJECT, Act.REROUTE, Act.COOPERATE)
# The order of a task card's buttons, in the asked agency's chat.
TASK_CARD_ORDER = (Act.TASK_ACCEPT, Act.TASK_DONE, Act.TASK_CANNOT)
# The order of a council decision's card buttons, in the responsible agency's chat.
DECISION_CARD_ORDER = (Act.DECISION_ACCEPT, Act.DECISION_PROGRESS, Act.DECISION_DONE)
# Typed steps by the name kept with a pending input.
TYPED_ACTS = {act for act, rule in RULES.items() if rule.typed}


def decision_buttons(status: str) -> list[tuple[Act, str]]:
    """The acts a decision card offers in this decision status, with their labels' keys."""
    return [
        (act, rule.button)
        for act in DECISION_CARD_ORDER
        if (rule := RULES[act]).button is not None and status in rule.from_statuses
    ]


class Verdict(enum.Enum):
    """The answer to "may this person do this now?"."""

    ALLOWED = "allowed"
    NOT_YOURS = "not-yours"  # no role on this case that may do it
    NOT_NOW = "not-now"  # the case's status no longer allows it


def judge(act: Act, roles: frozenset[Role] | set[Role], status: str | None) -> Verdict:
    """Whether someone with these roles on a case in this status may do `act`."""
    rule = RULES[act]
    if not rule.roles & set(roles):
        return Verdict.NOT_YOURS
    if status not in rule.from_statuses:
        return Verdict.NOT_NOW
    return Verdict.ALLOWED


def allowed_from(act: Act) -> frozenset[str]:
    """The statuses `act` may start from: the compare-and-set's condition."""
    return RULES[act].from_statuses


def card_buttons(status: str, *, reporter: bool = True) -> list[list[tuple[Act, str]]]:
    """The acts an agency card offers in this status with their labels' keys, two to a row;
    no question when the reporter is gone (forgotten at their request)."""
    acts = [
        (act, rule.button)
        for act in CARD_ORDER
        if (rule := RULES[act]).button is not None
        and status in rule.from_statuses
        and (reporter or act is not Act.ASK)
    ]
    return [acts[i : i + 2] for i in range(0, len(acts), 2)]


def task_buttons(status: str) -> list[tuple[Act, str]]:
    """The acts a task card offers in this task status, with their labels' keys."""
    return [
        (act, rule.button)
        for act in TASK_CARD_ORDER
        if (rule := RULES[act]).button is not None and status in rule.from_statuses
    ]


class BlockRefusal(enum.StrEnum):
    """Why a coordinator may not block someone; the values are locale keys."""

    SELF = "block-refused-self"
    COORDINATOR = "block-refused-coordinator"
    COUNCIL = "block-refused-council"  # named in the config, as coordinators are
    STAFF = "block-refused-staff"
    OTHER_COUNTY = "block-refused-county"
    UNKNOWN = "block-refused-unknown"  # never wrote to the bot: most likely a mistyped id
    ALREADY = "block-refused-already"
    NOT_BLOCKED = "block-refused-not-blocked"  # an unblock of someone who is not blocked
    UNBLOCK_OTHER_COUNTY = "unblock-refused-county"


def judge_block(
    *,
    is_self: bool,
    is_coordinator: bool,
    is_council: bool,
    is_staff: bool,
    in_county: bool,
    known: bool,
    is_blocked: bool,
) -> BlockRefusal | None:
    """Whether a coordinator may block someone: a person who has written to the bot and lives
    in their own county, never themself, another coordinator, a council member (those are
    removed from the config instead) or agency staff (removed from /staff). None when allowed."""
    if is_self:
        return BlockRefusal.SELF
    if is_coordinator:
        return BlockRefusal.COORDINATOR
    if is_council:
        return BlockRefusal.COUNCIL
    if is_staff:
        return BlockRefusal.STAFF
    if not known:
        return BlockRefusal.UNKNOWN
    if not in_county:
        return BlockRefusal.OTHER_COUNTY
    if is_blocked:
        return BlockRefusal.ALREADY
    return None


def judge_unblock(*, is_blocked: bool, in_county: bool) -> BlockRefusal | None:
    """Whether a coordinator may let someone blocked back in: one of their own county's
    people, as only they could have blocked them (a blocked person who has since become staff
    or a coordinator too). None when allowed."""
    if not is_blocked:
        return BlockRefusal.NOT_BLOCKED
    if not in_county:
        return BlockRefusal.UNBLOCK_OTHER_COUNTY
    return None
