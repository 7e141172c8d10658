"""Did the Wi-Fi join? Asked of wpa_supplicant's own control socket, bounded in time.

The network step starts one supplicant per Wi-Fi interface (`clawdie-wifi@IFACE`), configured with
`ctrl_interface=/run/wpa_supplicant`, so each listens on the datagram socket
`/run/wpa_supplicant/IFACE`. This module attaches to it (`ATTACH`: the supplicant then sends its
events, `<3>CTRL-EVENT-...`) and asks `STATUS` until one of:

- `wpa_state=COMPLETED`: joined (then the caller waits for DHCP's address);
- `CTRL-EVENT-SSID-TEMP-DISABLED ... reason=WRONG_KEY`: the access point refused the key in the
  4-way handshake, which is what a wrong password looks like (the supplicant says so itself:
  "pre-shared key may be incorrect") - no waiting longer helps;
- the time allowed has passed: not joined, with the last state seen (SCANNING: no such network
  in range; ASSOCIATING, 4WAY_HANDSHAKE: it tried).

The first wrong-key event may come before we attach; the supplicant tries again after 10 s (then
20 s, ...), so a wait of 30 s or more sees a refusal. Nothing here raises for what the socket
says or does not say: each outcome is a `JoinResult` in words.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REQUEST_TIMEOUT_S = 2.0
POLL_S = 0.5
MAX_DATAGRAM = 8192
WRONG_KEY = "WRONG_KEY"

JoinState = Literal["joined", "refused", "not joined"]


@dataclass(frozen=True)
class JoinResult:
    interface: str
    state: JoinState
    detail: str  # the last wpa_state, or why the supplicant could not be asked


def parse_status(text: str) -> dict[str, str]:
    """`STATUS`'s answer (`key=value` lines) as a mapping."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def is_wrong_key(event: str) -> bool:
    """A supplicant event saying the network refused our key (a wrong Wi-Fi password). The
    reason is the event's last word; the SSID before it is the network's to choose."""
    words = event.split() or [""]
    name = words[0].rpartition(">")[2]  # after the level, `<3>`
    return name == "CTRL-EVENT-SSID-TEMP-DISABLED" and words[-1] == f"reason={WRONG_KEY}"


class SupplicantSocket:
    """A client of one supplicant's control socket: requests, and the events it sent meanwhile."""

    def __init__(self, path: Path, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self._dir = tempfile.mkdtemp(prefix="clawdie-wpa-")  # 0700, ours
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(os.path.join(self._dir, "client"))
        self._sock.settimeout(timeout)
        self.events: list[str] = []
        try:
            self._sock.connect(str(path))
        except OSError:
            self.close()
            raise

    def request(self, command: str) -> str:
        """Send `command`, return its answer; events that arrive first are kept in `events`."""
        self._sock.send(command.encode())
        deadline = time.monotonic() + (self._sock.gettimeout() or REQUEST_TIMEOUT_S)
        while True:
            data = self._sock.recv(MAX_DATAGRAM).decode(errors="replace")
            if not data.startswith("<"):
                return data
            self.events.append(data)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {command}")

    def drain(self) -> None:
        """Collect the events waiting on the socket, without blocking."""
        self._sock.setblocking(False)
        try:
            while True:
                data = self._sock.recv(MAX_DATAGRAM).decode(errors="replace")
                if data.startswith("<"):
                    self.events.append(data)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self._sock.setblocking(True)
            self._sock.settimeout(REQUEST_TIMEOUT_S)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._dir, "client"))
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


@contextlib.contextmanager
def _attached(path: Path) -> Iterator[SupplicantSocket]:
    client = SupplicantSocket(path)
    try:
        client.request("ATTACH")
        yield client
    finally:
        with contextlib.suppress(OSError):
            client.request("DETACH")
        client.close()


def wait_for_join(
    ctrl_dir: Path,
    interface: str,
    timeout: float,
    *,
    poll: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> JoinResult:
    """Wait at most `timeout` seconds for the supplicant on `interface` to join or be refused."""
    deadline = clock() + timeout
    path = ctrl_dir / interface
    last = "the supplicant did not start"
    while clock() < deadline:
        try:
            with _attached(path) as client:
                last = "connected to the supplicant"
                while clock() < deadline:
                    state = parse_status(client.request("STATUS")).get("wpa_state", "UNKNOWN")
                    client.drain()
                    if any(is_wrong_key(event) for event in client.events):
                        return JoinResult(interface, "refused", state)
                    if state == "COMPLETED":
                        return JoinResult(interface, "joined", state)
                    last = state
                    time.sleep(poll)
        except (OSError, TimeoutError):
            pass  # not there yet, or restarting: ask again until the deadline
        time.sleep(poll)
    return JoinResult(interface, "not joined", last)
