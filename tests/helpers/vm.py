"""QEMU harness for boot tests: one headless VM, its serial log, and the image's seed partition.

The guest never has a network: every VM gets `-nic none` and `-nodefaults`, and nothing else adds
a network device. A guest reboot ends QEMU (`-no-reboot`): that is how a test notices that the
installer finished. `Vm` always stops QEMU on exit, also when the test fails.

    with Vm(tmp_path, stick=iso, disk=disk, firmware="uefi") as vm:
        done = vm.wait_for("INSTALL-DONE", timeout=900)
        assert vm.wait_exit(timeout=120) == 0
    print_timing("uefi-usb", {"install done": done.elapsed})

KVM is used only when a 64-bit guest really runs under it (`probe_kvm`); otherwise multi-threaded
TCG, which is slow: here a Debian 12 kernel takes about 11 s to reach its root mount, OVMF about
6 s to start a boot loader, SeaBIOS well under a second.

Seed partition helpers (`read_partitions`, `seed_partition`, `write_seed`, `read_seed_file`) work
on the image file with sfdisk and mtools (`-i IMAGE@@OFFSET`): no root, no loop device.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"  # no Secure Boot, no SMM: works on q35 as is
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
# Secure Boot enforcing, as on a PC sold with Windows: the SMM build of OVMF (needs q35 with
# smm=on and secure pflash) and variables with Microsoft's keys enrolled (PK, KEK, db: the
# Windows and the third-party UEFI CA, which signs shim).
OVMF_CODE_SECBOOT = OVMF_DIR / "OVMF_CODE_4M.secboot.fd"
OVMF_VARS_MS = OVMF_DIR / "OVMF_VARS_4M.ms.fd"
QEMU = "qemu-system-x86_64"

BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
SEED_LABEL = "CLAWDIESEED"
DISK_SERIAL = "CLAWDIE-DISK-1"  # the internal disk's serial: a seed names it TARGET_DISK=serial:…

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12

Firmware = Literal["bios", "uefi", "uefi-secureboot"]
FIRMWARES = ("bios", "uefi", "uefi-secureboot")
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
POLL_SECONDS = 0.5
TAIL_LINES = 40


# --- accelerator ------------------------------------------------------------------------------


def probe_kvm(device: Path = Path("/dev/kvm"), *, guest_seconds: float = 10.0) -> tuple[bool, str]:
    """Whether KVM really runs a 64-bit guest here, and why (not).

    The ioctls (API version, create a VM) are instant and catch a missing or closed device. They
    are not enough: on nested hosts KVM can create VMs and run SeaBIOS yet stop with "KVM internal
    error" as soon as the guest enters long mode. So when OVMF is installed, the probe also boots
    OVMF (64-bit from its first instructions) under KVM with the CPU model real runs use
    (`-cpu host`: on some hosts QEMU then stops at once, "failed to set MSR"), with no disk, and
    waits for its first serial output, which takes about a second under a working KVM.
    """
    ok, reason = _probe_kvm_ioctls(device)
    if not ok or device != Path("/dev/kvm"):
        return ok, reason
    return _probe_kvm_guest(guest_seconds)


@functools.cache
def kvm_usable() -> tuple[bool, str]:
    """`probe_kvm()` on /dev/kvm, once per test session."""
    return probe_kvm()


def _probe_kvm_ioctls(device: Path) -> tuple[bool, str]:
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"cannot open {device}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if version != KVM_API_VERSION:
            return False, f"{device}: KVM API version {version}, expected {KVM_API_VERSION}"
        vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm_fd)
    except OSError as exc:
        why = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        return False, f"{device}: KVM ioctl failed: {why}"
    finally:
        os.close(fd)
    return True, f"{device}: API version {KVM_API_VERSION}, KVM_CREATE_VM works"


def _probe_kvm_guest(seconds: float) -> tuple[bool, str]:
    if not OVMF_CODE.exists():
        return True, f"KVM_CREATE_VM works (not checked with a 64-bit guest: no {OVMF_CODE})"
    with tempfile.TemporaryDirectory(prefix="kvm-probe-") as tmp:
        serial = Path(tmp) / "serial.log"
        vars_copy = Path(tmp) / "vars.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        argv = [
            QEMU, *accel_args(kvm=True), "-machine", "q35", "-m", "256", "-nodefaults",
            "-nic", "none",
            "-display", "none", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
            *_pflash_args(vars_copy),
        ]  # fmt: skip
        output = Path(tmp) / "qemu.log"
        with output.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                if serial.exists() and serial.stat().st_size > 0:
                    return True, "KVM runs a 64-bit guest (OVMF reached its serial console)"
                if b"KVM internal error" in output.read_bytes():
                    break
                time.sleep(0.1)
        finally:
            _stop(proc, grace=0)
        errors = [
            line
            for line in output.read_text(errors="replace").splitlines()
            if "warning" not in line
        ]
    detail = f": {errors[0]}" if errors else ""
    return False, f"KVM_CREATE_VM works but OVMF made no progress in {seconds:.0f} s{detail}"


def accel_args(kvm: bool | None = None) -> list[str]:
    """`-accel kvm -cpu host` when KVM works, else multi-threaded TCG with the richest CPU model.

    `kvm=None` probes (`kvm_usable()`). TCG `thread=multi` is verified with `-smp 2` on QEMU 7.2:
    a Debian kernel brings up both CPUs.
    """
    if kvm is None:
        kvm = kvm_usable()[0]
    if kvm:
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


# --- image layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One partition of a disk image, in bytes. `type_guid` upper case (MBR: the hex type)."""

    number: int
    start: int
    size: int
    type_guid: str
    name: str = ""


