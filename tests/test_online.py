"""First boot and the outside world, piece by piece: the network check's reason classes (no
link, no address, no route, no DNS) from planted /sys and /proc trees, the bounded clock wait
with an injected clock, the findings the report shows, the early "setup started" message and
the test-only API base overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from installer.commands.firstboot import add_arguments, api_bases
from installer.online import netcheck
from installer.online.checks import Online
from installer.online.netcheck import Link, NetworkProblem, classify
from installer.online.timesync import ClockState, wait_for_clock
from installer.paths import TargetPaths
from installer.seed.resolve import check_seed_bytes
from tests.helpers.clock import StoppedClock
from tests.helpers.provider_stub import Reply, provider_stub
from tests.helpers.seeds import ADMIN, seed
from tests.helpers.sentinels import OPENROUTER, TOKEN

SEED = check_seed_bytes(
    seed(
        f"TELEGRAM_BOT_TOKEN={TOKEN}",
        f"TELEGRAM_ADMIN_ID={ADMIN}",
        f"OPENROUTER_API_KEY={OPENROUTER}",
        "ASSISTANT_NAME=Zoe",
    )
).require_resolved()

UP = Link("enp1s0", "up", True, ("192.168.1.20/24", "fe80::1/64"))
NO_CABLE = Link("enp1s0", "down", False, ())
WIFI_NOT_JOINED = Link("wlan0", "dormant", None, (), wifi=True)
UP_LINK_LOCAL_ONLY = Link("enp1s0", "up", True, ("169.254.7.7/16", "fe80::1/64"))
UP_ADDRESSES_UNKNOWN = Link("enp1s0", "up", True, None)


@pytest.mark.parametrize(
    ("links", "v4", "v6", "servers", "expected"),
    [
        ([], False, False, ["127.0.0.53"], "no link: no network interface but loopback"),
        (
            [NO_CABLE, WIFI_NOT_JOINED],
            False,
            False,
            ["127.0.0.53"],
            "no link: no cable or Wi-Fi connection (enp1s0 no carrier, wlan0 Wi-Fi not joined)",
        ),
        (
            [UP_LINK_LOCAL_ONLY],
            False,
            False,
            ["127.0.0.53"],
            "no address: enp1s0 up, but DHCP gave no address",
        ),
        ([UP], False, False, ["127.0.0.53"], "no route: no default route"),
        ([UP_ADDRESSES_UNKNOWN], False, False, [], "no route: no default route"),
        ([UP], True, False, [], "no DNS: no resolver in /etc/resolv.conf"),
        ([UP], False, True, ["::1"], None),  # an IPv6 default route is a route
        ([UP], True, False, ["127.0.0.53"], None),  # the name lookup is what is left
        (None, True, False, ["127.0.0.53"], None),  # a sandbox: links not known
        ([NO_CABLE, UP], True, False, ["127.0.0.53"], None),  # one link up is enough
    ],
)
def test_the_first_reason_class_in_the_order_a_network_comes_up(
    links: list[Link] | None, v4: bool, v6: bool, servers: list[str], expected: str | None
) -> None:
    problem = classify(links, route_v4=v4, route_v6=v6, nameservers=servers)
    assert (None if problem is None else str(problem)) == expected


def plant_links(root: Path, **links: tuple[str, str | None]) -> TargetPaths:
    """/sys/class/net as the kernel shows it: operstate and carrier (None: unreadable, as for an
    interface that is down)."""
    net = root / "sys/class/net"
    (net / "lo").mkdir(parents=True)
    (net / "lo/operstate").write_text("unknown\n")
    for name, (operstate, carrier) in links.items():
        (net / name).mkdir()
        (net / name / "operstate").write_text(operstate + "\n")
        if carrier is not None:
            (net / name / "carrier").write_text(carrier + "\n")
    return TargetPaths(root)


def test_links_are_read_from_sys_class_net(tmp_path: Path) -> None:
    paths = plant_links(tmp_path, enp1s0=("down", None), wlan0=("dormant", "0"))
    (paths.sys_class_net / "wlan0/wireless").mkdir()
    assert netcheck.read_links(paths, {"wlan0": ["fe80::2/64"]}) == [
        Link("enp1s0", "down", None, ()),
        Link("wlan0", "dormant", False, ("fe80::2/64",), wifi=True),
    ]
    assert netcheck.read_links(TargetPaths(tmp_path / "nothing")) is None


def test_a_box_without_a_cable_is_no_link_before_anything_else(tmp_path: Path) -> None:
    paths = plant_links(tmp_path, enp1s0=("down", "0"))
    problem = netcheck.network_problem("https://api.telegram.org", paths, addresses={})
    assert problem == NetworkProblem("no link", "no cable or Wi-Fi connection (enp1s0 no carrier)")


def test_a_link_without_dhcp_is_no_address(tmp_path: Path) -> None:
    paths = plant_links(tmp_path, enp1s0=("up", "1"))
    problem = netcheck.network_problem(
        "https://api.telegram.org", paths, addresses={"enp1s0": ["fe80::5054:ff:fe12:3456/64"]}
    )
    assert problem is not None
    assert problem.kind == "no address"


def test_a_loopback_server_needs_no_network_at_all(tmp_path: Path) -> None:
    paths = plant_links(tmp_path)
    assert netcheck.network_problem("http://127.0.0.1:8080", paths) is None


class FakeTime(StoppedClock):
    """A stopped clock on which NTP's flag appears at `sync_at`."""

    def __init__(self, flag: Path, sync_at: float | None) -> None:
        super().__init__()
        self.flag, self.sync_at = flag, sync_at

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.sync_at is not None and self.now >= self.sync_at:
            self.flag.parent.mkdir(parents=True, exist_ok=True)
            self.flag.touch()


