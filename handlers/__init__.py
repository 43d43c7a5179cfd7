"""Thin Telegram adapters. `register_handlers` adds all of them, in the order they must match."""

from __future__ import annotations

import asyncio
import functools
import warnings
from datetime import timedelta
from typing import Any

from telegram import Message, Update
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.config import Settings
from bot.i18n import Translator
from bot.jalali import SPOKEN_CODE, TYPED_CODE
from bot.normalize import squash
from bot.persistence import SQLConversationPersistence
from handlers import (
    asking,
    broadcast,
    casedesk,
    common,
    cooperation,
    coordinator,
    council,
    desk,
    followup,
    groups,
    handbook,
    participation,
    picker,
    report,
    resident,
    staff,
)
from handlers.report import Step

PRIVATE = filters.ChatType.PRIVATE

# Conversations are tracked per chat and user on purpose: a button press is matched by its data
# pattern and checked against the stored draft, not tied to the message that carried it.
warnings.filterwarnings("ignore", message=".*per_message=False", category=PTBUserWarning)
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


@functools.lru_cache(maxsize=1024)
def _label_key(text: str) -> str:
    """A label as people may type it: emoji, spacing, ZWNJ and punctuation aside."""
    return squash(text)


class _Labels(filters.MessageFilter):
    """A reply-keyboard label, tapped or typed (with or without its emoji), in any language."""

    def __init__(self, labels: list[str]) -> None:
        super().__init__(name=f"labels{labels}")
        self._keys = {key for key in map(_label_key, labels) if key}

    def filter(self, message: Message) -> bool:
        return bool(message.text) and _label_key(message.text) in self._keys


# "Cancel" as its button says it and as people also type it (locale key `word-cancel`).
CANCEL = ("button-cancel", "word-cancel")


def _labels(translate: Translator, *keys: str) -> filters.BaseFilter:
    """Matches a reply-keyboard label in any language, typed or tapped."""
    return _Labels([label for key in keys for label in translate.every_language(key)])


