"""Payloads of `/start <payload>` deep links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# Telegram allows A-Z, a-z, 0-9, _ and - in a payload, up to 64 characters.
_PAYLOAD = re.compile(r"^(?P<kind>[a-z]+)_(?P<value>[A-Za-z0-9_-]{1,58})$")
KNOWN_KINDS = ("join", "grp")


@dataclass(frozen=True)
class StartPayload:
    """What a deep link asks for: `join_<token>` (a staff invite), `grp_<token>` (joining a
    local group) or nothing we know."""

    kind: Literal["join", "grp", "none"]
    value: str = ""


def parse_start_payload(arguments: list[str] | None) -> StartPayload:
    """Read the payload PTB hands over as `context.args`; anything unknown is plain /start."""
    if not arguments or len(arguments) != 1:
        return StartPayload("none")
    match = _PAYLOAD.match(arguments[0])
    if match is None or match["kind"] not in KNOWN_KINDS:
        return StartPayload("none")
    return StartPayload("join" if match["kind"] == "join" else "grp", match["value"])