def read_partitions(image: Path) -> list[Partition]:
    """The image's partition table, from `sfdisk -J` (GPT preferred over the hybrid MBR)."""
    out = _run("sfdisk", "-J", str(image))
    table = json.loads(out)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    parts = []
    for entry in table.get("partitions", []):
        number = int(re.search(r"(\d+)$", entry["node"]).group(1))  # type: ignore[union-attr]
        parts.append(
            Partition(
                number=number,
                start=int(entry["start"]) * sector,
                size=int(entry["size"]) * sector,
                type_guid=str(entry["type"]).upper(),
                name=entry.get("name", ""),
            )
        )
    return parts


def fat_label(image: Path, offset: int) -> str | None:
    """The FAT volume label at `offset` in the image; None when there is no FAT file system."""
    proc = _mtools("mlabel", "-s", "-i", f"{image}@@{offset}", "::")
    if proc.returncode != 0:
        return None
    match = re.search(r"Volume label is (.*?)\s*$", proc.stdout.decode(errors="replace"))
    return match.group(1) if match else ""


def seed_partition(image: Path, label: str = SEED_LABEL) -> Partition:
    """The FAT partition labelled `label`. The label, not the type, decides: an ISO hybrid's
    ISO 9660 partition is Basic Data too."""
    parts = read_partitions(image)
    for part in parts:
        if fat_label(image, part.start) == label:
            return part
    listing = ", ".join(f"{p.number}: {p.type_guid} at {p.start}" for p in parts) or "none"
    raise AssertionError(f"{image}: no FAT partition labelled {label} (partitions: {listing})")


def seed_offset(image: Path) -> int:
    """Byte offset of the seed partition in the image."""
    return seed_partition(image).start


def write_seed(image: Path, setup_txt: bytes, name: str = "setup.txt") -> None:
    """Put `setup_txt` on the image's seed partition as `name`, replacing what was there."""
    target = f"{image}@@{seed_offset(image)}"
    with tempfile.NamedTemporaryFile(prefix="seed-") as tmp:
        tmp.write(setup_txt)
        tmp.flush()
        proc = _mtools("mcopy", "-o", "-i", target, tmp.name, f"::{name}")
    if proc.returncode != 0:
        raise AssertionError(f"mcopy to {target}::{name} failed: {proc.stderr.decode()}")


