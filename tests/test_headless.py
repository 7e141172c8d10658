"""A box without a screen (issue 14): one status model, a live receipt that says where a dead box
stopped, what the receipt tells about the box, and the redacted log bundle a failure leaves."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from installer import redact
from installer.bundle import (
    LogBuffer,
    build_bundle,
    bundle_name,
    secrets_in,
    write_failure_bundle,
)
from installer.cli import run_command
from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.firstboot.runner import plan_steps as firstboot_plan
from installer.install.console import Console
from installer.install.flow import InstallConfig, InstallRun
from installer.install.flow import plan_steps as install_plan
from installer.machine import (
    EFI_GLOBAL_GUID,
    parse_ip_addresses,
    read_boot_loaders,
    read_boot_mode,
    read_interfaces,
    read_machine_model,
    read_ssh_fingerprints,
    render_machine_lines,
    ssh_fingerprint,
)
from installer.paths import TargetPaths
from installer.seed.resolve import apply_answers, check_seed_bytes, seed_key_states
from installer.status import EXIT_CODES, Status, render_exit_code_table, settle
from installer.tracker import PlannedStep, StepTracker, render_clock, render_duration
from tests.helpers.firstboot import SEED, firstboot
from tests.helpers.install_disk import DISK_MIB, install_argv, seed_for
from tests.helpers.loopdev import MIB, loop_file
from tests.helpers.pg import PgCluster
from tests.helpers.seeds import firstboot_box, valid
from tests.helpers.sentinels import SENTINEL

ROOT = Path(__file__).resolve().parents[1]
ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

# -- one status model --------------------------------------------------------------------------


FINGERPRINT_LINE = (
    r"^Installation fingerprint: ([0-9a-f]{8}) \(an adopt seed names it: INSTALL_FINGERPRINT=\1\)$"
)


def test_the_readme_table_is_the_status_module() -> None:
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- exit-codes:[^>]*-->\n(.*?)<!-- /exit-codes -->", readme, re.S)
    assert table is not None, "README has no exit-code table between its markers"
    assert table.group(1) == render_exit_code_table()
    assert "First boot exit codes" not in readme  # the one table replaced the old section


def test_status_words_and_exit_codes() -> None:
    assert [str(s) for s in Status] == ["ok", "degraded", "failed", "in progress"]
    assert (settle(False), settle(False, 1), settle(True), settle(True, 2)) == (
        Status.OK,
        Status.DEGRADED,
        Status.FAILED,
        Status.FAILED,
    )
    for code in EXIT_CODES:  # success codes go with a working box, and only with one
        assert (code.code == 0) == (code.status in (Status.OK, Status.DEGRADED)), code
    firstboot_codes = {c.code for c in EXIT_CODES if c.command == "firstboot"}
    assert firstboot_codes == {0, 1, 2, 3, 4}


# -- the live receipt: pure ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_live_receipt_names_the_step_its_time_and_deadline() -> None:
    clock = Clock()
    written: list[str] = []
    said: list[str] = []
    plan = [PlannedStep("a", "doing a", 30), PlannedStep("b", "doing b", 90)]

    def write(text: str) -> tuple[bool, str]:
        written.append(text)
        return True, "ok"

    tracker = StepTracker(
        "Clawdie test", plan, "look closer", write=write, say=said.append, clock=clock, wall=clock
    )
    clock.now += 75
    tracker.begin("b")
    receipt = written[-1]
    assert receipt.splitlines()[0] == "Clawdie test: in progress"
    assert "Step: 2 of 2, b (doing b)\n" in receipt
    assert "Step started: 1970-01-01T00:17:55Z, 1 min 15 s after the start\n" in receipt
    assert "Deadline: 1 min 30 s for this step, until 1970-01-01T00:19:25Z\n" in receipt
    assert "Started: 1970-01-01T00:16:40Z\n" in receipt
    assert said == ["[2/2] doing b (1:15, deadline 1:30)"]
    assert tracker.where() == "step 2 of 2 (b)"
    with pytest.raises(ValueError, match="not a step"):
        tracker.begin("c")


def test_a_receipt_that_cannot_be_written_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StepTracker(
        "T", [PlannedStep("a", "a", 1)], "h", write=lambda _: (False, "no stick"), say=print
    )
    tracker.begin("a")
    tracker.begin("a")
    assert caplog.text.count("the live receipt was not written: no stick") == 1


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min 00 s"), (3599, "59 min 59 s"), (10800, "3 h 00 min")],
)
def test_durations_read_on_a_serial_console(seconds: float, shown: str) -> None:
    assert render_duration(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (59.9, "0:59"), (605, "10:05"), (10800, "3:00:00")]
)
def test_the_console_line_clock(seconds: float, shown: str) -> None:
    assert render_clock(seconds) == shown


def test_every_progress_line_fits_the_linux_console() -> None:
    """80 columns at the longest elapsed time a step can show (the deadline of the whole run)."""
    plans = [
        firstboot_plan(FirstbootConfig(Path("/"), None, DbConfig("", "", 5432, 60000))),
        install_plan(InstallConfig()),
    ]
    for plan in plans:
        clock = Clock()
        tracker = StepTracker("T", plan, "h", say=lambda _: None, clock=clock)
        for step in plan:
            clock.now += step.deadline_s
            tracker.begin(step.name)
            line = "install: " + tracker.render_line()  # the installer's console prefix
            assert len(line) <= 80, line
            assert line.isascii(), line


# -- the live receipt: a first boot killed at every named step -----------------------------------

FIRSTBOOT_STEPS = [
    "seed",
    "identity",
    "network",
    "accounts",
    "platform-config",
    "upkeep",
    "database-ready",
    "database",
    "report",
    "platform",
]
FAST_STEPS = {"seed", "accounts", "database-ready", "platform"}


def read_receipt(where: Path) -> str:
    return (where / "SETUP-RESULT.txt").read_text()


def assert_in_progress_at(receipt: str, title: str, index: int, total: int, step: str) -> None:
    lines = receipt.splitlines()
    assert lines[0] == f"{title}: in progress", receipt
    assert lines[1].startswith(f"Step: {index} of {total}, {step} ("), receipt
    assert re.search(rf"^Step started: {ISO_TIME}, \d+ (s|min)", receipt, re.M), receipt
    assert re.search(rf"^Deadline: .+ for this step, until {ISO_TIME}$", receipt, re.M), receipt


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return firstboot_box(tmp_path, SEED)


@pytest.mark.root
@pytest.mark.parametrize(
    "step",
    [pytest.param(s, marks=() if s in FAST_STEPS else pytest.mark.slow) for s in FIRSTBOOT_STEPS],
)
def test_a_first_boot_killed_at_a_step_leaves_a_receipt_naming_it(
    box: Path, pg: PgCluster, step: str
) -> None:
    killed = firstboot(box, pg, fault=f"before:{step}")
    assert killed.returncode == -9, killed.stderr[-2000:]
    receipt = read_receipt(box / "stick")
    index = FIRSTBOOT_STEPS.index(step) + 1
    assert_in_progress_at(receipt, "Clawdie first boot", index, len(FIRSTBOOT_STEPS), step)
    assert f"[{index}/{len(FIRSTBOOT_STEPS)}] " in killed.stderr  # the console's line
    assert "Boot mode:      " in receipt  # what the box is, from the first rewrite on
    assert SENTINEL not in receipt


# -- the failure bundle: a failure injected at every step of first boot --------------------------


def bundle_texts(path: Path) -> dict[str, str]:
    with tarfile.open(path, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def one_bundle(where: Path) -> Path:
    found = list(where.glob("clawdie-logs-*.tar.gz"))
    assert len(found) == 1, (where, found)
    assert re.fullmatch(r"clawdie-logs-[a-z0-9-]+-\d{8}T\d{6}Z\.tar\.gz", found[0].name)
    return found[0]


@pytest.mark.root
@pytest.mark.parametrize(
    "step",
    [pytest.param(s, marks=() if s in FAST_STEPS else pytest.mark.slow) for s in FIRSTBOOT_STEPS],
)
def test_a_failure_at_a_step_leaves_a_failed_receipt_and_a_clean_bundle(
    box: Path, pg: PgCluster, step: str
) -> None:
    result = firstboot(box, pg, fault=f"fail:before:{step}")
    assert result.returncode == 1, result.stderr[-2000:]
    index = FIRSTBOOT_STEPS.index(step) + 1
    receipt = read_receipt(box / "stick")
    assert receipt.splitlines()[0] == "Clawdie first boot: failed"
    if step != "platform":  # the platform's failure comes after the set-up headline
        assert receipt.splitlines()[1] == (
            f"stopped at step {index} of {len(FIRSTBOOT_STEPS)} ({step}): a failure was injected "
            f"at before:{step} (fail:before:{step})"
        )
    assert f"a failure was injected at before:{step}" in receipt
    state = box / "root/var/lib/clawdie-setup"
    on_stick, on_disk = one_bundle(box / "stick"), one_bundle(state)
    assert on_stick.read_bytes() == on_disk.read_bytes()
    assert oct(on_disk.stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    texts = bundle_texts(on_disk)
    assert set(texts) >= {
        "clawdie-logs/clawdie-setup.log",
        "clawdie-logs/SETUP-RESULT.txt",
        "clawdie-logs/journal.txt",
        "clawdie-logs/kernel.txt",
        "clawdie-logs/block-devices.txt",
    }
    own_log = texts["clawdie-logs/clawdie-setup.log"]
    assert f"failed at step {index} of {len(FIRSTBOOT_STEPS)} ({step})" in own_log
    assert f"[{index}/{len(FIRSTBOOT_STEPS)}]" in own_log
    assert "Clawdie first boot: failed" in texts["clawdie-logs/SETUP-RESULT.txt"]
    for name, text in texts.items():
        assert SENTINEL not in text, name
    summary = (state / "install-summary.txt").read_text()
    assert f"log bundle on the disk: /var/lib/clawdie-setup/{on_disk.name}\n" in summary
    assert SENTINEL not in summary


def test_a_secret_a_step_logs_is_redacted_in_the_bundle(tmp_path: Path) -> None:
    """A step that logs a secret and then fails (a bug): the bundle holds the log line, masked."""
    box = firstboot_box(tmp_path, SEED)
    import installer.firstboot.runner as runner
    import installer.firstboot.steps.identity as identity

    def leaky(ctx: Any) -> Any:
        logging.getLogger("clawdie.firstboot").warning(
            "about to fail holding %s", ctx.seed.models.keys[0].value.get_secret_value()
        )
        raise RuntimeError("a bug")

    saved = runner.SETUP_STEPS
    runner.SETUP_STEPS = (replace(identity.STEP, apply=leaky),)
    try:
        code = run_command(
            "firstboot",
            [
                *("--root", str(box / "root"), "--seed", str(box / "setup.txt")),
                *("--no-telegram", "--wizard", "never", "--no-platform-start"),
                *("--receipt-dir", str(box / "stick")),
            ],
        )
    finally:
        runner.SETUP_STEPS = saved
    assert code == 1
    texts = bundle_texts(one_bundle(box / "stick"))
    own_log = texts["clawdie-logs/clawdie-setup.log"]
    assert "about to fail holding <redacted>" in own_log
    assert all(SENTINEL not in text for text in texts.values())


@pytest.fixture
def secret() -> Iterator[str]:
    value = f"bundle-{SENTINEL}"
    redact.register(value)
    yield value
    redact.forget_all()


def test_a_bundle_that_still_holds_a_secret_is_not_kept(tmp_path: Path, secret: str) -> None:
    parts = [("clawdie-setup.log", f"line with {secret}\n")]
    stick: list[str] = []

    def put(name: str, data: bytes) -> tuple[bool, str]:  # noqa: ARG001 (a receipt writer)
        stick.append(name)
        return True, "written"

    done = write_failure_bundle(tmp_path / "state", "box", parts, put, clean=lambda t: t)
    assert done == ["log bundle not kept: it still held 1 secret(s) after redaction"]
    assert not list(tmp_path.rglob("*.tar.gz"))
    assert stick == []
    kept = write_failure_bundle(tmp_path / "state", "box", parts, put, when=0)
    assert kept[0] == f"log bundle on the disk: {tmp_path / 'state'}/{bundle_name('box', 0)}"
    assert stick == [bundle_name("box", 0)]
    texts = bundle_texts(tmp_path / "state" / bundle_name("box", 0))
    assert texts["clawdie-logs/clawdie-setup.log"] == "line with <redacted>\n"


def test_a_secret_is_found_in_a_bundle_however_it_is_packed(secret: str) -> None:
    assert secrets_in(build_bundle([("a", "x"), ("b", secret)], 0, lambda t: t), [secret]) == 1
    assert secrets_in(build_bundle([("a", secret)], 0), [secret]) == 0
    assert secrets_in(b"not a tar.gz", [secret]) == 1  # unreadable: not kept either
    assert bundle_name("Zoë's box", 0) == "clawdie-logs-Zo-s-box-19700101T000000Z.tar.gz"


def test_our_log_is_buffered_redacted_and_bounded(secret: str) -> None:
    with LogBuffer(limit=3) as buffer:
        for n in range(5):
            logging.getLogger("clawdie.test").debug("line %d %s", n, secret)
    assert buffer.text().count("\n") == 3
    assert "line 4 <redacted>" in buffer.text()
    assert secret not in buffer.text()
    logging.getLogger("clawdie.test").info("after")
    assert "after" not in buffer.text()


# -- what the receipt tells about the box --------------------------------------------------------


def plant(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


SECURE_BOOT = f"sys/firmware/efi/efivars/SecureBoot-{EFI_GLOBAL_GUID}"
LOCKDOWN = "sys/kernel/security/lockdown"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "unknown (no /sys/firmware)"),
        ({"sys/firmware/acpi/x": ""}, "BIOS (legacy)"),
        ({SECURE_BOOT: b"\x06\x00\x00\x00\x01"}, "UEFI, Secure Boot on"),
        ({SECURE_BOOT: b"\x06\x00\x00\x00\x00"}, "UEFI, Secure Boot off"),
        (
            {
                SECURE_BOOT: b"\x06\x00\x00\x00\x01",
                LOCKDOWN: "none [integrity] confidentiality\n",
            },
            "UEFI, Secure Boot on, kernel lockdown integrity",
        ),
        (
            {SECURE_BOOT: b"\x06\x00\x00\x00\x00", LOCKDOWN: "[none] integrity confidentiality\n"},
            "UEFI, Secure Boot off",
        ),
        (
            {SECURE_BOOT: b"\x06\x00"},
            "UEFI, Secure Boot state unknown (a short SecureBoot variable)",
        ),
        (
            {"sys/firmware/efi/efivars/Boot0000-x": b""},
            "UEFI, Secure Boot state unknown (no SecureBoot variable)",
        ),
    ],
)
def test_boot_mode(tmp_path: Path, files: dict[str, str | bytes], expected: str) -> None:
    assert read_boot_mode(plant(tmp_path, files)) == expected


SHIM_VERSION = "1.51~1+deb12u1+16.1-2~deb12u1"
GRUB_VERSION = "1+2.06+13+deb12u2"
DPKG_STATUS = f"""\
Package: shim-signed
Status: install ok installed
Architecture: amd64
Version: {SHIM_VERSION}
Description: Secure Boot chain-loading bootloader (Microsoft-signed binary)
 a continuation line: not a field

