"""Issue 12, first boot that takes seconds: the pieces that need no VM. The units' conditions,
the shipped drop-in, the service clock, the network check before Telegram, the imports of
`wait-db` and `firstboot --help`, and the boot table's parser. No timing here: the boot test
and `just bench-boot` measure."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from installer.firstboot.service_clock import (
    ServiceClock,
    parse_start_ticks,
    seconds_since_start,
)
from installer.firstboot.steps.identity import locale_available
from installer.firstboot.steps.platform_env import render_unit_dropin
from installer.online import netcheck
from installer.paths import TargetPaths
from tests.helpers import boot_timing

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "iso/overlay/etc/systemd/system"


def unit_lines(name: str) -> list[str]:
    return [line.strip() for line in (UNITS / name).read_text().splitlines()]


# --- units ------------------------------------------------------------------------------------


def test_first_boot_unit_does_not_start_once_complete() -> None:
    """Triggering conditions: no completion stamp yet, or a seed copy a power cut left behind
    after it (the run deletes it). The stamp path is the one the runner writes."""
    lines = unit_lines("clawdie-firstboot.service")
    stamp = TargetPaths(Path("/")).complete_stamp
    seed_dir = TargetPaths(Path("/")).seed_dir
    assert f"ConditionPathExists=|!{stamp}" in lines
    assert f"ConditionPathExists=|{seed_dir}" in lines
    assert "ConditionKernelCommandLine=!boot=live" in lines  # still required (not triggering)


def test_first_boot_unit_reloads_nothing_itself() -> None:
    text = (UNITS / "clawdie-firstboot.service").read_text()
    assert "daemon-reload" not in text
    assert "ExecStartPost" not in text


def test_units_after_first_boot_only_order_on_it() -> None:
    """A skipped first-boot unit must not hold anything back: the login prompts and the
    platform order after it (After=) and never require it."""
    for name in ("getty@.service.d", "serial-getty@.service.d"):
        for dropin in (UNITS / name).glob("*.conf"):
            parser = configparser.ConfigParser(strict=False)
            parser.read_string(dropin.read_text())
            assert dict(parser["Unit"]) == {"after": "clawdie-firstboot.service"}
    platform = unit_lines("clawdie.service")
    assert not [line for line in platform if line.startswith(("Requires=", "BindsTo="))]
    stamp = TargetPaths(Path("/")).complete_stamp
    assert f"ConditionPathExists={stamp}" in platform


def test_image_ships_the_default_accounts_dropin_as_first_boot_writes_it() -> None:
    """So first boot with the default SERVICE_ACCOUNT changes no unit file and needs no reload."""
    shipped = UNITS / "clawdie.service.d/10-account.conf"
    assert shipped.read_text() == render_unit_dropin("clawdie")
    assert TargetPaths(Path("/")).platform_unit_dropin.name == shipped.name


# --- the service clock ------------------------------------------------------------------------

STAT = "4242 (clawdie (setup) x) S 1 4242 4242 0 -1 4194560 {rest}"


def stat_line(start_ticks: int) -> str:
    fields = ["0"] * 40
    fields[22 - 10] = str(start_ticks)  # field 22; the template's text covers fields 1-9
    return STAT.format(rest=" ".join(fields))


@pytest.mark.parametrize(
    ("ticks", "boottime", "expected"),
    [(5898, 73.0, 14.02), (0, 1.5, 1.5), (10_000, 99.0, 0.0)],
)
def test_service_seconds_count_from_the_process_start(
    ticks: int, boottime: float, expected: float
) -> None:
    """The command name may hold spaces and parentheses; a start after `now` reads as 0."""
    stat = stat_line(ticks)
    assert parse_start_ticks(stat) == ticks
    assert seconds_since_start(stat, boottime, 100) == pytest.approx(expected)


def test_service_clock_reads_this_process_and_falls_back_without_proc(tmp_path: Path) -> None:
    own = ServiceClock()
    assert own.from_process_start == Path("/proc/self/stat").exists()
    assert parse_start_ticks(Path("/proc/self/stat").read_text()) >= 0
    missing = ServiceClock(tmp_path / "no-such-stat")
    assert not missing.from_process_start
    assert missing.elapsed() >= 0.0


# --- the network check before Telegram --------------------------------------------------------

ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)
DEFAULT_V4 = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
LAN_V4 = "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
ZERO = "0" * 32
DEFAULT_V6 = f"{ZERO} 00 {ZERO} 00 fd{'0' * 29}1 00000400 00000002 00000000 00000003     eth0\n"
UNREACHABLE_V6 = f"{ZERO} 00 {ZERO} 00 {ZERO} ffffffff 00000001 00000000 00200200       lo\n"
LINK_V6 = f"fe80{'0' * 28} 40 {ZERO} 00 {ZERO} 00000100 00000002 00000000 00000001     eth0\n"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (ROUTE_HEADER, False),
        (ROUTE_HEADER + LAN_V4, False),
        (ROUTE_HEADER + LAN_V4 + DEFAULT_V4, True),
        (ROUTE_HEADER + DEFAULT_V4.replace("0003", "0002"), False),  # not up
        ("", False),
    ],
)
def test_default_route_v4(route: str, expected: bool) -> None:
    assert netcheck.has_default_route_v4(route) is expected


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (LINK_V6, False),
        (LINK_V6 + UNREACHABLE_V6, False),
        (DEFAULT_V6 + LINK_V6, True),
        ("", False),
    ],
)
def test_default_route_v6(route: str, expected: bool) -> None:
    assert netcheck.has_default_route_v6(route) is expected


def test_nameservers() -> None:
    text = (
        "# resolv.conf\nnameserver 127.0.0.53\noptions edns0\n  nameserver ::1 # local\nsearch x\n"
    )
    assert netcheck.parse_nameservers(text) == ["127.0.0.53", "::1"]
    assert netcheck.parse_nameservers("search example.com\n") == []


def network_root(tmp_path: Path, *, route: str = "", resolv: str | None = None) -> TargetPaths:
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    if route:
        (tmp_path / "proc/net/route").write_text(ROUTE_HEADER + route)
    if resolv is not None:
        (tmp_path / "etc/resolv.conf").write_text(resolv)
    return TargetPaths(tmp_path)


def never_resolve(host: str, timeout: float) -> str | None:  # noqa: ARG001 (a resolver)
    raise AssertionError(f"no lookup expected ({host})")


@pytest.mark.parametrize(
    ("url", "route", "resolv", "expected"),
    [
        ("https://api.telegram.org", "", "nameserver 127.0.0.53\n", "no route: no default route"),
        ("https://api.telegram.org", DEFAULT_V4, None, "no DNS: no resolver in /etc/resolv.conf"),
        (
            "https://api.telegram.org",
            DEFAULT_V4,
            "search lan\n",
            "no DNS: no resolver in /etc/resolv.conf",
        ),
        ("http://127.0.0.1:8080", "", None, None),  # a loopback stub needs no network
        ("http://[::1]:8080", "", None, None),
        ("http://localhost:8080", "", None, None),
        ("http://192.0.2.7", "", None, "no route: no default route for IPv4"),
        ("http://192.0.2.7", DEFAULT_V4, None, None),  # an address needs no resolver
        ("http://[2001:db8::7]", DEFAULT_V4, None, "no route: no default route for IPv6"),
        ("not a url", DEFAULT_V4, None, "not reachable: not a url names no host"),
    ],
)
def test_network_problem_without_a_lookup(
    tmp_path: Path, url: str, route: str, resolv: str | None, expected: str | None
) -> None:
    paths = network_root(tmp_path, route=route, resolv=resolv)
    problem = netcheck.network_problem(url, paths, resolve=never_resolve)
    assert (None if problem is None else str(problem)) == expected


def test_network_problem_asks_the_resolver_with_its_bound(tmp_path: Path) -> None:
    paths = network_root(tmp_path, route=DEFAULT_V4, resolv="nameserver 10.0.0.1\n")
    asked: list[tuple[str, float]] = []

    def resolver(answer: str | None) -> netcheck.Resolver:
        def resolve(host: str, timeout: float) -> str | None:
            asked.append((host, timeout))
            return answer

        return resolve

    url = "https://api.telegram.org"
    assert netcheck.network_problem(url, paths, resolve=resolver(None)) is None
    why = "api.telegram.org does not resolve: Name or service not known"
    assert netcheck.network_problem(url, paths, resolve=resolver(why)) == netcheck.NetworkProblem(
        "no DNS", why
    )
    assert asked == [("api.telegram.org", 2.0)] * 2


def test_resolve_within_answers_for_a_name_that_needs_no_server() -> None:
    assert netcheck.resolve_within("localhost", 2.0) is None
    why = netcheck.resolve_within("name.invalid", 2.0)  # RFC 6761: never resolves
    assert why is not None
    assert why.startswith("name.invalid ")


# --- locale -----------------------------------------------------------------------------------


def test_locale_available_asks_the_c_library() -> None:
    assert locale_available("C.UTF-8")
    assert not locale_available("xx_YY.UTF-8")


# --- imports ----------------------------------------------------------------------------------

IMPORT_PROBE = """
import sys
from installer.cli import main
try:
    code = main({argv!r})
