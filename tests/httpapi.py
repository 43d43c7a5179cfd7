"""The offline Bot API over real HTTP, for tests that run the bot as separate processes and for
trying a production layout on a machine without Internet access.

    python -m tests.httpapi --port 8081 [--delay 0.01] [--flood-every 7 --retry-after 2] [--bale]

serves https://api.telegram.org's shape at http://127.0.0.1:8081/bot<token>/<method> and logs
one line per call; with --bale, Bale's dialect of it (tests/fakebot.py: stub answers to edits,
no setMyCommands, Markdown read in every message, …). Updates posted to /_update are handed to
a bot that polls (getUpdates), as the messenger hands people's messages over. In tests,
`serve()` returns the server and its recorder.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.fakebot import BALE, TELEGRAM, ApiCall, Dialect, FakeBotAPI


class RecordingAPI:
    """A FakeBotAPI shared by the server's threads; `calls` is what the bot asked for."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        verbose: bool = False,
        flood_every: int = 0,
        retry_after: int = 2,
        dialect: Dialect = TELEGRAM,
    ) -> None:
        self.api = FakeBotAPI(dialect=dialect)
        self.delay = delay  # seconds each call takes, so a process can be killed mid-call
        self.verbose = verbose
        # Every flood_every-th sendMessage is refused with a 429 (0: none), as Telegram does
        # when a bot sends too fast.
        self.flood_every = flood_every
        self.retry_after = retry_after
        self.sends = 0
        self.lock = threading.Lock()
        # Updates waiting for a bot that polls, and a wake-up for a poll waiting on them.
        self.updates: list[dict[str, Any]] = []
        self.last_update_id = 0
        self.arrived = threading.Condition(self.lock)

    @property
    def calls(self) -> list[ApiCall]:
        """Every call received so far (a copy)."""
        with self.lock:
            return list(self.api.calls)

    def hand_over(self, update: dict[str, Any]) -> None:
        """An update for the next getUpdates, numbered in the order it arrived (as the
        messenger numbers them: a bot that confirms up to an id never misses an earlier one)."""
        with self.arrived:
            self.last_update_id += 1
            self.updates.append({**update, "update_id": self.last_update_id})
            self.arrived.notify_all()

    def updates_from(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getUpdates: the updates from `offset` on (older ones are confirmed and forgotten),
        waiting up to `timeout` seconds (at most 5) for one to arrive."""
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 5.0)
        with self.arrived:
            while True:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if self.updates or left <= 0:
                    return list(self.updates[: int(params.get("limit") or 100)])
                self.arrived.wait(left)

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body the Bot API would return."""
        if method == "getUpdates":
            return 200, {"ok": True, "result": self.updates_from(params)}
        call = ApiCall(method, params)
        if self.verbose:
            print(f"{method} chat={call.chat_id} {call.text[:60]!r}", flush=True)
        with self.lock:
            if method == "sendMessage" and self.flood_every:
                self.sends += 1
                if self.sends % self.flood_every == 0:
                    if self.verbose:
                        print(f"429 to {method} chat={call.chat_id}", flush=True)
                    return 429, {
                        "ok": False, "error_code": 429,
                        "description": f"Too Many Requests: retry after {self.retry_after}",
                        "parameters": {"retry_after": self.retry_after},
                    }  # fmt: skip
            self.api.calls.append(call)
            return self.api.answer(call)  # the same answers as the in-process tests get


def _parameters(content_type: str, body: bytes) -> dict[str, Any]:
    """PTB posts form fields (multipart when files go along); JSON-encoded values are decoded."""
    if content_type.startswith("application/json"):
        return dict(json.loads(body or b"{}"))
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        raw = {
            str(part.get_param("name", header="content-disposition")): bytes(
                part.get_payload(decode=True)
            ).decode(errors="replace")
            for part in message.iter_parts()
        }
    else:
        raw = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return {key: _decoded(value) for key, value in raw.items()}


def _decoded(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _handler(recorder: RecordingAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            """One Bot API call, or (`/_update`) an update for a bot that polls."""
            method = self.path.rstrip("/").rsplit("/", 1)[-1]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the caller died mid-request (a killed process): no call
                self.close_connection = True
                return
            params = _parameters(self.headers.get("Content-Type", ""), body)
            if self.path == "/_update":
                recorder.hand_over(params)
                status, answer = 200, {"ok": True, "result": True}
            else:
                status, answer = recorder.answer(method, params)
            body = json.dumps(answer).encode()
            if recorder.delay:
                time.sleep(recorder.delay)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            """`/_chat/<id>`: the messages a chat shows now (for drills); else a Bot API call."""
            if not self.path.startswith("/_chat/"):
                self.do_POST()
                return
            chat_id = int(self.path.rsplit("/", 1)[-1])
            with recorder.lock:
                shown = [
                    {"message_id": m.message_id, "text": m.text, "buttons": m.buttons()}
                    for m in recorder.api.delivered(chat_id)
                ]
            body = json.dumps(shown).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # one line per call is printed by the recorder when asked

    return Handler


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog is 5 connections: under a drill (three bot processes and
    # dozens of polling residents) the kernel dropped the rest, and each drop cost a 1, 3 or 7 s
    # SYN retry, which the drill then reported as the bot's latency.
    request_queue_size = 1024


def serve(
    *, port: int = 0, delay: float = 0.0, recorder: RecordingAPI | None = None
) -> tuple[str, RecordingAPI, ThreadingHTTPServer]:
    """Start the server in a thread; (base_url for [telegram] base_url, recorder, server)."""
    recorder = recorder or RecordingAPI(delay=delay)
    server = _Server(("127.0.0.1", port), _handler(recorder))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="fake-bot-api").start()
    return f"http://127.0.0.1:{server.server_address[1]}/bot", recorder, server


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each call takes")
    parser.add_argument("--flood-every", type=int, default=0, help="a 429 to every Nth sendMessage")
    parser.add_argument("--retry-after", type=int, default=2, help="the 429s' retry_after")
    parser.add_argument("--bale", action="store_true", help="answer as Bale's Bot API does")
    arguments = parser.parse_args()
    recorder = RecordingAPI(
        delay=arguments.delay, verbose=True,
        flood_every=arguments.flood_every, retry_after=arguments.retry_after,
        dialect=BALE if arguments.bale else TELEGRAM,
    )  # fmt: skip
    base_url, _, server = serve(port=arguments.port, recorder=recorder)
    print(f"fake Bot API at {base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