Package: grub-efi-amd64-signed
Status: install ok installed
Version: {GRUB_VERSION}

Package: grub-pc
Status: deinstall ok config-files
Version: 2.06-13
"""


def efi_with_sbat(path: Path, sbat: str) -> bytes:
    """A real EFI binary (grub-mkimage) whose .sbat section holds `sbat`."""
    csv = path.with_suffix(".csv")
    csv.write_text(sbat)
    subprocess.run(
        ["grub-mkimage", "-O", "x86_64-efi", "-p", "/", "--sbat", str(csv), "-o", str(path)],
        check=True,
    )
    return path.read_bytes()


def test_boot_loaders_by_package_version_and_sbat_generation(tmp_path: Path) -> None:
    sbat = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
    shim = efi_with_sbat(tmp_path / "shim.efi", f"{sbat}shim,4,UEFI shim,shim,1,https://x\n")
    grub = efi_with_sbat(tmp_path / "grub.efi", f"{sbat}grub,5,Free Software Foundation,grub\n")
    root = plant(
        tmp_path / "root",
        {
            "var/lib/dpkg/status": DPKG_STATUS,
            "usr/lib/shim/shimx64.efi.signed": shim,
            "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": grub,
        },
    )
    assert read_boot_loaders(root) == (
        f"shim-signed {SHIM_VERSION} (SBAT shim,4), "
        f"grub-efi-amd64-signed {GRUB_VERSION} (SBAT grub,5)"
    )
    # the receipt's and summary's line, under UEFI only
    plant(root, {SECURE_BOOT: b"\x06\x00\x00\x00\x01"})
    lines = render_machine_lines(TargetPaths(root), addresses={}, installed=False)
    assert lines[1:3] == [
        "Boot mode:      UEFI, Secure Boot on",
        f"Boot loaders:   {read_boot_loaders(root)}",
    ]
    # an unsigned GRUB without an .sbat section, and a system without shim: said so
    (root / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed").write_bytes(b"MZ" + bytes(200))
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS.replace("shim-signed", "shim-unsigned"))
    assert read_boot_loaders(root) == (
        f"shim-signed not installed, grub-efi-amd64-signed {GRUB_VERSION} (SBAT not found)"
    )


def test_bios_boot_names_no_uefi_loaders(tmp_path: Path) -> None:
    root = plant(tmp_path, {"sys/firmware/acpi/x": "", "var/lib/dpkg/status": DPKG_STATUS})
    text = "\n".join(render_machine_lines(TargetPaths(root), addresses={}, installed=False))
    assert "Boot mode:      BIOS (legacy)" in text
    assert "Boot loaders" not in text


@pytest.mark.parametrize(
    ("vendor", "product", "version", "expected"),
    [
        ("QEMU\n", "Standard PC (i440FX + PIIX, 1996)\n", "pc-i440fx-7.2\n", None),
        (
            "LENOVO",
            "20XW00A1GE",
            "ThinkPad X1 Carbon Gen 9",
            "LENOVO 20XW00A1GE ThinkPad X1 Carbon Gen 9",
        ),
        ("To Be Filled By O.E.M.", "Default string", "", "unknown (no DMI information)"),
    ],
)
def test_machine_model_from_dmi(
    tmp_path: Path, vendor: str, product: str, version: str, expected: str | None
) -> None:
    dmi = "sys/class/dmi/id/"
    root = plant(
        tmp_path,
        {
            dmi + "sys_vendor": vendor,
            dmi + "product_name": product,
            dmi + "product_version": version,
        },
    )
    want = expected or "QEMU Standard PC (i440FX + PIIX, 1996) pc-i440fx-7.2"
    assert read_machine_model(root) == want


IP_JSON = """[
 {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
 {"ifindex":2,"ifname":"enp1s0","addr_info":[
   {"family":"inet","local":"192.168.1.20","prefixlen":24},
   {"family":"inet6","local":"fe80::5054:ff:fe12:3456","prefixlen":64}]},
 {"ifindex":3,"ifname":"wlp2s0","addr_info":[]}
]"""


def test_interfaces_with_mac_and_address(tmp_path: Path) -> None:
    net = "sys/class/net/"
    root = plant(
        tmp_path,
        {
            net + "lo/address": "00:00:00:00:00:00\n",
            net + "enp1s0/address": "52:54:00:12:34:56\n",
            net + "enp1s0/operstate": "up\n",
            net + "wlp2s0/address": "aa:bb:cc:dd:ee:ff\n",
            net + "wlp2s0/operstate": "down\n",
        },
    )
    addresses = parse_ip_addresses(IP_JSON)
    assert addresses["enp1s0"] == ["192.168.1.20/24", "fe80::5054:ff:fe12:3456/64"]
    assert parse_ip_addresses("not json") == {} == parse_ip_addresses('{"a": 1}')
    lines = render_machine_lines(TargetPaths(root), addresses=addresses)
    start = lines.index("Network:")
    assert lines[start + 1 : start + 3] == [
        "  enp1s0 52:54:00:12:34:56 192.168.1.20/24, fe80::5054:ff:fe12:3456/64",
        "  wlp2s0 aa:bb:cc:dd:ee:ff no address (down)",
    ]
    assert [i.name for i in read_interfaces(root, {})] == ["enp1s0", "wlp2s0"]


def test_the_running_machine_is_described() -> None:
    """Against this machine's own /sys: every interface the kernel lists, with its MAC."""
    interfaces = read_interfaces(Path("/"))
    listed = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    assert [i.name for i in interfaces] == listed
    for interface in interfaces:
        assert (
            interface.mac
            == (Path("/sys/class/net") / interface.name / "address").read_text().strip()
        )


def test_ssh_host_key_fingerprints_match_the_key(tmp_path: Path) -> None:
    """The same words `ssh-keygen -l` prints for each kind of host key, without running it."""
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    expected = []
    for kind in ("ecdsa", "ed25519", "rsa"):  # the order of the sorted file names
        key = root / f"etc/ssh/ssh_host_{kind}_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@box", "-f", str(key)],
            check=True,
        )
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
        ).stdout.split()  # `256 SHA256:abc root@box (ED25519)`
        expected.append(f"{listed[-1].strip('()')} {listed[1]}")
    assert read_ssh_fingerprints(TargetPaths(root)) == expected
    lines = "\n".join(render_machine_lines(TargetPaths(root), addresses={}))
    for shown in expected:
        assert f"  {shown}" in lines
    private = (root / "etc/ssh/ssh_host_ed25519_key").read_text()
    assert private.split("\n")[1] not in lines  # the private half is never read
    assert ssh_fingerprint("garbage") is None
    assert ssh_fingerprint("ssh-ed25519 not*base64") is None


