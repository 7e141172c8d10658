"""Did the Wi-Fi join? The control-socket client against a supplicant stand-in on a real Unix
datagram socket (the protocol wpa_supplicant speaks: requests, answers, `<3>` events after
ATTACH), the words for each outcome, and the report that a Wi-Fi left to fix makes `degraded`."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.firstboot.steps.report import Outcome, step_fixes, write_reports
from installer.net.live import render_join
from installer.net.wifi_join import JoinResult, is_wrong_key, parse_status, wait_for_join
from installer.paths import TargetPaths
from installer.seed.resolve import check_seed_bytes
from installer.stamps import TO_FIX, StepRecord
from tests.helpers.seeds import firstboot_box, valid

WRONG_KEY_EVENT = (
    '<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="ClawdieTest" auth_failures=1 duration=10 '
    "reason=WRONG_KEY"
)


class FakeSupplicant:
    """Answers ATTACH/DETACH/STATUS like wpa_supplicant; STATUS walks through `states` (the
    last one repeats); after the `event_after`-th STATUS, sends `event` to attached clients."""

    def __init__(
        self, path: Path, states: list[str], event: str | None = None, event_after: int = 0
    ) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.states = states
        self.event = event
        self.event_after = event_after
        self.asked = 0
        self.attached: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            command = data.decode()
            if command == "ATTACH":
                self.attached.add(client)
                self.sock.sendto(b"OK\n", client)
            elif command == "DETACH":
                self.attached.discard(client)
                self.sock.sendto(b"OK\n", client)
            elif command == "STATUS":
                state = self.states[min(self.asked, len(self.states) - 1)]
                self.asked += 1
                if self.event is not None and self.asked == self.event_after:
                    for attached in self.attached:  # an event can come before the answer
                        self.sock.sendto(self.event.encode(), attached)
                self.sock.sendto(f"bssid=02:00:00:00:01:00\nwpa_state={state}\n".encode(), client)
            else:
                self.sock.sendto(b"UNKNOWN COMMAND\n", client)

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeSupplicant]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self.sock.close()


@pytest.fixture
def ctrl_dir(tmp_path: Path) -> Path:
    # a short path: a Unix socket's name is limited to 108 bytes
    directory = Path(tmp_path) / "wpa"
    directory.mkdir()
    return directory


def test_joined_once_the_state_is_completed(ctrl_dir: Path) -> None:
    states = ["SCANNING", "ASSOCIATING", "4WAY_HANDSHAKE", "COMPLETED"]
    with FakeSupplicant(ctrl_dir / "wlan0", states).running() as fake:
        result = wait_for_join(ctrl_dir, "wlan0", 10.0, poll=0.01)
    assert result == JoinResult("wlan0", "joined", "COMPLETED")
    assert fake.asked == 4
    assert not fake.attached, "the client detaches"


def test_a_wrong_key_event_is_a_refusal(ctrl_dir: Path) -> None:
    states = ["SCANNING", "4WAY_HANDSHAKE", "DISCONNECTED"]
    fake = FakeSupplicant(ctrl_dir / "wlan0", states, WRONG_KEY_EVENT, event_after=3)
    with fake.running():
        result = wait_for_join(ctrl_dir, "wlan0", 10.0, poll=0.01)
    assert result == JoinResult("wlan0", "refused", "DISCONNECTED")


def test_not_joined_in_time_names_the_last_state(ctrl_dir: Path) -> None:
    with FakeSupplicant(ctrl_dir / "wlan0", ["SCANNING"]).running():
        result = wait_for_join(ctrl_dir, "wlan0", 0.5, poll=0.05)
    assert result == JoinResult("wlan0", "not joined", "SCANNING")


def test_no_supplicant_is_not_joined_not_an_error(ctrl_dir: Path) -> None:
    result = wait_for_join(ctrl_dir, "wlan0", 0.3, poll=0.05)
    assert result == JoinResult("wlan0", "not joined", "the supplicant did not start")


def test_a_supplicant_that_starts_late_is_found(ctrl_dir: Path) -> None:
    fake = FakeSupplicant(ctrl_dir / "wlan0", ["COMPLETED"])
    starter = threading.Timer(0.3, fake._thread.start)
    starter.start()
    try:
        result = wait_for_join(ctrl_dir, "wlan0", 10.0, poll=0.05)
    finally:
        starter.join()
        fake._stop.set()
        fake._thread.join()
        fake.sock.close()
    assert result.state == "joined"


@pytest.mark.parametrize(
    ("event", "wrong_key"),
    [
        (WRONG_KEY_EVENT, True),
        ('<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="x" reason=CONN_FAILED', False),
        ("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed", False),
        ('<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="reason=WRONG_KEY" reason=AUTH', False),
        ('<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid="a reason=WRONG_KEY b" reason=AUTH', False),
        ('<3>CTRL-EVENT-CONNECTED ssid="x reason=WRONG_KEY"', False),
    ],
)
def test_only_a_wrong_key_reason_is_a_refusal(event: str, wrong_key: bool) -> None:
    assert is_wrong_key(event) is wrong_key


def test_status_lines_parse() -> None:
    assert parse_status("wpa_state=COMPLETED\nssid=a=b\nnoise\n") == {
        "wpa_state": "COMPLETED",
        "ssid": "a=b",
    }


@pytest.mark.parametrize(
    ("result", "address", "joined", "problem"),
    [
        (
            JoinResult("wlan0", "joined", "COMPLETED"),
            "10.77.0.57/24",
            "Wi-Fi: joined SSID Home on wlan0, address 10.77.0.57/24",
            None,
        ),
        (
            JoinResult("wlan0", "refused", "DISCONNECTED"),
            None,
            None,
            "Wi-Fi: authentication refused for SSID Home on wlan0: the WIFI_PASSWORD on line 7 "
            "of setup.txt is not this network's password; correct it (a stick with "
            "INSTALL_MODE=adopt applies it)",
        ),
        (
            JoinResult("wlan0", "not joined", "SCANNING"),
            None,
            None,
            "Wi-Fi: SSID Home not joined within 40 s (last state: SCANNING): is the network in "
            "range, and its name as in setup.txt?",
        ),
        (
            JoinResult("wlan0", "joined", "COMPLETED"),
            None,
            None,
            "Wi-Fi: joined SSID Home on wlan0, but no address from DHCP within 20 s",
        ),
    ],
)
def test_each_join_outcome_in_words(
    result: JoinResult, address: str | None, joined: str | None, problem: str | None
) -> None:
    assert render_join("Home", result, address, 7, 40.0, 20.0) == (joined, problem)


def test_a_wifi_left_to_fix_makes_first_boot_degraded(tmp_path: Path) -> None:
    root = firstboot_box(tmp_path, valid().decode()) / "root"
    check = check_seed_bytes(valid())
    refused = "Wi-Fi: authentication refused for SSID Home on wlan0: ..."
    records = {
        "network": StepRecord(notes=(refused,), facts={TO_FIX: refused}),
        "accounts": StepRecord(created=("service account",)),
    }
    assert step_fixes(records) == [refused]
    write_reports(TargetPaths(root), check, records, Outcome(ok=True, headline="set up"))
    summary = TargetPaths(root).summary.read_text()
    assert summary.startswith("Clawdie first boot: degraded")
    assert refused in summary
    clean = {"network": StepRecord(created=("wired links: DHCP",))}
    write_reports(TargetPaths(root), check, clean, Outcome(ok=True, headline="set up"))
    assert TargetPaths(root).summary.read_text().startswith("Clawdie first boot: ok")
