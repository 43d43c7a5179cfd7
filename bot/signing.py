"""Signed callback data: a button's action and case id cannot be forged or altered."""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_LENGTH = 10  # base64url characters: 60 bits, plenty against guessing


class Signer:
    """Appends an HMAC to callback data and checks it on the way back."""

    def __init__(self, secret: str) -> None:
        # Derived from the bot token: nothing more to configure; a new token voids old buttons.
        self._key = hashlib.sha256(b"mahalle-callback:" + secret.encode()).digest()

    def _signature(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_LENGTH]

    def sign(self, *parts: object) -> str:
        """`action:arg:…:signature`, at most 64 bytes as Telegram requires."""
        body = ":".join(str(part) for part in parts)
        data = f"{body}:{self._signature(body)}"
        if len(data.encode()) > 64:
            raise ValueError(f"callback data too long: {data!r}")
        return data

    def verify(self, data: str | None) -> list[str] | None:
        """The signed parts, or None when the data was altered, forged or malformed."""
        if not data or ":" not in data:
            return None
        body, _, signature = data.rpartition(":")
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        return body.split(":")