def read_seed_file(image: Path, name: str) -> bytes | None:
    """The bytes of `name` on the image's seed partition, None when it does not exist."""
    target = f"{image}@@{seed_offset(image)}"
    proc = _mtools("mcopy", "-n", "-i", target, f"::{name}", "-")
    if proc.returncode == 0:
        return proc.stdout
    error = proc.stderr.decode(errors="replace")
    if "not found" in error:
        return None
    raise AssertionError(f"mcopy from {target}::{name} failed: {error}")


def make_blank_disk(path: Path, size: int) -> Path:
    """A sparse raw disk image of `size` bytes (a new, empty internal disk)."""
    with path.open("wb") as disk:
        disk.truncate(size)
    return path


def _mtools(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, env={**os.environ, **MTOOLS_ENV}, check=False)


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


# --- timing -----------------------------------------------------------------------------------


def format_timing(label: str, fields: Mapping[str, float]) -> str:
    """`boot-test: bios-usb: install done at 312.4 s, PLATFORM-READY at 655.1 s`."""
    parts = ", ".join(f"{name} at {seconds:.1f} s" for name, seconds in fields.items())
    return f"boot-test: {label}: {parts}"


def print_timing(label: str, fields: Mapping[str, float], file: IO[str] | None = None) -> str:
    """Print the timing line (pytest shows it with -s or -rP) and return it."""
    line = format_timing(label, fields)
    print(line, file=file or sys.stdout, flush=True)
    return line


# --- serial log -------------------------------------------------------------------------------

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, `ESC [=3h`
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x1b[0-9=>c]"  # save/restore cursor, keypad modes, reset
    r"|\x1b[()][0-9A-Za-z]"  # charset selection
)


def clean_text(raw: str) -> str:
    """Console output without ANSI escapes, carriage returns and other control characters."""
    text = _ANSI.sub("", raw).replace("\r", "")
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " ")


class LogTail:
    """Follows a log file QEMU writes, timestamping each complete line when it is first read.

    A background thread reads every `interval` seconds, so a line's time does not depend on when
    the test looks for it. The unfinished last line (a prompt) is matched too.
    """

    def __init__(self, path: Path, clock: Any, interval: float = 0.25) -> None:
        self.path = path
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()  # guards the text and its times
        self._read_lock = threading.Lock()  # one reader at a time: the thread or a waiting test
        self._text = ""  # cleaned complete lines
        self._ends: list[int] = []  # end offset of each read batch in _text
        self._times: list[float] = []  # when each batch was read
        self._pending = b""  # bytes after the last newline
        self._pending_time = 0.0
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tail {path.name}", daemon=True)

    def start(self) -> LogTail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.read()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.read()

    def read(self) -> None:
        """Read whatever QEMU appended since the last read."""
        with self._read_lock:
            try:
                with self.path.open("rb") as log:
                    log.seek(self._offset)
                    chunk = log.read()
            except FileNotFoundError:
                return
            self._offset += len(chunk)
            if chunk:
                self._append(chunk, self._clock())

    def _append(self, chunk: bytes, now: float) -> None:
        with self._lock:
            data = self._pending + chunk
            cut = data.rfind(b"\n") + 1
            self._pending, self._pending_time = data[cut:], now
            if cut:
                self._text += clean_text(data[:cut].decode(errors="replace"))
                self._ends.append(len(self._text))
                self._times.append(now)

    def snapshot(self) -> tuple[str, int]:
        """All cleaned text read so far, and where its unfinished last line starts."""
        with self._lock:
            tail = clean_text(self._pending.decode(errors="replace"))
            return self._text + tail, len(self._text)

    def time_at(self, position: int) -> float:
        """When the character at `position` of the snapshot text was read."""
        with self._lock:
            index = bisect_left(self._ends, position + 1)
            return self._times[index] if index < len(self._times) else self._pending_time


