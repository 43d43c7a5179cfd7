"""Drive a production layout end to end: residents file reports through the webhook.

    python -m tests.httpapi --port 8081            # the Bot API stand-in (first)
    mahalle run --role web --port 8001 & mahalle run --role web --port 8002 &
    mahalle run --role worker &                     # all three with base_url = http://127.0.0.1:8081/bot
    python -m bench.production_drill --webhook https://127.0.0.1:8443/telegram --users 20

Each simulated resident walks /start → new report → types a neighbourhood → presses it → text →
no photo → anonymous → confirm, posting every update to the webhook (through the reverse proxy,
with the secret header) and waiting, before the next step, until the stand-in shows the answer
that step waits for (a person answers the question they were asked, not an earlier message).
Consecutive updates of one chat reach different web processes when the proxy balances them;
with --burst two of them are sent without waiting for the first one's answer.
Prints how many got their tracking code, how many cards reached the agency chat, and latencies.

With several bots (`[[bots]]`), run one drill a bot at once, each at its webhook path
(`--webhook https://…/telegram/<key>`), its own stand-in (`--api`) and a neighbourhood of its
counties (`--place`, `--place-button`).

On Bale (`--bale`), updates carry no secret header (the secret is the webhook's path,
`--webhook https://…/telegram/<secret>`) and commands come without their entity; with
`--polling`, updates are handed to the stand-in (`python -m tests.httpapi --bale`), from which
a `mahalle run` in polling mode, Bale's default, fetches them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time
from typing import Any

import httpx

DESCRIPTION = "سطل زباله سر کوچه سه روز است خالی نشده و بوی بدی می‌دهد"
# Milliseconds: a drill run a minute after another must not repeat its ids (those are dropped).
_update_ids = itertools.count(int(time.time() * 1000))
_message_ids = itertools.count(1)


class Resident:
    """One person in a private chat, talking to the bot through the webhook."""

    def __init__(self, user_id: int, client: httpx.AsyncClient, arguments: argparse.Namespace):
        self.user = {"id": user_id, "is_bot": False, "first_name": f"drill{user_id}"}
        self.client, self.arguments = client, arguments
        self.latencies: list[float] = []
        self.retries = 0  # updates sent again after a 502, 503 or 504

    async def shown(self) -> list[dict[str, Any]]:
        """The messages this chat shows now, from the Bot API stand-in."""
        answer = await self.client.get(f"{self.arguments.api}/_chat/{self.user['id']}")
        return list(answer.json())

    async def _post(self, update: dict[str, Any], expect: str | tuple[str, ...] | None) -> None:
        """Post an update and wait for the answer a person waits for: a new message holding
        `expect` (an answer may come in several messages, which arrive apart under load). With
        no `expect`, go on as soon as the webhook took it, as someone typing on does."""
        before = len(await self.shown())
        started = time.perf_counter()
        update["update_id"] = next(_update_ids)
        response = await self._send(update)
        for _ in range(60):  # as Telegram does: an update not taken is sent again, later
            if response.status_code not in (502, 503, 504):
                break
            self.retries += 1
            await asyncio.sleep(1)
            response = await self._send(update)
        response.raise_for_status()
        if expect is None:
            return
        deadline = started + 30
        wanted = (expect,) if isinstance(expect, str) else expect
        while not any(
            text in shown["text"] for shown in (await self.shown())[before:] for text in wanted
        ):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no answer to update {update['update_id']}")
            await asyncio.sleep(0.01)
        self.latencies.append(time.perf_counter() - started)
        # A person reads the answer before the next step (--think 0: answers at once; web
        # processes then take turns on the chat, so the next step still sees this one saved).
        await asyncio.sleep(self.arguments.think)

    async def _send(self, update: dict[str, Any]) -> httpx.Response:
        """Post the update as the messenger would."""
        if self.arguments.polling:
            return await self.client.post(f"{self.arguments.api}/_update", json=update)
        if self.arguments.bale:  # Bale sends no header: the secret is in the path
            return await self.client.post(self.arguments.webhook, json=update)
        return await self.client.post(
            self.arguments.webhook,
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": self.arguments.secret},
        )

    async def say(self, text: str, expect: str | None) -> None:
        """Send a text message (a leading /word is a command)."""
        message: dict[str, Any] = {
            "message_id": next(_message_ids), "date": int(time.time()), "text": text,
            "chat": {"id": self.user["id"], "type": "private"}, "from": self.user,
        }  # fmt: skip
        if text.startswith("/") and not self.arguments.bale:  # older Bale servers send none
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
        await self._post({"message": message}, expect)

    async def press(self, label: str, expect: str | tuple[str, ...]) -> None:
        """Press the newest inline button whose label contains `label`, once it shows: an answer
        in two messages (a heading, then the summary with its buttons) may arrive apart."""
        deadline = time.perf_counter() + 30
        while not (button_and_message := await self._button(label)):
            if time.perf_counter() > deadline:
                raise LookupError(f"no button {label!r} for {self.user['id']}")
            await asyncio.sleep(0.01)
        button, shown = button_and_message
        query = {
            "id": str(next(_update_ids)), "from": self.user, "chat_instance": "drill",
            "data": button["callback_data"],
            "message": {
                "message_id": shown["message_id"], "date": int(time.time()),
                "chat": {"id": self.user["id"], "type": "private"},
                "text": shown["text"],
            },
        }  # fmt: skip
        await self._post({"callback_query": query}, expect)

    async def _button(self, label: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The newest button whose label contains `label`, and its message."""
        for shown in reversed(await self.shown()):
            for button in shown["buttons"]:
                if label in button["text"]:
                    return button, shown
        return None

    async def report(self) -> bool:
        """The whole report flow; whether a tracking code came back."""
        await self.say("/start", "سلام")
        await self.say("📝 گزارش جدید", "نام محله")
        await self.say(self.arguments.place, "منظورتان")
        await self.press(self.arguments.place_button, "شرح دهید")
        # --burst: "continue" follows the description before its answer shows; handled the
        # other way round, "continue" would be taken for a (too short) description.
        await self.say(DESCRIPTION, None if self.arguments.burst else "عکس")
        await self.say("ادامه ⬅️", "ناشناس")
        await self.say("🙈 ناشناس بمانم", "📍")
        await self.press("ثبت گزارش", ("کد پیگیری", "گزارشی مشابه"))
        if not any("کد پیگیری" in shown["text"] for shown in await self.shown()):
            # A neighbour's open case reads the same: "me too" is offered; file this one anyway.
            await self.press("ثبت گزارش خودم", "کد پیگیری")
        return any("۱۴۰" in shown["text"] for shown in await self.shown())