def _resident_conversation(settings: Settings, translate: Translator) -> ConversationHandler[Any]:
    """Writing a report and choosing one's neighbourhood: one conversation, so never both."""
    controls = _labels(
        translate, *CANCEL, "menu-new-report", "menu-my-reports",
        "menu-my-neighbourhood", "menu-help",
    )  # fmt: skip
    typed = filters.TEXT & ~filters.COMMAND & ~filters.FORWARDED & ~controls
    # Available at every step: leave, or read the help (emergency numbers) without losing the step.
    deep_link = CommandHandler(
        "start", common.deep_link_mid_flow, filters=PRIVATE & filters.Regex(r"^/start (join|grp)_")
    )
    anytime: list[BaseHandler[Update, Any, Any]] = [
        deep_link,
        CommandHandler("help", common.show_help_in_step),
        MessageHandler(_labels(translate, "menu-help"), common.show_help_in_step),
        CommandHandler("cancel", report.cancel),
        MessageHandler(_labels(translate, *CANCEL), report.cancel),
    ]

    def step(
        state: Step, *handlers: BaseHandler[Update, Any, Any]
    ) -> list[BaseHandler[Update, Any, Any]]:
        catch_all = report.unexpected(state, report.EXPECT_KEYS[state])
        return [*anytime, *handlers, MessageHandler(filters.ALL, catch_all)]

    picking_saved: list[BaseHandler[Update, Any, Any]] = [
        deep_link,
        CommandHandler("help", common.show_help_in_step),
        CommandHandler("cancel", resident.keep_neighbourhood),
        MessageHandler(_labels(translate, *CANCEL), resident.keep_neighbourhood),
        CallbackQueryHandler(resident.save_picked, pattern=r"^mn:n:\d+$"),
        CallbackQueryHandler(
            picker.browse_handler(resident.NEIGHBOURHOOD_PREFIX, resident.PICKING),
            pattern=r"^mn:d(:\d+:\d+)?$",
        ),
        MessageHandler(
            typed, picker.search_handler(resident.NEIGHBOURHOOD_PREFIX, resident.PICKING)
        ),
        MessageHandler(filters.ALL, report.unexpected(resident.PICKING, "expect-neighbourhood")),
    ]
    answering: list[BaseHandler[Update, Any, Any]] = [
        deep_link,
        CommandHandler("help", common.show_help_in_step),
        CommandHandler("cancel", followup.cancel_answer),
        MessageHandler(_labels(translate, *CANCEL), followup.cancel_answer),
        MessageHandler((typed | filters.PHOTO) & ~filters.FORWARDED, followup.take_answer),
        MessageHandler(filters.ALL, report.unexpected(followup.ANSWERING, "expect-answer")),
    ]
    leave_broadcast: list[BaseHandler[Update, Any, Any]] = [
        deep_link,
        CommandHandler("cancel", broadcast.abandon),
        MessageHandler(_labels(translate, *CANCEL), broadcast.abandon),
    ]

    def composing(
        state: str, expect: str, *handlers: BaseHandler[Update, Any, Any]
    ) -> list[BaseHandler[Update, Any, Any]]:
        return [
            *leave_broadcast,
            *handlers,
            MessageHandler(filters.ALL, report.unexpected(state, expect)),
        ]

    coordinators = filters.User(user_id=settings.coordinators) & PRIVATE

    def registering(
        state: str, expect: str, *handlers: BaseHandler[Update, Any, Any]
    ) -> list[BaseHandler[Update, Any, Any]]:
        leave: list[BaseHandler[Update, Any, Any]] = [
            deep_link,
            CommandHandler("cancel", groups.cancel),
            MessageHandler(_labels(translate, *CANCEL), groups.cancel),
        ]
        return [*leave, *handlers, MessageHandler(filters.ALL, report.unexpected(state, expect))]

    return ConversationHandler(
        # Each bot of several keeps its own: a person may write to two of them.
        name=common.resident_conversation(settings),
        persistent=True,
        # A step left this long ends, as its draft is deleted (bot/jobs.py, `expire_drafts`).
        conversation_timeout=timedelta(days=settings.privacy.draft_expiry_days),
        entry_points=[
            CommandHandler("new", report.new_report, filters=PRIVATE),
            MessageHandler(PRIVATE & _labels(translate, "menu-new-report"), report.new_report),
            CommandHandler("neighbourhood", resident.my_neighbourhood, filters=PRIVATE),
            MessageHandler(
                PRIVATE & _labels(translate, "menu-my-neighbourhood"), resident.my_neighbourhood
            ),
            CallbackQueryHandler(followup.start_answer, pattern=r"^an:"),
            CommandHandler("broadcast", broadcast.start, filters=coordinators),
            CommandHandler("group", groups.start, filters=PRIVATE),
        ],
        states={
            Step.NEIGHBOURHOOD: step(
                Step.NEIGHBOURHOOD,
                CallbackQueryHandler(report.pick_neighbourhood, pattern=r"^rn:n:\d+$"),
                CallbackQueryHandler(
                    picker.browse_handler(report.PREFIX, Step.NEIGHBOURHOOD),
                    pattern=r"^rn:d(:\d+:\d+)?$",
                ),
                MessageHandler(typed, picker.search_handler(report.PREFIX, Step.NEIGHBOURHOOD)),
            ),
            Step.DESCRIPTION: step(
                Step.DESCRIPTION,
                MessageHandler(
                    (typed | filters.PHOTO) & ~filters.FORWARDED, report.take_description
                ),
                MessageHandler(filters.VOICE & ~filters.FORWARDED, report.voice_before_description),
            ),
            Step.MEDIA: step(
                Step.MEDIA,
                MessageHandler(filters.PHOTO & ~filters.FORWARDED, report.add_photo),
                MessageHandler(filters.VOICE & ~filters.FORWARDED, report.add_voice),
                MessageHandler(filters.LOCATION & ~filters.FORWARDED, report.add_location),
                MessageHandler(_labels(translate, "button-continue"), report.media_done),
                MessageHandler(typed, report.replace_description),
            ),
            Step.PRIVACY: step(
                Step.PRIVACY,
                MessageHandler(filters.CONTACT & ~filters.FORWARDED, report.share_contact),
                MessageHandler(
                    _labels(translate, "button-stay-anonymous", "word-anonymous"),
                    report.stay_anonymous,
                ),
            ),
            Step.GROUP: step(
                Step.GROUP, CallbackQueryHandler(report.choose_group, pattern=r"^rg:\d+$")
            ),
            groups.NAME: registering(
                groups.NAME, "expect-group-name", MessageHandler(typed, groups.take_name)
            ),
            groups.FIELD: registering(
                groups.FIELD, "expect-group-field", MessageHandler(typed, groups.take_field)
            ),
            groups.PLACE: registering(
                groups.PLACE,
                "expect-neighbourhood",
                CallbackQueryHandler(groups.take_place, pattern=r"^gn:n:\d+$"),
                CallbackQueryHandler(
                    picker.browse_handler(groups.PREFIX, groups.PLACE), pattern=r"^gn:d(:\d+:\d+)?$"
                ),
                MessageHandler(typed, picker.search_handler(groups.PREFIX, groups.PLACE)),
            ),
            Step.CONFIRM: step(
                Step.CONFIRM,
                CallbackQueryHandler(report.confirm, pattern=r"^rc:"),
                CallbackQueryHandler(participation.join_pressed, pattern=r"^pj:j:"),
                CallbackQueryHandler(report.choose_edit, pattern=r"^rx:edit$"),
                CallbackQueryHandler(report.cancel, pattern=r"^rx:cancel$"),
                CallbackQueryHandler(
                    report.edit_part,
                    pattern=r"^re:(neighbourhood|description|media|privacy|summary)$",
                ),
            ),
            resident.PICKING: picking_saved,
            followup.ANSWERING: answering,
            broadcast.CONTENT: composing(
                broadcast.CONTENT,
                "expect-broadcast-content",
                MessageHandler(
                    (typed | filters.PHOTO) & ~filters.FORWARDED, broadcast.take_content
                ),
            ),
            broadcast.AUDIENCE: composing(
                broadcast.AUDIENCE,
                "expect-buttons",
                CallbackQueryHandler(broadcast.choose_audience, pattern=r"^ba:"),
                CallbackQueryHandler(broadcast.toggle, pattern=r"^bt:"),
            ),
            broadcast.NEIGHBOURHOODS: composing(
                broadcast.NEIGHBOURHOODS,
                "expect-neighbourhood",
                MessageHandler(typed, broadcast.take_neighbourhoods),
            ),
            broadcast.SCHEDULE: composing(
                broadcast.SCHEDULE,
                "expect-broadcast-time",
                CallbackQueryHandler(broadcast.send_now, pattern=r"^bs:now$"),
                MessageHandler(typed, broadcast.take_time),
            ),
            broadcast.CONFIRM: composing(
                broadcast.CONFIRM,
                "expect-buttons",
                CallbackQueryHandler(broadcast.confirm, pattern=r"^bg:go$"),
                CallbackQueryHandler(broadcast.abandon, pattern=r"^bg:cancel$"),
            ),
        },
        fallbacks=[
            # Forgotten mid-flow: the flow ends with what it had (outside one, the same button
            # is handled further down).
            CallbackQueryHandler(resident.forget_confirmed_in_flow, pattern=r"^fm:(yes|no)$"),
            CallbackQueryHandler(report.already_confirmed, pattern=r"^rc:"),
            CallbackQueryHandler(followup.finish_current_first, pattern=r"^an:"),
            CallbackQueryHandler(common.stale_button, pattern=r"^(rn|rx|re|mn|ba|bt|bs|bg|rg|gn):"),
        ],
    )


