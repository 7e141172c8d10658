"""Stub Telegram and OpenRouter servers on 127.0.0.1 for the network code's tests: each request
is recorded, and answered from a script of replies per path suffix (`/getMe`, `/sendMessage`,
`/key`), the last reply repeating; a reply can also hang (never answer) until the stub closes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    code: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: dict[str, object] | None


ME = {"ok": True, "result": {"id": 7012345678, "is_bot": True, "username": "zoe_helper_bot"}}
SENT = {"ok": True, "result": {"message_id": 1}}
KEY_INFO = {"data": {"label": "sk-or-v1-abc...", "limit": 10, "usage": 1.5}}


class ProviderStub:
    """Replies by path suffix; `seen` lists every request in order."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {
            "/getMe": [Reply(200, ME)],
            "/sendMessage": [Reply(200, SENT)],
            "/key": [Reply(200, KEY_INFO)],
        }
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self.url = ""

    def script(self, suffix: str, *replies: Reply) -> None:
        self.replies[suffix] = list(replies)

    def _next(self, path: str) -> Reply:
        for suffix, replies in self.replies.items():
            if path.endswith(suffix):
                return replies.pop(0) if len(replies) > 1 else replies[0]
        return Reply(404, {"ok": False, "description": "Not Found"})

    def sent_texts(self) -> list[str]:
        return [
            str((s.body or {}).get("text")) for s in self.seen if s.path.endswith("/sendMessage")
        ]


def _handler(stub: ProviderStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            stub.seen.append(Seen(self.command, self.path, self.headers.get("Authorization"), body))
            reply = stub._next(self.path)
            if reply.hang:
                stub.release.wait(30)
                return
            data = json.dumps(reply.body).encode()
            self.send_response(reply.code)
            self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the point of the hang tests) is no error here."""


@contextmanager
def provider_stub() -> Iterator[ProviderStub]:
    stub = ProviderStub()
    server = _Server(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()