except SystemExit as done:  # --help
    code = done.code
print(code, sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r}))
"""


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [
        # the platform unit's ExecStartPre: libpq and its retry loop, no seed model
        (["wait-db", "--env-file", "{env}", "--timeout-ms", "1"], {"pydantic", "passlib"}),
        (["firstboot", "--help"], {"pydantic", "psycopg", "tenacity", "textual"}),
    ],
)
def test_commands_import_only_what_they_use(
    tmp_path: Path, argv: list[str], heavy: set[str]
) -> None:
    env = tmp_path / "system.env"
    env.write_text(f'DATABASE_URL="postgresql://nobody@/none?host={tmp_path}"\n')
    argv = [a.format(env=env) for a in argv]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(argv=argv, heavy=heavy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.stdout.splitlines()[-1].endswith(" []"), result.stdout + result.stderr


# --- the boot table ---------------------------------------------------------------------------

SERIAL = """\
[   58.900000] systemd[1]: Starting clawdie-firstboot.service - Clawdie first boot...
[   60.000000] clawdie-firstboot[461]: first boot: starting, 1.1 s after the service started
[   60.500000] clawdie-firstboot[461]: seed: reading the installer's copy
[   61.000000] clawdie-firstboot[461]: identity: starting
[   61.400000] clawdie-firstboot[461]: accounts: starting
[   62.000000] useradd[647]: new group: name=clawdie, GID=996
[   63.000000] clawdie-firstboot[461]: platform-config: starting
[   63.200000] clawdie-firstboot[461]: database-ready: starting
[   63.700000] clawdie-firstboot[461]: database: starting
[   66.000000] clawdie-firstboot[461]: report: starting
[   66.300000] clawdie-firstboot[461]: platform: starting
[   66.500000] clawdie-firstboot[461]: first boot complete; platform started
[   66.900000] systemd[1]: Finished clawdie-firstboot.service - Clawdie first boot...
[   67.000000] systemd[1]: Starting clawdie.service - Clawdie platform...
[   68.250000] systemd[1]: Started clawdie.service - Clawdie platform.
"""

LATER = """\
[   20.100000] systemd[1]: clawdie-firstboot.service - Clawdie first boot: apply setup.txt, \
accounts, database, report was skipped because \
no trigger condition checks were met.
[   31.000000] systemd[1]: Starting clawdie.service - Clawdie platform...
[   31.400000] systemd[1]: Started clawdie.service - Clawdie platform.
"""


def test_boot_table_from_the_serial_log() -> None:
    rows = boot_timing.firstboot_rows(boot_timing.entries_from_serial(SERIAL))
    assert [(r.name, round(r.seconds, 2)) for r in rows] == [
        ("start-up and imports", 1.1),
        ("seed", 1.0),
        ("identity", 0.4),
        ("accounts", 1.6),
        ("platform-config", 0.2),
        ("database-ready", 0.5),
        ("database", 2.3),
        ("report", 0.3),
        ("platform", 0.2),
        ("exit", 0.4),
        ("service, start to exit", 8.0),
        ("platform unit start (wait-db)", 1.25),
    ]
    assert boot_timing.service_seconds(rows) == pytest.approx(8.0)
    table = boot_timing.render_table("first boot", rows)
    assert table.splitlines()[0] == "first boot"
    assert "  service, start to exit             8.0\n" in table


def test_boot_table_when_the_seed_step_says_it_starts() -> None:
    """The runner logs `seed: starting` as every step does: one seed row, from that line; the
    runner's own start before it counts with the start-up."""
    serial = SERIAL.replace(
        "[   60.500000] clawdie-firstboot[461]: seed: reading",
        "[   60.200000] clawdie-firstboot[461]: seed: starting\n"
        "[   60.500000] clawdie-firstboot[461]: seed: reading",
    )
    rows = boot_timing.firstboot_rows(boot_timing.entries_from_serial(serial))
    names = [r.name for r in rows]
    assert names.count("seed") == 1
    assert [(r.name, round(r.seconds, 2)) for r in rows[:2]] == [
        ("start-up and imports", 1.3),
        ("seed", 0.8),
    ]


