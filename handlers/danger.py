"""What a reporter is told when their report describes a danger: call now, and whom."""

from __future__ import annotations

from collections.abc import Callable

from bot.triage.rules import Service, dangers, emergency_numbers

# Each emergency line by name and number, in the resident's language.
SERVICE_KEYS = {
    Service.POLICE: "emergency-police",
    Service.AMBULANCE: "emergency-ambulance",
    Service.FIRE: "emergency-fire",
    Service.SOCIAL: "emergency-social",
    Service.GAS: "emergency-gas",
    Service.POWER: "emergency-power",
    Service.WATER: "emergency-water",
}


def emergency_text(text: str, t: Callable[..., str]) -> str | None:
    """ "Call now" with the lines that fit the danger the text describes; None when it names
    no danger."""
    numbers = emergency_numbers(dangers(text))
    if not numbers:
        return None
    return "\n".join([t("danger-call-now"), *(t(SERVICE_KEYS[n]) for n in numbers)])
