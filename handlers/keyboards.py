"""Keyboard builders. Labels come from locales; callback data stays well under 64 bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.digits import persian_digits
from bot.services.reference import DistrictRow, Place
from models.entities import Case, Neighbourhood

Translate = Callable[..., str]

PICKER_PAGE_SIZE = 8
CASES_PAGE_SIZE = 5


def main_menu(t: Translate) -> ReplyKeyboardMarkup:
    """The four things a resident can do."""
    return ReplyKeyboardMarkup(
        [
            [t("menu-new-report")],
            [t("menu-my-reports"), t("menu-my-neighbourhood")],
            [t("menu-help")],
        ],
        resize_keyboard=True,
        is_persistent=True,
    )


def cancel_only(t: Translate) -> ReplyKeyboardMarkup:
    """Replaces the main menu while a report is written, so a menu tap is never taken as text."""
    return ReplyKeyboardMarkup([[t("button-cancel")]], resize_keyboard=True)


def media_keyboard(t: Translate) -> ReplyKeyboardMarkup:
    """Share a location (only reply keyboards can ask for one), go on, or cancel."""
    return ReplyKeyboardMarkup(
        [
            [KeyboardButton(t("button-send-location"), request_location=True)],
            [t("button-continue")],
            [t("button-cancel")],
        ],
        resize_keyboard=True,
    )


def privacy_keyboard(t: Translate) -> ReplyKeyboardMarkup:
    """Stay anonymous, or share the user's own phone number with the agency."""
    return ReplyKeyboardMarkup(
        [
            [t("button-stay-anonymous")],
            [KeyboardButton(t("button-share-phone"), request_contact=True)],
            [t("button-cancel")],
        ],
        resize_keyboard=True,
    )


def saved_neighbourhood_offer(
    t: Translate, place: Neighbourhood, prefix: str
) -> InlineKeyboardMarkup:
    """Offer the saved neighbourhood first, and the full list second."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    t("button-use-saved", name=place.name), callback_data=f"{prefix}:n:{place.id}"
                )
            ],
            [InlineKeyboardButton(t("button-other-neighbourhood"), callback_data=f"{prefix}:d")],
        ]
    )


def district_list(
    t: Translate,
    districts: Sequence[DistrictRow],
    prefix: str,
    county_names: Mapping[str, str] | None = None,
) -> InlineKeyboardMarkup:
    """One button per district, named with its county when the deployment has several."""

    def label(district: DistrictRow) -> str:
        county = (county_names or {}).get(district.county_key)
        return f"{county} · {district.name}" if county else district.name

    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label(d), callback_data=f"{prefix}:d:{d.id}:0")] for d in districts]
    )


def neighbourhood_list(
    t: Translate,
    places: Sequence[Neighbourhood],
    *,
    prefix: str,
    district_id: int,
    page: int,
    pages: int,
    back_to_districts: bool,
) -> InlineKeyboardMarkup:
    """A page of neighbourhoods, two a row, with paging and a way back to the districts."""
    buttons = [InlineKeyboardButton(p.name, callback_data=f"{prefix}:n:{p.id}") for p in places]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                t("button-previous"), callback_data=f"{prefix}:d:{district_id}:{page - 1}"
            )
        )
    if page + 1 < pages:
        nav.append(
            InlineKeyboardButton(
                t("button-next"), callback_data=f"{prefix}:d:{district_id}:{page + 1}"
            )
        )
    if nav:
        rows.append(nav)
    if back_to_districts:
        rows.append([InlineKeyboardButton(t("button-districts"), callback_data=f"{prefix}:d")])
    return InlineKeyboardMarkup(rows)


def search_results(t: Translate, places: Sequence[Place], prefix: str) -> InlineKeyboardMarkup:
    """Matches for a typed name, each with its district, and the full list as a way out."""
    rows = [
        [
            InlineKeyboardButton(
                t("place-with-district", name=p.name, district=p.district_name),
                callback_data=f"{prefix}:n:{p.id}",
            )
        ]
        for p in places
    ]
    rows.append([InlineKeyboardButton(t("button-browse-list"), callback_data=f"{prefix}:d")])
    return InlineKeyboardMarkup(rows)


def summary_actions(t: Translate, draft_token: str) -> InlineKeyboardMarkup:
    """Confirm (bound to this very draft), edit, or cancel."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(t("button-confirm"), callback_data=f"rc:{draft_token}")],
            [
                InlineKeyboardButton(t("button-edit"), callback_data="rx:edit"),
                InlineKeyboardButton(t("button-cancel-report"), callback_data="rx:cancel"),
            ],
        ]
    )


def edit_choices(t: Translate) -> InlineKeyboardMarkup:
    """Which part of the report to change."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    t("button-edit-neighbourhood"), callback_data="re:neighbourhood"
                )
            ],
            [InlineKeyboardButton(t("button-edit-description"), callback_data="re:description")],
            [InlineKeyboardButton(t("button-edit-media"), callback_data="re:media")],
            [InlineKeyboardButton(t("button-edit-privacy"), callback_data="re:privacy")],
            [InlineKeyboardButton(t("button-back-to-summary"), callback_data="re:summary")],
        ]
    )


def case_list(
    t: Translate, cases: Sequence[Case], *, page: int, pages: int, language: str
) -> InlineKeyboardMarkup:
    """A button per case to open it, and paging."""

    def code_label(case: Case) -> str:
        return persian_digits(case.code) if language == "fa" else case.code

    rows = [
        [
            InlineKeyboardButton(
                t("button-open-case", code=code_label(c)), callback_data=f"my:c:{c.id}"
            )
        ]
        for c in cases
    ]
    nav = []
    if page > 0:
        nav.append(InlineKeyboardButton(t("button-newer"), callback_data=f"my:p:{page - 1}"))
    if page + 1 < pages:
        nav.append(InlineKeyboardButton(t("button-older"), callback_data=f"my:p:{page + 1}"))
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows)


def back_to_cases(t: Translate) -> InlineKeyboardMarkup:
    """From one case back to the list."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(t("button-back-to-list"), callback_data="my:p:0")]]
    )