def test_boot_table_of_a_later_boot() -> None:
    rows = boot_timing.firstboot_rows(boot_timing.entries_from_serial(LATER))
    assert [(r.name, round(r.seconds, 2)) for r in rows] == [
        ("first-boot service: did not start (condition)", 0.0),
        ("platform unit start (wait-db)", 0.4),
    ]
    assert boot_timing.service_seconds(rows) == 0.0


def test_boot_table_from_journal_json_splits_boots() -> None:
    lines = [
        '{"__MONOTONIC_TIMESTAMP":"1000000","_BOOT_ID":"a","SYSLOG_IDENTIFIER":"systemd",'
        '"MESSAGE":"Starting clawdie-firstboot.service - x"}',
        '{"__MONOTONIC_TIMESTAMP":"3500000","_BOOT_ID":"a","SYSLOG_IDENTIFIER":"systemd",'
        '"MESSAGE":"Finished clawdie-firstboot.service - x"}',
        '{"__MONOTONIC_TIMESTAMP":"900000","_BOOT_ID":"b","SYSLOG_IDENTIFIER":"systemd",'
        '"MESSAGE":[104,105]}',
    ]
    first, later = boot_timing.split_boots(boot_timing.entries_from_journal_json(lines))
    assert boot_timing.service_seconds(boot_timing.firstboot_rows(first)) == pytest.approx(2.5)
    assert later[0].message == "hi"


