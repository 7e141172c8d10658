"""The boot tests' shared lane: the machines (a stick and a blank disk), the install, first
boot, the timing tables, and the boots several test modules share (DESIGN §5, §10).

The UEFI machine is installed once, under Secure Boot (`secure_boot_installed`): the stick
boots Debian's signed chain with Microsoft's keys enrolled, installs, and the disk's first boot
reaches PLATFORM-READY. Plain UEFI is then a later boot of that disk (a qcow2 overlay) under
OVMF without Secure Boot (`uefi_later_boot`): the same shim -> GRUB -> kernel chain with Secure
Boot off. That one boot also carries a user-mode NIC whose forwarded ports the host probes (the
box shows only what it serves), and a test kit (the product carries no test hook: it is
written into this run's copy of the disk) that, once the platform is up, runs what a kernel
and boot-loader package update runs. The next boot of the same overlay is under Secure Boot
again (`after_update_boot`). Serial logs and figures are kept in build/iso/boot-test.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from installer.media.receipt_file import read_receipt
from installer.seed.rules import derive_hostname
from tests.helpers import boot_timing, vm
from tests.helpers.image import OUT, copy_image
from tests.helpers.seeds import ADMIN, OPENROUTER, PASSWORD, TOKEN
from tests.helpers.sentinels import BACKUP_RECIPIENT

if TYPE_CHECKING:
    from tests.helpers.dashboard import Visit

LOGS = OUT / "boot-test"
DISK_SIZE = 6 * 1024**3
INSTALL_BOUND = 1500.0  # power-on to CLAWDIE-INSTALL-DONE
FIRSTBOOT_BOUND = 1200.0  # power-on to PLATFORM-READY
FAILURE_BOUND = 900.0  # power-on to a failure's power-off (waits 120 s + 60 s for a person)
ASSISTANT_NAME = "Boot Test"
# No HOSTNAME line: the box's name is the one the installer derives from ASSISTANT_NAME.
BOX_HOSTNAME = derive_hostname(ASSISTANT_NAME)
OPERATOR_EMAIL = "operator@example.com"
SEED_LINES = [
    f"TELEGRAM_BOT_TOKEN={TOKEN}",
    f"OPENROUTER_API_KEY={OPENROUTER}",
    f"ASSISTANT_NAME={ASSISTANT_NAME}",
    f"OPERATOR_EMAIL={OPERATOR_EMAIL}",
    f"OPERATOR_PASSWORD={PASSWORD}",
]
# The BIOS machine's seed has Wi-Fi too: its disk, kept before first boot, is what the Wi-Fi runs
# boot (tests/test_boot_wifi.py); without a radio its own first boot just says there is none.
WIFI_SSID = "ClawdieTest"
WIFI_PASSWORD = "wifi-boot-test-7f3a"
WIFI_COUNTRY = "DE"
WIFI_LINES = [
    f"WIFI_SSID={WIFI_SSID}",
    f"WIFI_PASSWORD={WIFI_PASSWORD}",
    f"WIFI_COUNTRY={WIFI_COUNTRY}",
]
# The boot tests run in two pytest-xdist workers (`just boot-test`): each worker keeps its
# figures by merging them into figures.json under this lock; the run's controller clears the file
# when the run starts (tests/conftest.py).
FIGURES_FILE = LOGS / "figures.json"
LOADERS = re.compile(
    r"^Boot loaders:   shim-signed \S+ \(SBAT shim,\d+\), "
    r"grub-efi-amd64-signed \S+ \(SBAT grub,\d+\)$",
    re.MULTILINE,
)


def filled_seed(*extra: str, admin: bool = True) -> bytes:
    lines = [*SEED_LINES, *([f"TELEGRAM_ADMIN_ID={ADMIN}"] if admin else []), *extra]
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (made when missing) across processes: the boot tests'
    two workers share figures.json and the one UEFI install through it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keep_figures(run: str, figures: dict[str, float]) -> None:
    """Merge one boot's figures into figures.json (the other worker's stay)."""
    with locked(LOGS / "figures.lock"):
        kept = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.is_file() else {}
        kept[run] = {**kept.get(run, {}), **figures}
        FIGURES_FILE.write_text(json.dumps(kept, indent=2) + "\n")


def record(run: str, machine: vm.Vm, **fields: float) -> None:
    """Keep and print the seconds since power-on of each mark of one boot (`machine.name`)."""
    boot = {f"{machine.name}: {k}": round(v, 1) for k, v in {**machine.marks, **fields}.items()}
    keep_figures(run, boot)
    vm.print_timing(run, boot)


def record_journal(
    run: str, machine: Machine, guest: vm.Vm, which: str, text: str = ""
) -> list[boot_timing.Row]:
    """Print and keep the table of where the boot went, from the (shut down) disk's journal:
    our first-boot service per phase and its start-to-exit, the platform unit's start, and the
    seconds from power-on (QEMU's start) to PLATFORM-READY and to the login prompt."""
    rows = boot_timing.firstboot_rows(
        boot_timing.split_boots(boot_timing.read_journal(machine.disk))[-1]
    )
    after_power_on = [
        boot_timing.Row(f"power-on to {name}", guest.marks[name])
        for name in ("PLATFORM-READY", "login prompt")
        if name in guest.marks
    ]
    headline = re.findall(r"the assistant is set up \((\d+\.\d) s\)", text)
    if headline:  # the summary's own figure (the last one written), next to the journal's
        after_power_on.append(boot_timing.Row("the summary's time", float(headline[-1])))
    keep_table(run, guest, which, rows, after_power_on)
    return rows


def record_install(run: str, guest: vm.Vm) -> list[boot_timing.Row]:
    """Print and keep the table of where the install went (from the stick's serial log)."""
    entries = boot_timing.entries_from_serial(guest.log_text())
    rows = boot_timing.install_rows(entries, guest.marks.get("install done"))
    keep_table(run, guest, "install", rows)
    return rows


def keep_table(
    run: str,
    guest: vm.Vm,
    which: str,
    rows: list[boot_timing.Row],
    extra: list[boot_timing.Row] | None = None,
) -> None:
    """Print one boot's table, keep it in LOGS and its rows in figures.json."""
    table = boot_timing.render_table(f"boot-test: {run}: {which} ({guest.name})", rows, extra or [])
    print(table, end="", flush=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{run}-{guest.name}.timing.txt").write_text(table)
    keep_figures(run, {f"{guest.name}: {row.name.strip()}": round(row.seconds, 1) for row in rows})


def keep_installed_disk(machine: Machine, run: str) -> None:
    """A copy of the disk as the installer left it, before its first boot: `just bench-boot`
    boots copies of it (build/iso/boot-test/RUN-installed.img, sparse)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["cp", "--sparse=always", str(machine.disk), str(LOGS / f"{run}-installed.img")], check=True
    )


def keep_logs(workdir: Path) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copyfile(log, LOGS / f"{workdir.name}-{log.name}")


class Machine:
    """A virtual machine's disks: its stick (a copy of the image with a seed) and its disk."""

    def __init__(self, workdir: Path, image: Path, seed: bytes, firmware: vm.Firmware) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.stick = copy_image(image, workdir / "stick.img")
        vm.write_seed(self.stick, seed)
        self.disk = vm.make_blank_disk(workdir / "disk.img", DISK_SIZE)
        self.firmware = firmware

    @classmethod
    def installed(cls, workdir: Path, firmware: vm.Firmware) -> Machine:
        """The machine another worker installed in `workdir` (its stick and disk as they are)."""
        machine = cls.__new__(cls)
        machine.workdir = workdir
        machine.stick = workdir / "stick.img"
        machine.disk = workdir / "disk.img"
        machine.firmware = firmware
        return machine

    def boot(self, name: str, *, stick: bool) -> vm.Vm:
        return vm.Vm(
            workdir=self.workdir,
            disk=self.disk,
            stick=self.stick if stick else None,
            firmware=self.firmware,
            name=name,
        )

    def receipt(self) -> str:
        data = vm.read_seed_file(self.stick, "SETUP-RESULT.txt")
        assert data is not None, "no SETUP-RESULT.txt on the stick"
        text = read_receipt(data)  # the newest of the two receipts the file keeps
        assert text is not None, "no whole receipt in SETUP-RESULT.txt"
        return text


def install(machine: Machine, run: str) -> None:
    """Phase 1: boot the stick as a removable USB device; it installs, then reboots."""
    try:
        with machine.boot("install", stick=True) as guest:
            guest.wait_for("CLAWDIE-INSTALL-DONE", INSTALL_BOUND, name="install done")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-reset", "the installer should reboot when done"
            record(run, guest)
    finally:
        keep_logs(machine.workdir)
    record_install(run, guest)
    receipt = machine.receipt()
    assert "installed" in receipt.lower()
    # the receipt says what the installer saw: boot mode and the disk as its label names it
    mode = {
        "bios": r"BIOS \(legacy\)",
        "uefi": r"UEFI, Secure Boot (off|state unknown .*)",  # OVMF without Secure Boot
        "uefi-secureboot": r"UEFI, Secure Boot on, kernel lockdown integrity",
    }[machine.firmware]
    assert re.search(f"^Boot mode:      {mode}$", receipt, re.MULTILINE), receipt
    if machine.firmware != "bios":  # and under UEFI Debian's signed loaders, matched to SBAT
        assert LOADERS.search(receipt), receipt
    assert vm.DISK_SERIAL in receipt
    assert PASSWORD not in receipt
    assert WIFI_PASSWORD not in receipt
    assert OPENROUTER not in receipt
    assert TOKEN not in receipt


def first_boot(machine: Machine, run: str) -> str:
    """Phase 2: boot the disk without the stick, to PLATFORM-READY and the login screen."""
    try:
        with machine.boot("firstboot", stick=False) as guest:
            started = guest.wait_for(
                "Starting clawdie-firstboot.service", FIRSTBOOT_BOUND, name="first boot starts"
            )
            finished = guest.wait_for(
                "Finished clawdie-firstboot.service",
                FIRSTBOOT_BOUND,
                after=started,
                name="first boot done",
            )
            ready = guest.wait_for(
                re.compile(r"PLATFORM-READY role=(\S+) db=(\S+) operators=(\d+)"),
                FIRSTBOOT_BOUND,
                name="PLATFORM-READY",
            )
            guest.wait_for(re.compile(r"login:"), 300, after=finished, name="login prompt")
            text = guest.log_text()
            # a clean power-off (ACPI), so the disk can be read afterwards as the machine left it
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown", "the power button should shut down"
            record(run, guest, **{"our first-boot service (s)": finished.elapsed - started.elapsed})
    finally:
        keep_logs(machine.workdir)
    rows = record_journal(run, machine, guest, "first boot", text)
    assert boot_timing.service_seconds(rows) > 0, "the first-boot service ran"
    assert ready.group(1) == "clawdie"
    assert ready.group(2) == "system_ops"
    assert ready.group(3) == "1", "the dashboard operator from the seed should exist"
    for secret in (PASSWORD, OPENROUTER, TOKEN, WIFI_PASSWORD):
        assert secret not in text
    return text


# --- the UEFI machine: installed once, under Secure Boot ---------------------------------------

SECURE_BOOT_RUN = "uefi-secureboot"
# What Debian's kernel says of the firmware's Secure Boot state, and when it locks itself down.
KERNEL_SECURE_BOOT = re.compile(r"Secure boot enabled")
KERNEL_SECURE_BOOT_OFF = re.compile(r"Secure boot disabled")
KERNEL_LOCKDOWN = re.compile(r"Kernel is locked down from EFI Secure Boot")
UEFI_MAC = "52:54:00:c1:a0:02"  # the plain-UEFI later boot's one NIC (user networking)
# The ports the host probes through that NIC, and what it sends to make a service speak. Only SSH
# and the reference platform's dashboard (platform.toml `port = 443`, HTTPS) may answer.
DASHBOARD_PORT = 443
HTTP_GET = b"GET / HTTP/1.0\r\nHost: boot-test.local\r\n\r\n"
PG_SSL_REQUEST = struct.pack("!II", 8, 80877103)  # PostgreSQL answers it with one byte, S or N
PROBES: dict[int, tuple[str, bytes]] = {
    22: ("SSH", b""),
    DASHBOARD_PORT: ("the dashboard", HTTP_GET),
    5432: ("PostgreSQL", PG_SSL_REQUEST),
    80: ("HTTP", HTTP_GET),
    8080: ("the kit's listener on every address", HTTP_GET),
}
SERVED = (22, DASHBOARD_PORT)
SILENCE_SECONDS = 5.0  # a hidden port: no byte within this, after the served ones answered
# The summary's line of the TLS certificate's key hash (installer/machine.py render_tls_lines).
SUMMARY_SPKI = re.compile(r"its key \(SPKI SHA-256, base64\): (\S+)")


def secure_boot_installed(image: Path, workdir: Path) -> Machine:
    """The UEFI machine: the stick installs under Secure Boot, the disk's first boot under
    Secure Boot reaches PLATFORM-READY (`install` and `first_boot` check the receipt and the
    platform); its serial logs stay in `workdir` for the tests' own checks. Its seed names the
    owner's backup key (BACKUP_RECIPIENT), so the later boot's scheduled backup writes one
    (tests/test_boot_restore.py)."""
    seed = filled_seed(f"BACKUP_RECIPIENT={BACKUP_RECIPIENT}")
    machine = Machine(workdir, image, seed, "uefi-secureboot")
    install(machine, SECURE_BOOT_RUN)
    first_boot(machine, SECURE_BOOT_RUN)
    return machine


def shared_secure_boot_install(image: Path, shared: Path) -> Machine:
    """The UEFI machine installed once for the whole run when the boot tests run in two
    workers: the first to ask installs it in `shared` (the workers' common directory) under a
    lock, the other waits and takes the same machine. Its disk stays as first boot left it (the
    later boots run on overlays), so both may read it."""
    workdir = shared / SECURE_BOOT_RUN
    with locked(shared / f"{SECURE_BOOT_RUN}.lock"):
        done = workdir / "installed"
        if done.is_file():
            return Machine.installed(workdir, "uefi-secureboot")
        if workdir.exists():
            pytest.fail(f"the Secure Boot install failed in the other worker: see {workdir}")
        machine = secure_boot_installed(image, workdir)
        done.touch()
        return machine


def serial_text(workdir: Path, name: str) -> str:
    """A finished boot's serial log, cleaned."""
    return vm.clean_text((workdir / f"{name}.serial.log").read_text(errors="replace"))


def qcow2_overlay(backing: Path, path: Path) -> Path:
    """A qcow2 overlay on a raw disk, which stays as it was."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(backing), "-F", "raw", str(path)],
        check=True,
    )
    return path


def flat_copy(disk: Path, dest: Path) -> Path:
    """A raw copy of a qcow2 overlay (its backing disk under it), to read with debugfs/mtools."""
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(dest)], check=True)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(port: int, send: bytes, seconds: float) -> bytes:
    """What answers at 127.0.0.1:`port` (a forwarded guest port) within `seconds`: its first
    line, or what came before the connection ended; b"" when nothing did. QEMU's user-mode
    network accepts on the host side whatever the guest does, so only the guest's bytes count."""
    data = b""
    deadline = time.monotonic() + seconds
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
            if send:
                sock.sendall(send)
            while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:  # refused, reset or timed out: what came so far
        pass
    return data


def probe_tls(port: int, send: bytes, seconds: float) -> bytes:
    """`probe` through TLS, whatever the certificate (the dashboard's is the box's own; the
    browser visit checks it by its key's hash): the first line of the HTTPS answer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=seconds) as raw,
            context.wrap_socket(raw) as sock,
        ):
            sock.sendall(send)
            return sock.recv(4096)
    except OSError:
        return b""


def probe_ports(forwards: dict[int, int], wait: float) -> dict[int, bytes]:
    """The served ports first, each tried until it answers (at most `wait` s), then each other
    port once for SILENCE_SECONDS: guest port -> what answered."""
    answers: dict[int, bytes] = {}
    deadline = time.monotonic() + wait
    for port in SERVED:
        ask = probe_tls if port == DASHBOARD_PORT else probe
        while not (answers.get(port)) and time.monotonic() < deadline:
            answers[port] = ask(forwards[port], PROBES[port][1], SILENCE_SECONDS)
            if not answers[port]:
                time.sleep(2)
    for port in forwards:
        if port not in SERVED:
            answers[port] = probe(forwards[port], PROBES[port][1], SILENCE_SECONDS)
    return answers


@dataclass
class LaterBoot:
    """The plain-UEFI later boot of the Secure Boot install: its overlay and workdir (the next
    boot of the same overlay continues from them), serial text and what each port answered."""

    workdir: Path
    disk: Path
    text: str
    answers: dict[int, bytes]
    dashboard: Visit | None = None  # the browser's sign-in (None: the dashboard never answered)
    backup_stick: Path | None = None  # the CLAWDIE-BACKUP stick the kit's backup wrote to


def uefi_later_boot(machine: Machine, workdir: Path) -> LaterBoot:
    """Boot a qcow2 overlay of the Secure Boot install under OVMF without Secure Boot (its own,
    new NVRAM) to PLATFORM-READY and the login prompt, with the test kit and a user-mode NIC; the
    host probes the NIC's forwarded ports once the kit is ready, and the kit runs the update;
    then, with a stick labelled CLAWDIE-BAK plugged in, the kit writes a row into the platform's
    database and starts the scheduled backup (tests/test_boot_restore.py)."""
    from tests.helpers import update_kit
    from tests.helpers.wifi_kit import with_kit_hook

    workdir.mkdir(parents=True, exist_ok=True)
    # the installed disk carries no test hook: this run's copy gets it, and GRUB its switch
    hooked = with_kit_hook(machine.disk, workdir / "installed-with-kit-hook.img")
    update_kit.switch_on(hooked, workdir)
    disk = qcow2_overlay(hooked, workdir / "disk.qcow2")
    kit = update_kit.build_kit(workdir / "kit.img")
    stick = update_kit.backup_stick(workdir / "backup-stick.img")
    forwards = {port: free_port() for port in PROBES}
    rules = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{port}" for port, host in forwards.items())
    try:
        with vm.Vm(
            workdir=workdir, disk=disk, disk_format="qcow2", firmware="uefi", name="uefi-later",
            extra_args=[
                "-netdev", f"user,id=lan,restrict=on,{rules}",
                # no option ROM: the firmware boots the disk only, and iPXE costs seconds
                "-device", f"virtio-net-pci,netdev=lan,mac={UEFI_MAC},romfile=",
                "-drive", f"if=none,id=kit,format=raw,readonly=on,file={kit}",
                "-device", "virtio-blk-pci,drive=kit,serial=CLAWDIE-TESTKIT",
                "-drive", f"if=none,id=backup,format=raw,file={stick}",
                "-device", "virtio-blk-pci,drive=backup,serial=CLAWDIE-BACKUP",
            ],
        ) as guest:  # fmt: skip
            guest.wait_for(
                re.compile(r"clawdie-firstboot\.service - .* was skipped because"),
                FIRSTBOOT_BOUND,
                name="first-boot unit skipped",
            )
            guest.wait_for(
                re.compile(r"PLATFORM-READY role=clawdie"), FIRSTBOOT_BOUND, name="PLATFORM-READY"
            )
            guest.wait_for(re.compile(r"login:"), 300, name="login prompt")
            guest.wait_for("TESTKIT: ready for the probes", 600, name="kit ready")
            answers = probe_ports(forwards, 120)
            guest.marks.setdefault("ports probed", guest.elapsed())
            visit = visit_dashboard(machine, forwards[DASHBOARD_PORT], workdir)
            guest.wait_for("TESTKIT: update: done", FIRSTBOOT_BOUND, name="update done")
            guest.wait_for("TESTKIT: backup: done", 900, name="backup done")
            text = guest.log_text()
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record("uefi-later", guest)
    finally:
        keep_logs(workdir)
    return LaterBoot(
        workdir=workdir, disk=disk, text=text, answers=answers, dashboard=visit, backup_stick=stick
    )


def summary_spki(disk: Path) -> str | None:
    """The TLS certificate's key hash as the box's install summary prints it (for Chromium's
    --ignore-certificate-errors-spki-list): the box says which certificate to trust."""
    from tests.helpers.disk_image import read_file, root_filesystem

    with root_filesystem(disk) as device:
        summary = (read_file(device, "/var/lib/clawdie-setup/install-summary.txt") or b"").decode()
    found = SUMMARY_SPKI.search(summary)
    return found.group(1) if found else None


def visit_dashboard(machine: Machine, port: int, workdir: Path) -> Visit | None:
    """The operator's first visit through the forwarded port: headless Chromium trusting only
    the key the summary names, a wrong password, then the seed's; the signed-in page's
    screenshot beside the logs. None when the summary names no key."""
    from tests.helpers.dashboard import chromium_sign_in

    spki = summary_spki(machine.disk)
    if spki is None:
        return None
    url = f"https://127.0.0.1:{port}/"
    visit = chromium_sign_in(url, spki, OPERATOR_EMAIL, PASSWORD, timeout_ms=120000)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "dashboard-signed-in.png").write_bytes(visit.screenshot)
    (workdir / "dashboard-signed-in.png").write_bytes(visit.screenshot)
    return visit


def after_update_boot(machine: Machine, later: LaterBoot) -> vm.Vm:
    """The updated overlay booted under Secure Boot again, with the NVRAM the install left (a
    copy), to PLATFORM-READY and the login prompt; the finished Vm (its marks and log)."""
    nvram = later.workdir / "OVMF_VARS.secboot.fd"
    shutil.copyfile(machine.workdir / "OVMF_VARS.secboot.fd", nvram)
    try:
        with vm.Vm(
            workdir=later.workdir, disk=later.disk, disk_format="qcow2",
            firmware="uefi-secureboot", name="after-update",
        ) as guest:  # fmt: skip
            guest.wait_for(KERNEL_SECURE_BOOT, 600, name="kernel: Secure Boot")
            guest.wait_for(
                re.compile(r"PLATFORM-READY role=clawdie"), FIRSTBOOT_BOUND, name="PLATFORM-READY"
            )
            guest.wait_for(re.compile(r"login:"), 300, name="login prompt")
            guest.qmp.execute("system_powerdown")
            guest.wait_exit(300)
            assert guest.exit_reason() == "guest-shutdown"
            record("uefi-secureboot-after-update", guest)
    finally:
        keep_logs(later.workdir)
    return guest