def test_installation_fingerprint_line(tmp_path: Path) -> None:
    root = plant(tmp_path, {"etc/machine-id": ""})
    text = "\n".join(render_machine_lines(TargetPaths(root), addresses={}))
    assert "Installation fingerprint: not yet: the machine id is made at the first start" in text
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    text = "\n".join(render_machine_lines(TargetPaths(root), addresses={}))
    assert re.search(
        FINGERPRINT_LINE,
        text,
        re.M,
    )


def test_each_seed_key_is_applied_defaulted_or_not_given() -> None:
    check = check_seed_bytes(valid("ASSISTANT_NAME=Ada"))
    states = dict(seed_key_states(check))
    assert states["TELEGRAM_BOT_TOKEN"] == "applied (setup.txt line 1)"
    assert states["ASSISTANT_NAME"] == "applied (setup.txt line 4)"
    assert states["HOSTNAME"] == "defaulted (derived from ASSISTANT_NAME)"
    assert states["PI_TUI_MODEL"].startswith("defaulted (profile ")
    assert states["OPERATOR_EMAIL"] == "not given"
    answered = apply_answers(check_seed_bytes(valid()), {"ASSISTANT_NAME": "Bo"})
    assert dict(seed_key_states(answered))["ASSISTANT_NAME"] == "applied (answered on the console)"