INSTALL = """\
[   59.900000] clawdie-install[529]: install: clawdie-setup 0.1.0: installing the appliance
[   60.000000] clawdie-install[529]: install: [1/3] reading and checking setup.txt (0:00, \
deadline 3:00)
[   60.100000] clawdie-install[529]: seed: wrote SETUP-RESULT.txt on /dev/sda3
[   61.500000] clawdie-install[529]: install: [2/3] copying the system (0:01, deadline 3:00:00)
[   62.000000] clawdie-install[529]: install: copying the system 5%
[   80.000000] clawdie-install[529]: install: [3/3] installing the boot loader (0:20, \
deadline 10:00)
[   86.000000] clawdie-install[529]: CLAWDIE-INSTALL-DONE
[   86.100000] clawdie-install[529]: install: restarting
"""


def test_install_table_from_the_sticks_serial_log() -> None:
    rows = boot_timing.install_rows(boot_timing.entries_from_serial(INSTALL), 95.0)
    assert [(r.name, round(r.seconds, 2)) for r in rows] == [
        ("firmware, boot menu, kernel loading", 9.0),
        ("live system start (kernel to installer)", 59.9),
        ("  reading and checking setup.txt", 1.5),
        ("  copying the system", 18.5),
        ("  installing the boot loader", 6.0),
        ("installer, start to done", 26.1),
        ("power-on to install done", 95.0),
    ]
    # without the power-on figure, only what the kernel's clock measured
    rows = boot_timing.install_rows(boot_timing.entries_from_serial(INSTALL))
    assert rows[0].name == "live system start (kernel to installer)"
    assert rows[-1].name == "installer, start to done"
    # an install that never finished has no table
    unfinished = INSTALL.replace("CLAWDIE-INSTALL-DONE", "install: unmounting")
    assert boot_timing.install_rows(boot_timing.entries_from_serial(unfinished)) == []


def test_a_resumed_first_boot_counts_the_time_of_every_run(tmp_path: Path) -> None:
    """Each step's start keeps the time so far; a run after a power cut adds it to its own."""
    path = tmp_path / "firstboot-time.json"
    first = ServiceClock(tmp_path / "no-stat")  # the run's own clock stands in
    first.resume(path)
    assert (first.earlier_s, first.runs) == (0.0, 1)
    first.earlier_s = 40.0  # as if it had run 40 s (no sleeping in a unit test)
    first.note(path)
    second = ServiceClock(tmp_path / "no-stat")
    second.resume(path)
    assert second.runs == 2
    assert second.earlier_s >= 40.0
    assert second.total() >= second.earlier_s
    path.write_text("not json")
    third = ServiceClock(tmp_path / "no-stat")
    third.resume(path)
    assert (third.earlier_s, third.runs) == (0.0, 1)