async def drill(arguments: argparse.Namespace) -> None:
    """Run the residents at once and print what came of it."""
    async with httpx.AsyncClient(verify=False, timeout=30) as client:  # a self-signed proxy
        residents = [
            Resident(arguments.first_id + n, client, arguments) for n in range(arguments.users)
        ]
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(r.report() for r in residents), return_exceptions=True)
        elapsed = time.perf_counter() - started
        cards = 0
        if arguments.agency_chat:
            await asyncio.sleep(2)  # the worker delivers cards from the outbox
            answer = await client.get(f"{arguments.api}/_chat/{arguments.agency_chat}")
            cards = len(answer.json())
    latencies = sorted(x * 1000 for r in residents for x in r.latencies)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    print(
        f"residents={arguments.users} with_code={sum(o is True for o in outcomes)} "
        f"failed={len(failures)} agency_cards={cards} updates={len(latencies)} "
        f"seconds={elapsed:.1f} sent_again={sum(r.retries for r in residents)}"
    )
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"answer latency ms: p50={statistics.median(latencies):.1f} p99={p99:.1f}")
    for failure in failures[:3]:
        print(f"  {type(failure).__name__}: {failure}")


def main() -> None:
    """Parse the options and run the drill."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhook", default="https://127.0.0.1:8443/telegram")
    parser.add_argument("--api", default="http://127.0.0.1:8081", help="the Bot API stand-in")
    parser.add_argument("--secret", default=os.environ.get("MAHALLE_WEBHOOK_SECRET", ""))
    parser.add_argument("--bale", action="store_true", help="send updates as Bale does")
    parser.add_argument(
        "--polling", action="store_true", help="hand updates to the stand-in for getUpdates"
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--think", type=float, default=1.0, help="seconds between steps")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="send the description and 'continue' back to back, without waiting in between",
    )
    parser.add_argument("--first-id", type=int, default=500_000)
    parser.add_argument("--place", default="یوسف آباد", help="the neighbourhood typed")
    parser.add_argument("--place-button", default="یوسف‌آباد", help="the button then pressed")
    parser.add_argument("--agency-chat", type=int, help="count the cards that reached this chat")
    asyncio.run(drill(parser.parse_args()))


if __name__ == "__main__":
    main()