@pytest.mark.root
def test_the_first_boot_receipt_describes_the_box_and_every_key(box: Path, pg: PgCluster) -> None:
    plant(
        box / "root",
        {
            "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
            "sys/class/net/enp1s0/address": "52:54:00:12:34:56\n",
            "sys/class/net/enp1s0/operstate": "up\n",
            # as the disk installer writes it
            "var/lib/clawdie-setup/installed.txt": "TARGET_DISK=/dev/vda\nDISK_MODEL=0x1af4\n"
            "DISK_IDENTITY=QEMU HARDDISK, serial QM0001, 8.6 GB, "
            "/dev/disk/by-id/ata-QEMU_HARDDISK_QM0001\n",
        },
    )
    host_key = box / "root/etc/ssh/ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    (fingerprint,) = read_ssh_fingerprints(TargetPaths(box / "root"))
    result = firstboot(box, pg, start_platform=False)
    assert result.returncode == 0, result.stderr[-2000:]
    receipt = read_receipt(box / "stick")
    assert receipt.splitlines()[0] == "Clawdie first boot: ok"
    assert "Network:\n  enp1s0 52:54:00:12:34:56 no address\n" in receipt  # a sandbox's
    assert f"SSH host keys:\n  {fingerprint}\n" in receipt
    # the login screen: where to go (beside its QR code: tests/test_console_screen.py), what
    # to trust; agetty fills in the live address
    issue = (box / "root/etc/issue.d/clawdie.issue").read_text()
    for line in (
        " Clawdie first boot: ok - the assistant is",
        " Dashboard: https://zoe-s-helper.local/\n",
        " Network:\n",
        "   enp1s0 52:54:00:12:34:56 \\4{enp1s0}\n",
        f"\n  SSH host key: {fingerprint}\n",
        " Installation fingerprint: ",
    ):
        assert line in issue, line
    assert max(len(line) for line in issue.splitlines()) <= 80
    for line in (
        "Version:        clawdie-setup ",
        "Boot mode:      unknown (no /sys/firmware)",  # a sandbox root has no /sys
        "Dashboard URL:  https://zoe-s-helper.local/",
        "Installation fingerprint: ",
        "Setup keys (setup.txt):",
        "  OPERATOR_PASSWORD: ",
        "  TARGET_DISK: ",
    ):
        assert line in receipt, line
    assert re.search(r"^  OPERATOR_PASSWORD: +applied \(setup\.txt line 10\)$", receipt, re.M)
    assert re.search(r"^  TARGET_DISK: +not given$", receipt, re.M)
    assert re.search(
        FINGERPRINT_LINE,
        receipt,
        re.M,
    )
    assert SENTINEL not in receipt
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Disk:           /dev/vda: QEMU HARDDISK, serial QM0001, 8.6 GB, " in summary
    assert "Installation fingerprint: " in summary
    assert "Setup keys" in summary
    assert not list((box / "stick").glob("clawdie-logs-*"))  # success leaves no bundle