@dataclass(frozen=True)
class VmMatch:
    """A pattern found in the serial log: `.elapsed` is seconds since power-on."""

    match: re.Match[str]
    elapsed: float

    def group(self, *groups: int | str) -> Any:
        return self.match.group(*groups)

    @property
    def end(self) -> int:
        return self.match.end()


# --- QMP --------------------------------------------------------------------------------------


class Qmp:
    """A minimal QMP client on a Unix socket: commands, and the events QEMU sent meanwhile."""

    def __init__(
        self, path: Path, timeout: float = 10.0, alive: Callable[[], bool] = lambda: True
    ) -> None:
        # QEMU opens the socket once its devices are set up; on a loaded machine that can take
        # a while, so the wait is long, but a QEMU that has already exited ends it at once.
        deadline = time.monotonic() + 3 * timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline or not alive():
                    raise
                time.sleep(0.05)
        sock.settimeout(timeout)
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._readline()  # greeting
        self.execute("qmp_capabilities")

    def _readline(self) -> dict[str, Any] | None:
        line = self._reader.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        if "event" in message:
            self.events.append(message)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        self._next_id += 1
        request: dict[str, Any] = {"execute": command, "id": self._next_id}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._readline()
            if message is None:
                raise ConnectionError(f"QMP closed during {command}")
            if message.get("id") != self._next_id:
                continue
            if "error" in message:
                raise RuntimeError(f"QMP {command}: {message['error'].get('desc')}")
            return message.get("return")

    def hmp(self, command_line: str) -> str:
        """A human monitor command (`info network`), its output."""
        return str(self.execute("human-monitor-command", **{"command-line": command_line}))

    def drain(self) -> None:
        """Collect the events left on the socket once QEMU has exited."""
        with contextlib.suppress(OSError, ValueError):
            while self._readline() is not None:
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._reader.close()
            self._sock.close()


# --- the VM -----------------------------------------------------------------------------------


def _pflash_args(vars_copy: Path, code: Path = OVMF_CODE) -> list[str]:
    return [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
    ]  # fmt: skip


def _drive_path(path: Path) -> str:
    if "," in str(path):
        raise ValueError(f"{path}: a comma would break QEMU's option syntax")
    return str(path)