def test_the_clock_wait_ends_when_ntp_has_set_the_clock(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    fake = FakeTime(paths.timesync_synchronized, sync_at=3.0)
    state = wait_for_clock(
        paths, 10.0, monotonic=fake.monotonic, sleep=fake.sleep, wall=lambda: 1_800_000_000.0
    )
    assert state.synchronized
    assert state.waited_s == 3.0
    assert state.line() == "Clock:          synchronised (NTP)"


def test_the_clock_wait_is_bounded_and_says_what_the_clock_says(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    fake = FakeTime(paths.timesync_synchronized, sync_at=None)
    state = wait_for_clock(
        paths, 10.0, monotonic=fake.monotonic, sleep=fake.sleep, wall=lambda: 946_684_800.0
    )
    assert not state.synchronized
    assert fake.now == pytest.approx(10.0)
    assert max(fake.sleeps) <= 0.25
    assert state.line() == (
        "Clock:          not synchronised (NTP): the clock may be wrong: "
        "it says 2000-01-01 00:00:00 UTC"
    )


def test_no_wait_at_all_when_offline(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    fake = FakeTime(paths.timesync_synchronized, sync_at=None)
    state = wait_for_clock(paths, 0.0, monotonic=fake.monotonic, sleep=fake.sleep)
    assert not state.synchronized
    assert fake.sleeps == []


def test_online_waits_for_the_clock_once_and_only_before_tls(tmp_path: Path) -> None:
    """An https API with a network: the bounded wait, once per run; plain http (a loopback
    stub) checks no certificate and waits for nothing."""
    paths = TargetPaths(tmp_path)
    bounds: list[float] = []

    def wait(where: TargetPaths, bound: float) -> ClockState:  # noqa: ARG001 (wait_clock)
        bounds.append(bound)
        return ClockState(False, bound, "2000-01-01 00:00:00 UTC")

    tls = Online(paths, "https://api.telegram.org", None, clock_wait_s=10, wait_clock=wait)
    assert tls.clock(online=False).waited_s == 0.0  # offline: no server could answer
    assert tls.clock(online=True).waited_s == 10.0
    assert tls.clock(online=True).waited_s == 0.0
    plain = Online(paths, "http://127.0.0.1:9", None, clock_wait_s=10, wait_clock=wait)
    plain.clock(online=True)
    assert bounds == [0.0, 10.0, 0.0, 0.0]


def test_findings_with_valid_credentials(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    paths.timesync_synchronized.parent.mkdir(parents=True)
    paths.timesync_synchronized.touch()
    with provider_stub() as stub:
        findings = Online(paths, stub.url, stub.url).findings(SEED)
    assert findings.lines() == [
        "Network and credentials:",
        "  Network check:  connected",
        "  Clock:          synchronised (NTP)",
        "  Telegram bot: @zoe_helper_bot (valid)",
        "  OpenRouter key: valid (credit limit 10.00, 1.50 used)",
    ]
    assert findings.to_fix() == []
    assert findings.status_detail() is None


def test_findings_offline_name_the_reason(tmp_path: Path) -> None:
    paths = plant_links(tmp_path)  # only loopback
    findings = Online(paths, "https://api.telegram.org", "https://openrouter.ai/api/v1").findings(
        SEED
    )
    reason = "no link: no network interface but loopback"
    assert findings.status_detail() == f"no network ({reason})"
    assert findings.to_fix() == [f"no network ({reason})"]
    assert [c.report_line() for c in findings.preflight.checks] == [
        f"Telegram bot: not checked (offline: {reason})",
        f"OpenRouter key: not checked (offline: {reason})",
    ]


def test_a_refused_token_is_something_to_fix(tmp_path: Path) -> None:
    with provider_stub() as stub:
        stub.script("/getMe", Reply(401, {"ok": False, "description": "Unauthorized"}))
        findings = Online(TargetPaths(tmp_path), stub.url, stub.url).findings(SEED)
    (fix,) = findings.to_fix()
    assert fix.startswith("Telegram bot: refused: Telegram said: Unauthorized; next step:")
    assert "line 1 of setup.txt" in fix
    assert findings.status_detail() is None  # degraded, but not for want of a network


def test_the_early_message_is_bounded_and_never_queued(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    with provider_stub() as stub:
        stub.script("/sendMessage", Reply(hang=True))
        said = Online(paths, stub.url, None).announce(SEED)
    assert said.startswith("not sent: not sent within 5 s: Telegram no answer within")
    assert not paths.telegram_queue_dir.exists()
    offline = Online(plant_links(tmp_path / "offline"), "https://api.telegram.org", None)
    assert offline.announce(SEED) == (
        "not sent: no network (no link: no network interface but loopback); "
        "the report follows when it can"
    )


def test_the_early_message_names_the_host(tmp_path: Path) -> None:
    with provider_stub() as stub:
        assert Online(TargetPaths(tmp_path), stub.url, None).announce(SEED) == "sent"
    assert stub.sent_texts() == [
        "Clawdie setup started on zoe (assistant Zoe). The report follows when it is done."
    ]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_api_bases_the_option_then_the_environment_then_the_real_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLAWDIE_TELEGRAM_API", raising=False)
    monkeypatch.delenv("CLAWDIE_OPENROUTER_API", raising=False)
    assert api_bases(parse(), live=True) == (
        "https://api.telegram.org",
        "https://openrouter.ai/api/v1",
    )
    assert api_bases(parse(), live=False) == (None, None)  # a sandbox talks to nobody
    monkeypatch.setenv("CLAWDIE_TELEGRAM_API", "http://10.0.0.1:8081")
    monkeypatch.setenv("CLAWDIE_OPENROUTER_API", "http://10.0.0.1:8082/api/v1")
    assert api_bases(parse(), live=True) == (
        "http://10.0.0.1:8081",
        "http://10.0.0.1:8082/api/v1",
    )
    assert api_bases(parse("--telegram-api", "http://127.0.0.1:1"), live=False) == (
        "http://127.0.0.1:1",
        "http://10.0.0.1:8082/api/v1",
    )
    assert api_bases(parse("--no-telegram"), live=True)[0] is None


def test_setup_txt_cannot_set_an_api_base() -> None:
    bad = check_seed_bytes(
        seed(
            f"TELEGRAM_BOT_TOKEN={TOKEN}",
            f"TELEGRAM_ADMIN_ID={ADMIN}",
            f"OPENROUTER_API_KEY={OPENROUTER}",
            "CLAWDIE_TELEGRAM_API=http://evil.example",
        )
    )
    assert not bad.valid
    assert [p.key for p in bad.problems] == ["CLAWDIE_TELEGRAM_API"]