def reload_conversations(application: AnyApplication) -> asyncio.Event | None:
    """Read every chat's conversation state from the database again, for a process that starts
    receiving a bot's updates another process received until now: the resident conversation is
    replaced by a fresh one in its place, which PTB fills from the persistence in the background.
    The event is set once the states were read; None when there is nothing to read."""
    persistence = application.persistence
    if not isinstance(persistence, SQLConversationPersistence):
        return None
    runtime = application.bot_data["runtime"]
    for group, handlers in application.handlers.items():
        if not any(isinstance(h, ConversationHandler) and h.persistent for h in handlers):
            continue
        kept = list(handlers)
        fresh = [
            _resident_conversation(runtime.settings, runtime.translate)
            if isinstance(h, ConversationHandler) and h.persistent
            else h
            for h in kept
        ]
        loaded = persistence.next_load()
        for handler in kept:
            application.remove_handler(handler, group)
        with warnings.catch_warnings():
            # PTB warns that updates may come before the states are read: none does, the
            # process receives for the bot only once `loaded` is set.
            warnings.filterwarnings("ignore", "A persistent `ConversationHandler`")
            application.add_handlers(fresh, group=group)
        return loaded
    return None


def register_handlers(
    application: AnyApplication, settings: Settings, translate: Translator
) -> None:
    """Add every handler in order: guards first, conversations, menus, catch-alls, persistence."""
    application.add_handler(TypeHandler(Update, common.guard), group=-2)
    conversation = _resident_conversation(settings, translate)
    application.add_handler(
        MessageHandler(PRIVATE & filters.UpdateType.EDITED_MESSAGE, common.edited_message), group=-1
    )
    application.add_handler(
        MessageHandler(
            PRIVATE & filters.REPLY & filters.UpdateType.MESSAGE, cooperation.reply_to_prompt
        ),
        group=-1,
    )
    application.add_handlers(
        [
            conversation,
            CommandHandler("start", common.start, filters=PRIVATE),
            CommandHandler("help", casedesk.show_help),
            MessageHandler(PRIVATE & _labels(translate, "menu-help"), common.show_help),
            CommandHandler("mine", resident.my_reports, filters=PRIVATE),
            MessageHandler(PRIVATE & _labels(translate, "menu-my-reports"), resident.my_reports),
            CallbackQueryHandler(resident.my_reports_page, pattern=r"^my:p:\d{1,6}$"),
            CallbackQueryHandler(resident.open_case, pattern=r"^my:c:\d{1,12}(:\d{1,4})?$"),
            MessageHandler(
                PRIVATE & filters.User(user_id=settings.coordinators) & filters.Regex(SPOKEN_CODE),
                casedesk.typed_code,
            ),
            MessageHandler(PRIVATE & filters.Regex(TYPED_CODE), resident.typed_code),
            CommandHandler("cases", casedesk.cases_command),
            CommandHandler("find", casedesk.find),
            CallbackQueryHandler(casedesk.list_pressed, pattern=r"^dl:"),
            CallbackQueryHandler(casedesk.pick_pressed, pattern=r"^df:"),
            CallbackQueryHandler(casedesk.open_pressed, pattern=r"^do:"),
            CallbackQueryHandler(casedesk.card_pressed, pattern=r"^dc:"),
            CallbackQueryHandler(casedesk.menu_pressed, pattern=r"^dm:"),
            CallbackQueryHandler(report.already_confirmed, pattern=r"^rc:"),
            CallbackQueryHandler(cooperation.open_picker, pattern=r"^case:cooperate:"),
            CallbackQueryHandler(staff.case_button, pattern=r"^(case|cs):"),
            CallbackQueryHandler(staff.reroute_to, pattern=r"^(case-to|cd):"),
            CallbackQueryHandler(cooperation.pick_agency, pattern=r"^task-to:"),
            CallbackQueryHandler(cooperation.ask_second, pattern=r"^task-also:"),
            CallbackQueryHandler(cooperation.cancel_request, pattern=r"^task-x:"),
            CallbackQueryHandler(cooperation.task_button, pattern=r"^task:"),
            CallbackQueryHandler(coordinator.triage_pick, pattern=r"^(place|tq):"),
            CallbackQueryHandler(coordinator.invite_pressed, pattern=r"^invite:"),
            CallbackQueryHandler(asking.pick_domain, pattern=r"^pick:"),
            CallbackQueryHandler(followup.fixed_or_not, pattern=r"^fx:"),
            CallbackQueryHandler(followup.rate, pattern=r"^rt:"),
            CommandHandler("invite", coordinator.invite, filters=PRIVATE),
            CallbackQueryHandler(broadcast.stop, pattern=r"^bx:"),
            CommandHandler("settings", resident.settings_menu, filters=PRIVATE),
            CommandHandler("forget_me", resident.forget_me, filters=PRIVATE),
            CallbackQueryHandler(resident.forget_confirmed, pattern=r"^fm:(yes|no)$"),
            CommandHandler(
                "stats",
                council.member_stats,
                filters=PRIVATE & filters.User(user_id=council.members(settings)),
            ),
            CommandHandler("stats", desk.show_stats, filters=PRIVATE),
            CallbackQueryHandler(desk.stats_period, pattern=r"^sp:(week|month)$"),
            CallbackQueryHandler(groups.decide, pattern=r"^ga:"),
            CommandHandler("help_offer", participation.help_offer, filters=PRIVATE),
            CommandHandler("handbook", handbook.show),
            CommandHandler("handbook_status", handbook.status, filters=PRIVATE),
            CommandHandler("handbook_publish", handbook.publish, filters=PRIVATE),
            CallbackQueryHandler(handbook.confirm_pressed, pattern=r"^hb:ok:\d{1,6}$"),
            CallbackQueryHandler(handbook.pressed, pattern=r"^hb:(m|s|[fadgox]:)"),
            CallbackQueryHandler(participation.offer_pressed, pattern=r"^ho:"),
            CallbackQueryHandler(participation.decide_pressed, pattern=r"^hd:"),
            CallbackQueryHandler(participation.leave_pressed, pattern=r"^pj:l:"),
            CallbackQueryHandler(participation.join_outside, pattern=r"^pj:j:"),
            CommandHandler("export", desk.export, filters=PRIVATE),
            CommandHandler("agenda_add", council.agenda_add, filters=PRIVATE),
            CommandHandler("agenda", council.show_agenda, filters=PRIVATE),
            CommandHandler("meeting", council.set_meeting, filters=PRIVATE),
            CommandHandler("decision", council.new_decision, filters=PRIVATE),
            CommandHandler("council_export", council.export, filters=PRIVATE),
            CallbackQueryHandler(council.pattern_pressed, pattern=r"^agp:"),
            CallbackQueryHandler(council.case_pressed, pattern=r"^agc:"),
            CallbackQueryHandler(council.agency_picked, pattern=r"^cx:"),
            CallbackQueryHandler(council.decision_button, pattern=r"^dec:"),
            CommandHandler("staff", desk.staff_list, filters=PRIVATE),
            CallbackQueryHandler(desk.remove_staff, pattern=r"^sr:"),
            CommandHandler("agencies", desk.agencies, filters=PRIVATE),
            CommandHandler("block", desk.block, filters=PRIVATE),
            CommandHandler("unblock", desk.unblock, filters=PRIVATE),
            CallbackQueryHandler(resident.toggle_broadcasts, pattern=r"^st:b$"),
            CommandHandler("chatid", common.chat_id, filters=filters.ChatType.GROUPS),
            MessageHandler(
                filters.ChatType.GROUPS & ~filters.REPLY & filters.Regex(SPOKEN_CODE),
                casedesk.typed_code,
            ),
            CallbackQueryHandler(common.stale_button),
            MessageHandler(PRIVATE, common.unexpected_outside_flow),
        ]
    )
    application.add_handler(TypeHandler(Update, common.persist_conversations), group=100)
    application.add_error_handler(common.on_error)