# -- the disk installer killed or failed at every step ---------------------------------------------

INSTALL_STEPS = [
    "seed",
    "disk",
    "partitions",
    "file-systems",
    "copy",
    "configuration",
    "identities",
    "boot-loader",
]
FAST_INSTALL_STEPS = {"seed", "copy", "boot-loader"}


def install_in_subprocess(
    tmp_path: Path, squashfs: Path, seed: Path, disk: str, fault: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAWDIE_INSTALL_FAULT": fault}
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", *install_argv(tmp_path, squashfs, seed, disk)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=300,
    )


@pytest.fixture
def unmount_target(tmp_path: Path) -> Iterator[None]:
    """A killed install leaves its target mounted (a power cut would take it down)."""
    yield
    subprocess.run(["umount", "-R", str(tmp_path / "target")], capture_output=True, check=False)


@pytest.mark.root
@pytest.mark.usefixtures("root_tools", "unmount_target")
@pytest.mark.parametrize(
    "step",
    [
        pytest.param(s, marks=() if s in FAST_INSTALL_STEPS else pytest.mark.slow)
        for s in INSTALL_STEPS
    ],
)
def test_an_install_killed_at_a_step_leaves_a_receipt_naming_it(
    tmp_path: Path, live: Path, step: str
) -> None:
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}")
        killed = install_in_subprocess(tmp_path, live, seed, disk.node, f"before:{step}")
        subprocess.run(["umount", "-R", str(tmp_path / "target")], capture_output=True)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    receipt = (tmp_path / "receipt/SETUP-RESULT.txt").read_text()
    index = INSTALL_STEPS.index(step) + 1
    assert_in_progress_at(receipt, "Clawdie installer", index, len(INSTALL_STEPS), step)
    assert f"install: [{index}/{len(INSTALL_STEPS)}] " in killed.stdout
    assert SENTINEL not in receipt


