"""Checking signed buttons (agency cards, triage, follow-ups, broadcasts, groups, staff)."""

from __future__ import annotations

from telegram import CallbackQuery

from bot.context import MahalleContext


async def signed(query: CallbackQuery, context: MahalleContext, action: str) -> list[str] | None:
    """The parts of a genuine `action` button, or None after telling the presser it is stale."""
    parts = context.runtime.card_renderer.signer.verify(query.data)
    if parts is None or parts[0] != action:
        await query.answer(context.t("button-stale"), show_alert=True)
        return None
    return parts