@dataclass
class Vm:
    """One headless QEMU VM (q35, no network) as a context manager.

    Boot order: the USB stick, then the CD, then the virtio disk. `workdir` is the machine: it
    keeps `OVMF_VARS.fd` (the UEFI NVRAM, copied from OVMF's template on first use, so boot entries
    the installer writes survive into the next boot of the same workdir); `uefi-secureboot` keeps
    its own `OVMF_VARS.secboot.fd`, copied from the template with Microsoft's keys. Each run
    `name` gets `NAME.serial.log`, `NAME.firmware.log` (SeaBIOS's debug console) and
    `NAME.qemu.log` (QEMU's own output). A Vm object runs once; boot again with a new Vm on the
    same workdir.
    """

    workdir: Path
    disk: Path | None = None
    stick: Path | None = None
    cdrom: Path | None = None
    firmware: Firmware = "bios"
    name: str = "boot"
    memory_mib: int = 2048
    cpus: int = 2
    accel: list[str] | None = None  # None: accel_args() after probing KVM
    extra_args: list[str] = field(default_factory=list)
    disk_serial: str = DISK_SERIAL  # what the guest's udev reports (TARGET_DISK=serial:…)
    disk_format: str = "raw"  # qcow2: an overlay on an installed disk, which stays as it was
    stick_boots: bool = True  # False: the stick is plugged in but the disk boots
    # the disk's -drive options after its file: ",discard=unmap" passes the guest's discards
    # (fstrim) on to the image, as holes in a raw file
    disk_options: str = ""
    marks: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.serial_log = self.workdir / f"{self.name}.serial.log"
        self.firmware_log = self.workdir / f"{self.name}.firmware.log"
        self.qemu_log = self.workdir / f"{self.name}.qemu.log"
        secure = self.firmware == "uefi-secureboot"
        self.vars_copy = self.workdir / ("OVMF_VARS.secboot.fd" if secure else "OVMF_VARS.fd")
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: Qmp | None = None
        self._sockdir: str | None = None
        self._started = 0.0
        self._serial = LogTail(self.serial_log, self.elapsed)
        self._firmware = LogTail(self.firmware_log, self.elapsed)

    # argv ------------------------------------------------------------------------------------

    def argv(self, qmp_socket: Path | None = None) -> list[str]:
        """The QEMU command line (pure: starts nothing)."""
        secure = self.firmware == "uefi-secureboot"
        argv = [
            QEMU, "-name", self.name, "-machine", "q35,smm=on" if secure else "q35",
            *(self.accel if self.accel is not None else accel_args()),
            "-m", str(self.memory_mib), "-smp", str(self.cpus),
            "-nodefaults", "-nic", "none", "-device", "VGA", "-display", "none",
            "-serial", f"file:{self.serial_log}", "-monitor", "none",
            "-chardev", f"file,id=fwlog,path={self.firmware_log}",
            "-device", "isa-debugcon,iobase=0x402,chardev=fwlog",
            "-no-reboot", "-boot", "strict=on",
        ]  # fmt: skip
        if qmp_socket is not None:
            argv += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
        if self.firmware == "uefi":
            argv += _pflash_args(self.vars_copy)
        if secure:
            argv += [
                "-global", "driver=cfi.pflash01,property=secure,value=on",
                *_pflash_args(self.vars_copy, OVMF_CODE_SECBOOT),
            ]  # fmt: skip
        if self.stick is not None:
            argv += [
                "-device", "qemu-xhci,id=xhci",
                "-drive", f"if=none,id=stick,format=raw,file={_drive_path(self.stick)}",
                "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on"
                + (",bootindex=0" if self.stick_boots else ""),
            ]  # fmt: skip
        if self.cdrom is not None:
            argv += [
                "-drive",
                f"if=none,id=cd,media=cdrom,format=raw,readonly=on,file={_drive_path(self.cdrom)}",
                "-device", "ide-cd,bus=ide.0,drive=cd,bootindex=1",
            ]  # fmt: skip
        if self.disk is not None:
            argv += [
                "-drive",
                f"if=none,id=disk,format={self.disk_format},file={_drive_path(self.disk)}"
                + self.disk_options,
                "-device", f"virtio-blk-pci,drive=disk,bootindex=2,serial={self.disk_serial}",
            ]  # fmt: skip
        return argv + self.extra_args

    # lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Vm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("a Vm runs once: boot again with a new Vm on the same workdir")
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}, not {self.firmware!r}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for log in (self.serial_log, self.firmware_log, self.qemu_log):
            log.unlink(missing_ok=True)
        if self.firmware != "bios" and not self.vars_copy.exists():
            template = OVMF_VARS_MS if self.firmware == "uefi-secureboot" else OVMF_VARS
            shutil.copyfile(template, self.vars_copy)
        # A Unix socket path has a 108-byte limit that pytest's tmp_path can exceed.
        self._sockdir = tempfile.mkdtemp(prefix="vm-qmp-")
        qmp_socket = Path(self._sockdir) / "qmp.sock"
        argv = self.argv(qmp_socket)
        with self.qemu_log.open("wb") as qemu_log:
            self._started = time.monotonic()
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT
            )
        self._serial.start()
        self._firmware.start()
        try:
            proc = self._proc
            self._qmp = Qmp(qmp_socket, alive=lambda: proc.poll() is None)
        except OSError as exc:
            self.stop()
            raise AssertionError(f"QEMU did not start: {exc}\n{self._describe()}") from exc

    def stop(self) -> None:
        """Quit QEMU (QMP `quit`, then SIGTERM, then SIGKILL) and stop following its logs."""
        grace = 0.0
        if self._proc is not None and self._proc.poll() is None and self._qmp is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self._qmp.execute("quit")
                grace = 5.0
        if self._proc is not None:
            _stop(self._proc, grace)
        if self._qmp is not None:
            self._qmp.drain()
            self._qmp.close()
        self._serial.stop()
        self._firmware.stop()
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None

    @property
    def qmp(self) -> Qmp:
        if self._qmp is None:
            raise RuntimeError("the VM is not running")
        return self._qmp

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def elapsed(self) -> float:
        """Seconds since QEMU was started (power-on)."""
        return time.monotonic() - self._started

    # waiting ---------------------------------------------------------------------------------

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        timeout: float,
        *,
        after: VmMatch | None = None,
        name: str | None = None,
        source: Literal["serial", "firmware"] = "serial",
    ) -> VmMatch:
        """Wait until `pattern` (a regex; a plain string matches itself) appears in the log.

        Searches the whole log, or only after the end of the `after` match. Records the first
        time under `name` (default: the pattern) in `marks`. Fails with the log's last lines on
        timeout or when QEMU exits first.
        """
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        label = pattern if isinstance(pattern, str) else pattern.pattern
        tail = self._serial if source == "serial" else self._firmware
        start = after.end if after is not None else 0
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running
            tail.read()
            text, _ = tail.snapshot()
            found = regex.search(text, start)
            if found:
                result = VmMatch(found, tail.time_at(found.end() - 1))
                self.marks.setdefault(name or label, result.elapsed)
                return result
            if exited:
                code = self._proc.returncode if self._proc else None
                raise AssertionError(
                    f"QEMU exited (code {code}, {self.exit_reason() or 'no reason'}) at "
                    f"{self.elapsed():.1f} s before {label!r} appeared in the {source} "
                    f"log\n{self._describe(tail)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{label!r} did not appear in the {source} log within {timeout:.0f} s "
                    f"(at {self.elapsed():.1f} s since power-on)\n{self._describe(tail)}"
                )
            time.sleep(POLL_SECONDS)

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit (with -no-reboot, a guest reboot ends it); its exit code."""
        if self._proc is None:
            raise RuntimeError("the VM was never started")
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"QEMU still running {timeout:.0f} s later (at {self.elapsed():.1f} s)\n"
                f"{self._describe()}"
            ) from None
        self.marks.setdefault("exit", self.elapsed())
        if self._qmp is not None:
            self._qmp.drain()
        return code

    def exit_reason(self) -> str | None:
        """The reason of QEMU's SHUTDOWN event: `guest-reset` (a reboot under -no-reboot),
        `guest-shutdown` (power off), `host-qmp-quit`, ... None before it stopped."""
        if self._qmp is None:
            return None
        if not self.running:
            self._qmp.drain()
        for event in self._qmp.events:
            if event["event"] == "SHUTDOWN":
                return str(event.get("data", {}).get("reason", "unknown"))
        return None

    # logs ------------------------------------------------------------------------------------

    def log_text(self) -> str:
        """The serial log so far, cleaned (no ANSI escapes, no carriage returns)."""
        self._serial.read()
        return self._serial.snapshot()[0]

    def firmware_log_text(self) -> str:
        """SeaBIOS's debug console so far (OVMF's release build writes nothing there)."""
        self._firmware.read()
        return self._firmware.snapshot()[0]

    def _describe(self, tail: LogTail | None = None) -> str:
        tail = tail or self._serial
        tail.read()
        lines = tail.snapshot()[0].splitlines()[-TAIL_LINES:]
        qemu = self.qemu_log.read_text(errors="replace").strip() if self.qemu_log.exists() else ""
        parts = [f"--- last {len(lines)} lines of {tail.path} ---", *lines]
        if qemu:
            parts += [f"--- {self.qemu_log} ---", qemu]
        return "\n".join(parts)


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End a QEMU we started: `grace` seconds (after a QMP quit), then SIGTERM, then SIGKILL."""
    for action, wait in ((None, grace), (proc.terminate, 5.0), (proc.kill, 5.0)):
        if action is not None:
            action()
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