@pytest.mark.root
@pytest.mark.usefixtures("root_tools", "unmount_target")
@pytest.mark.parametrize(
    "step",
    [
        pytest.param(s, marks=() if s in FAST_INSTALL_STEPS else pytest.mark.slow)
        for s in INSTALL_STEPS
    ],
)
def test_an_install_failing_at_a_step_leaves_a_bundle_on_the_stick_and_the_live_system(
    tmp_path: Path, live: Path, step: str
) -> None:
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}")
        failed = install_in_subprocess(tmp_path, live, seed, disk.node, f"fail:before:{step}")
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    index = INSTALL_STEPS.index(step) + 1
    receipt = (tmp_path / "receipt/SETUP-RESULT.txt").read_text()
    touched = index >= INSTALL_STEPS.index("partitions") + 1
    assert receipt.splitlines()[:3] == [
        "Clawdie installer: failed",
        f"Stopped at step {index} of 8 ({step}): a failure was injected at before:{step} "
        f"(fail:before:{step})",
        "The disk was partly written and does not start; install again."
        if touched
        else "No disk was changed.",
    ]
    on_stick = one_bundle(tmp_path / "receipt")
    on_live = one_bundle(tmp_path / "live-root/var/lib/clawdie-setup")
    assert on_stick.read_bytes() == on_live.read_bytes()
    texts = bundle_texts(on_stick)
    assert f"install: [{index}/8] " in texts["clawdie-logs/clawdie-setup.log"]
    assert f"failed at step {index} of 8 ({step})" in texts["clawdie-logs/clawdie-setup.log"]
    for name, text in texts.items():
        assert SENTINEL not in text, name
    assert f"log bundle on the stick: wrote {on_stick.name}" in failed.stdout


