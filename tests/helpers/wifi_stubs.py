"""Stub Telegram and OpenRouter servers for the Wi-Fi boot test, run inside the VM by the test kit
(`python3 stubs.py ADDRESS TELEGRAM_PORT OPENROUTER_PORT BOT_USERNAME`), in the access point's
network namespace. Standard library only: the image's python3 runs it.

Telegram: `getMe` answers with the bot's username, `sendMessage` is accepted and its first line
printed. OpenRouter: `GET /api/v1/key` answers with a credit limit. Each request is printed as a
`TESTKIT:` line (the journal forwards it to the serial console, where the test reads it); the
token, which is part of Telegram's URL, and the key are never printed.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOT_USERNAME = "clawdie_boot_test_bot"


def say(text: str) -> None:
    print(f"TESTKIT: {text}", flush=True)


class _Handler(BaseHTTPRequestHandler):
    server_version = "clawdie-testkit"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default line has the path, and Telegram's path has the token."""

    def answer(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TelegramStub(_Handler):
    bot_username = BOT_USERNAME

    def do_GET(self) -> None:
        if self.path.endswith("/getMe"):
            say(f"telegram getMe: answered @{self.bot_username}")
            result = {"id": 7012345678, "is_bot": True, "username": self.bot_username}
            self.answer(200, {"ok": True, "result": result})
        else:
            self.answer(404, {"ok": False, "description": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            doc = {}
        if self.path.endswith("/sendMessage") and isinstance(doc, dict):
            first = str(doc.get("text", "")).splitlines()[:1] or [""]
            say(f"telegram sendMessage to {doc.get('chat_id')}: {first[0]}")
            self.answer(200, {"ok": True, "result": {"message_id": 1}})
        else:
            self.answer(404, {"ok": False, "description": "Not Found"})


class OpenRouterStub(_Handler):
    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/key"):
            say("openrouter key: answered a credit limit of 10.00")
            data = {"label": "boot-test", "limit": 10.0, "usage": 1.25, "is_free_tier": False}
            self.answer(200, {"data": data})
        else:
            self.answer(404, {"error": {"message": "Not Found"}})


def main(argv: list[str]) -> int:
    address, telegram_port, openrouter_port, username = argv
    TelegramStub.bot_username = username
    servers = [
        ThreadingHTTPServer((address, int(telegram_port)), TelegramStub),
        ThreadingHTTPServer((address, int(openrouter_port)), OpenRouterStub),
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    say(f"stub servers on {address}:{telegram_port} (Telegram), :{openrouter_port} (OpenRouter)")
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