# -- causes before consequences ------------------------------------------------------------------


def test_an_unanswered_console_names_the_seed_problem_first_with_the_installers_hint(
    tmp_path: Path,
) -> None:
    """The issue's case: a malformed bot token, nobody at the screen. The marker, the console
    and the receipt's Reason: open with the key and its line; the hint is the installer's."""
    squashfs = tmp_path / "filesystem.squashfs"
    squashfs.write_bytes(b"not used")
    seed = tmp_path / "setup.txt"
    seed.write_text(
        "TELEGRAM_BOT_TOKEN=not-a-token\nTELEGRAM_ADMIN_ID=123456789\n"
        f"OPENROUTER_API_KEY=sk-or-v1-{SENTINEL}0123456789abcdef\n"
    )
    (tmp_path / "receipt").mkdir()
    out = io.StringIO()
    config = InstallConfig(
        squashfs=squashfs,
        seed=seed,
        receipt_dir=tmp_path / "receipt",
        failure_wait=0,
        poweroff=False,
        reboot=False,
        live_root=tmp_path / "live",
        only_disks=("/dev/nonexistent",),
    )
    assert InstallRun(config, Console(out), asker=lambda _: None).execute() == 1
    cause = "setup.txt:1: TELEGRAM_BOT_TOKEN: "
    marker = next(line for line in out.getvalue().splitlines() if "INSTALL-FAILED" in line)
    assert marker.startswith(f"CLAWDIE-INSTALL-FAILED: {cause}"), marker
    assert marker.endswith("; the questions on the console were not answered")
    assert f"install: FAILED: {cause}" in out.getvalue()
    receipt = (tmp_path / "receipt/SETUP-RESULT.txt").read_text()
    reason = next(line for line in receipt.splitlines() if line.startswith("Reason: "))
    assert reason.startswith(f"Reason: {cause}")
    assert receipt.splitlines()[1].startswith(f"Stopped at step 1 of 8 (seed): {cause}")
    assert "No disk was changed." in receipt
    hint = next(line for line in receipt.splitlines() if line.startswith("What to do: "))
    assert hint.endswith("then restart the machine from the stick to install again")
    assert SENTINEL not in out.getvalue() + receipt


@pytest.mark.root
def test_first_boot_names_the_seed_problem_first_with_its_own_hint(
    box: Path, pg: PgCluster
) -> None:
    (box / "setup.txt").write_text("ASSISTANT_NAME=Ada\nTELEGRAM_ADMIN_ID=@ada\n")
    result = firstboot(box, pg)
    assert result.returncode == 1
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    head = summary.splitlines()
    assert head[0] == "Clawdie first boot: failed"
    assert head[1].startswith("stopped at step 1 of 10 (seed): setup.txt")
    assert head[1].endswith("; there is no console to ask on")
    assert "then restart the machine: first boot runs again" in summary
    assert "install again" not in summary
    issue = (box / "root/etc/issue.d/clawdie.issue").read_text()  # stays on the login screen
    assert "\n  Clawdie first boot: failed - stopped at step 1 of 10 (seed): setup.txt" in issue
    assert "Reason:" not in issue  # the headline already names the cause
    assert "\n  What to do: fix setup.txt" in issue
    assert max(len(line) for line in issue.splitlines()) <= 80


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(401)
        self.end_headers()
        self.wfile.write(b'{"ok": false, "description": "Unauthorized"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.root
def test_a_message_that_could_not_be_sent_makes_the_run_degraded(box: Path, pg: PgCluster) -> None:
    """Works, something to fix (Telegram refused the token): the same word in the summary, the
    receipt and the login screen; the exit code is still 0 (the service did its job)."""
    server = HTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = f"http://127.0.0.1:{server.server_port}"
        result = firstboot(box, pg, telegram_api=api, start_platform=False)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-2000:]
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert summary.splitlines()[0] == "Clawdie first boot: degraded"
    assert "Telegram message not sent: Telegram refused the message (HTTP 401)" in summary
    assert read_receipt(box / "stick").splitlines()[0] == "Clawdie first boot: degraded"
    issue = (box / "root/etc/issue.d/clawdie.issue").read_text()
    assert "Clawdie first boot: degraded - " in issue


def test_the_bundles_debug_lines_stay_off_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log buffer records DEBUG for the bundle; the console keeps its INFO lines."""
    box = firstboot_box(tmp_path, SEED)
    root_logger = logging.getLogger()
    saved = (root_logger.handlers[:], root_logger.level)
    root_logger.handlers = []
    try:
        code = run_command(
            "firstboot",
            [
                *("--root", str(box / "root"), "--seed", str(box / "setup.txt")),
                *("--no-telegram", "--wizard", "never", "--no-platform-start"),
                *("--receipt-dir", str(box / "stick"), "--db-timeout-ms", "1"),
                *("--db-admin", f"host={tmp_path} port=1 user=none dbname=none"),
            ],
        )
    finally:
        root_logger.handlers, root_logger.level = saved
    assert code == 3
    err = capsys.readouterr().err
    assert "[7/10] waiting for PostgreSQL" in err
    own_log = bundle_texts(one_bundle(box / "stick"))["clawdie-logs/clawdie-setup.log"]
    assert " DEBUG " in own_log
    debug = [line.split(" DEBUG ", 1)[1] for line in own_log.splitlines() if " DEBUG " in line]
    assert debug
    assert [message for message in debug if message in err] == []
