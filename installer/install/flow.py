"""The disk install in order: seed, target disk, guard, layout, system, boot loader, receipt.

Runs on the booted installer stick. Every step prints one line on the console; the end is a
marker line (`CLAWDIE-INSTALL-DONE` or `CLAWDIE-INSTALL-FAILED: <reason>`), a receipt on the
seed partition, and a reboot (success) or a power-off after a bounded wait (failure).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from installer import __version__, faults
from installer.bundle import LogBuffer, collect_parts, write_failure_bundle
from installer.errors import InstallerError, as_installer_error
from installer.install import identities, layout, restore_seed, system
from installer.install.console import (
    CONSOLE_LOGGER,
    DONE_MARKER,
    Console,
    render_failed_marker,
)
from installer.install.targets import (
    AGAIN_LINE,
    Choice,
    TargetDisk,
    TargetError,
    choose_target,
    match_typed_disk,
    preferred_by_id,
    read_target_disks,
    read_target_name,
    render_contents,
    render_disk,
    render_erased,
    render_identity,
    render_stable_names,
)
from installer.machine import render_machine_lines
from installer.media.blockdev import read_block_devices, render_model, render_size
from installer.paths import TargetPaths
from installer.run import run
from installer.seed.ask import INSTALL_AGAIN, Asker, SeedInvalidError, resolve_seed
from installer.seed.io import (
    FileWriter,
    Receipt,
    SeedInput,
    files_in_directory,
    files_on_device,
    read_install_seed,
    receipt_in_directory,
    receipt_on_device,
    write_seed_back,
)
from installer.seed.messages import render_problem_line
from installer.seed.resolve import SeedCheck, seed_mode
from installer.seed.stored import store_seed
from installer.stamps import Stamps
from installer.status import Status
from installer.steps import Step, StepRun, plan
from installer.tracker import PlannedStep, StepTracker

log = logging.getLogger("clawdie.install")

DEFAULT_SQUASHFS = Path("/run/live/medium/live/filesystem.squashfs")
PROGRESS_STEP = 5  # print the copy's progress every this many percent
REINSTALL_WORD = "REINSTALL"
ERASE_WORD = "ERASE"
ERASE_COUNTDOWN_S = 15.0  # an unattended erase of a disk holding data waits this long for a key
UNATTENDED_HINT = (
    "to install unattended, name the disk in setup.txt by its serial or /dev/disk/by-id/ link, "
    "e.g. TARGET_DISK=serial:… and ERASE_TARGET_DISK=yes"
)


class NotInstallerError(InstallerError):
    """This is not the installer stick's live system: nothing to install from."""


class ExistingInstallError(InstallerError):
    """The chosen disk holds a Clawdie installation and nobody confirmed a reinstall."""


class AdoptSeedError(InstallerError):
    """The stick's seed adopts an installed box (INSTALL_MODE=adopt): the installer installs
    nothing from it; the installed system applies it."""


@dataclass(frozen=True)
class InstallConfig:
    """Frozen inputs of one install."""

    squashfs: Path = DEFAULT_SQUASHFS
    seed: Path | None = None  # a setup.txt instead of the seed partition (tests)
    receipt_dir: Path | None = None  # SETUP-RESULT.txt here instead of on the stick
    console_wait: float = 120.0
    erase_countdown: float = ERASE_COUNTDOWN_S
    failure_wait: float = 60.0
    reboot: bool = True
    poweroff: bool = True
    bootloader: bool = True
    mount_dir: Path | None = None
    live_root: Path = Path("/")
    only_disks: tuple[str, ...] | None = None  # consider only these disks (tests)


STALLED_HINT = (
    "connect a screen to see the installer's console, or restart the machine from the stick "
    "to install again"
)


def plan_steps(config: InstallConfig) -> list[PlannedStep]:
    """The install's steps as the live receipt and the console count them, each with the
    deadline it runs against (the console's waits included where the step may ask)."""
    return plan(install_steps(config))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


SEED_KEPT = "This stick can install further machines: setup.txt was left as it is."


def render_success_receipt(
    when: str,
    disk: TargetDisk,
    hostname: str,
    seed_note: str = SEED_KEPT,
    status: Status = Status.OK,
    facts: Sequence[str] = (),
) -> str:
    text = (
        f"Clawdie installer: {status}\n"
        f"Installed on {disk.node}; first boot runs on the next start\n"
        f"When: {when}\n"
        f"Disk: {disk.node}: {render_identity(disk)}\n"
        f"Erased: {render_erased(disk)}\n"
        f"Host name: {hostname}\n"
        "\n"
        "Remove the stick; first boot runs on the next start.\n"
        f"{seed_note}\n"
    )
    return text + ("\n" + "\n".join(facts) + "\n" if facts else "")


def scrub_seed(seed: SeedInput, hostname: str, when: str) -> str:
    """SEED_SCRUB=yes: replace the secrets in the seed the install read; say what happened.

    Never raises: the install is done, and a stick that cannot be written is reported, not fatal.
    """
    from installer.seed.scrub import render_scrubbed_in_place

    try:  # the same length: rewritten in place on the stick, a power cut loses no line
        scrubbed = render_scrubbed_in_place(seed.data, host=hostname, when=when)
    except InstallerError as err:
        log.warning("install: SEED_SCRUB: %s", err.message)
        return (
            f"SEED_SCRUB=yes, but the secrets are still in {seed.name} ({err.message}): "
            "delete the file or reformat the stick."
        )
    if not scrubbed.removed:
        return f"SEED_SCRUB=yes: {seed.name} held no secret to remove."
    removed = ", ".join(scrubbed.removed)
    written, why = write_seed_back(seed, scrubbed.data)
    if written:
        log.info("install: SEED_SCRUB: removed %s from %s", removed, seed.name)
        return f"SEED_SCRUB=yes: removed from {seed.name}: {removed}."
    log.warning("install: SEED_SCRUB: %s", why)
    return (
        f"SEED_SCRUB=yes, but the secrets are still in {seed.name} ({why}): "
        "delete the file or reformat the stick."
    )


def render_unattended_hint(asked: Sequence[TargetDisk], disks: Sequence[TargetDisk]) -> str:
    """How to name the asked-about disks so that the next install needs no console."""
    names = [
        f"TARGET_DISK={name} for {disk.node}"
        for disk in asked
        if (name := render_stable_names(disk, disks))
    ]
    if not names:
        return (
            "choose the disk on the console (a keyboard and a screen): no disk here has a serial "
            "or a /dev/disk/by-id/ name that setup.txt could use to erase it unattended"
        )
    return f"{UNATTENDED_HINT}: {'; '.join(names)}"


def render_typing_hint(word: str, where: str) -> str:
    """How to give `word` on this machine: where the question was asked (`where`, from
    Console.where), or, with no console at all, what to connect first."""
    if where:
        return f"type {word} {where} when asked"
    return (
        f"connect a keyboard and screen or a serial console (115200 baud), restart from the "
        f"stick and type {word} there when asked"
    )


def render_restart_hint(disk: TargetDisk, where: str = "") -> str:
    """What a machine whose disk holds an unfinished install can do: it cannot start from the
    disk, so restart from the stick, unattended (a stable name and ERASE_TARGET_DISK=yes) or
    with REINSTALL typed where this machine can type it."""
    names = render_stable_names(disk, [disk])
    unattended = (
        f"with TARGET_DISK={names.split(' (or ')[0]} and ERASE_TARGET_DISK=yes in setup.txt"
        if names
        else "with ERASE_TARGET_DISK=yes and the disk named in TARGET_DISK= in setup.txt"
    )
    typing = render_typing_hint(REINSTALL_WORD, where)
    if where:
        typing = f"restart from the stick and {typing}"
    return (
        f"this disk cannot start; restart the machine from the stick {unattended} to install "
        f"again by itself, or {typing}"
    )


def render_failure_receipt(
    when: str,
    err: InstallerError,
    problems: list[str],
    where: str = "",
    facts: Sequence[str] = (),
    disk_touched: bool = False,
) -> str:
    lines = [
        f"Clawdie installer: {Status.FAILED}",
        f"Stopped at {where or 'the start'}: {err.message}",
        "The disk was partly written and does not start; install again."
        if disk_touched
        else "No disk was changed.",
        f"When: {when}",
        f"Reason: {err.message}",
        *([f"What to do: {err.hint}"] if err.hint else []),
    ]
    if problems:
        lines += ["", "Problems in setup.txt:", *(f"  - {p}" for p in problems)]
    if facts:
        lines += ["", *facts]
    return "\n".join(lines) + "\n"


def render_problems(check: SeedCheck | None) -> list[str]:
    """The seed's problems by line and key (never a value)."""
    if check is None:
        return []
    return [render_problem_line(p, check.name) for p in check.problems]


def receipt_for(config: InstallConfig, seed: SeedInput | None) -> Receipt | None:
    """Where the receipt goes: --receipt-dir, else the seed's partition (none for a file)."""
    if config.receipt_dir is not None:
        return receipt_in_directory(config.receipt_dir)
    return receipt_on_device(seed.device) if seed and seed.device is not None else None


def files_for(config: InstallConfig, seed: SeedInput | None) -> FileWriter | None:
    """Where the failure's log bundle goes on the stick: next to the receipt."""
    if config.receipt_dir is not None:
        return files_in_directory(config.receipt_dir)
    return files_on_device(seed.device) if seed and seed.device is not None else None


def read_boot_disks(config: InstallConfig) -> set[str]:
    if config.only_disks is not None:
        return set()  # tests name their disks; the host's boot disk is not among them
    from installer.media.seed_device import read_boot_disks as read_live_boot_disks

    return read_live_boot_disks()


@dataclass
class Target:
    """What the steps learn about the disk they write, in the order they learn it."""

    disk: TargetDisk
    hostname: str
    nodes: list[str] = field(default_factory=list)
    formatted: layout.Layout | None = None
    root: Path = Path()
    copy_bytes: int | None = None

    def require_formatted(self) -> layout.Layout:
        if self.formatted is None:
            raise RuntimeError("the disk is used before its file systems were made")
        return self.formatted


def worded(err: Exception) -> InstallerError:
    """An install's failure in words: a system call's or a program's failure is unexpected
    (the journal has its trace)."""
    if isinstance(err, (OSError, subprocess.SubprocessError)) and not isinstance(
        err, InstallerError
    ):
        log.exception("install: unexpected error")
        return InstallerError(f"unexpected system error: {err}", "see the journal")
    return as_installer_error(err)


def install_steps(config: InstallConfig) -> list[Step[InstallRun]]:
    """The install, in order (the unnamed steps are its bookkeeping between two steps)."""
    wait = config.console_wait
    steps: list[tuple[str, str | None, float, Callable[[InstallRun], None]]] = [
        ("stick", None, 60.0, InstallRun.find_stick),
        ("seed", "reading and checking setup.txt", 60.0 + wait, InstallRun.read_seed),
        (
            "disk",
            "choosing the disk",
            60.0 + 3 * wait + config.erase_countdown,
            InstallRun.take_disk,
        ),
        ("partitions", "partitioning the disk", 120.0, InstallRun.partition),
        ("file-systems", "making the file systems", 300.0, InstallRun.make_file_systems),
        ("mount", None, 60.0, InstallRun.mount),
        ("copy", "copying the system", system.COPY_TIMEOUT_S, InstallRun.copy),
        ("configuration", "fstab, seed copy and install record", 120.0, InstallRun.configure),
        ("identities", "host keys, TLS pair, database cluster", 600.0, InstallRun.make_identities),
        (
            "boot-loader",
            "installing the boot loader",
            system.GRUB_TIMEOUT_S,
            InstallRun.install_bootloader,
        ),
        ("complete", None, 60.0, InstallRun.complete),
        ("unmount", None, 300.0, InstallRun.unmount),
    ]
    timed = {"copy": InstallRun.copy_deadline}
    return [
        Step(name, label, deadline, apply, stamped=False, timed=timed.get(name))
        for name, label, deadline, apply in steps
    ]


class InstallRun:
    """One install; `execute` returns the exit code (0 installed, 1 failed)."""

    def __init__(self, config: InstallConfig, console: Console, asker: Asker | None) -> None:
        self.config = config
        self.console = console
        self.asker = asker
        self.receipt: Receipt | None = None
        self.check: SeedCheck | None = None
        self.seed: SeedInput | None = None
        self.tracker = StepTracker(
            "Clawdie installer",
            plan_steps(config),
            STALLED_HINT,
            say=console.say,
            show=console.screen.show if console.screen is not None else None,
        )
        self.own_log: LogBuffer | None = None
        self.answers: dict[str, str] = {}
        self._target: Target | None = None  # known from the disk step on
        self.mounts = contextlib.ExitStack()  # the new root's mounts, undone last

    @property
    def say(self) -> Callable[[str], None]:
        return self.console.say

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> int:
        faults.arm_from_environment(faults.INSTALL_FAULT_VARIABLE)
        screen = self.console.screen
        with LogBuffer(also=(CONSOLE_LOGGER,)) as self.own_log, screen or contextlib.nullcontext():
            return self._execute()

    def _execute(self) -> int:
        steps = StepRun(install_steps(self.config), tracker=self.tracker, log=None, worded=worded)
        try:
            steps.run(self, self.failed)
        except InstallerError:
            return 1
        return self._installed(self.target.disk, self.target.hostname)

    def _installed(self, disk: TargetDisk, hostname: str) -> int:
        """The install is done: the seed scrubbed if asked, the receipt, the console's last
        word, and the restart."""
        when = utc_now()
        restoring = self.check is not None and self.check.restore_only
        seed_note = restore_seed.RESTORE_SEED_KEPT if restoring else SEED_KEPT
        status = Status.OK
        if self.seed is not None and self._scrubs():
            seed_note = scrub_seed(self.seed, hostname, when)
            self.say(seed_note)
            if "still in" in seed_note:
                status = Status.DEGRADED
        if restoring and self.check is not None:  # the receipt says what this install is
            seed_note = f"{restore_seed.restore_line(self.check)}\n{seed_note}"
        self._write_receipt(
            render_success_receipt(
                when, disk, hostname, seed_note, status, [*self.tracker.notes, *self.tracker.facts]
            )
        )
        self.say(f"installed on {disk.node}; remove the stick, first boot runs on the next start")
        self.console.line(DONE_MARKER)
        self.console.finished(
            status,
            [
                f"Installed on {disk.node}: {render_identity(disk)}",
                f"Host name: {hostname}",
                "Remove the stick: first boot runs on the next start.",
                *([f"Then the dashboard: {self._dashboard()}"] if self._dashboard() else []),
                *seed_note.splitlines(),
            ],
            self._dashboard(),
        )
        system.sync()
        if self.config.reboot:
            self.say("restarting")
            run(["systemctl", "reboot"], check=False, timeout=60)
        return 0

    # -- the steps -----------------------------------------------------------------------------

    def find_stick(self) -> None:
        """Running from the installer stick; the live receipt starts where it can."""
        config = self.config
        self.say(f"clawdie-setup {__version__}: installing the appliance")
        if not config.squashfs.is_file():
            raise NotInstallerError(
                f"not running on the installer stick: {config.squashfs} is missing",
                "boot the machine from the Clawdie installer stick",
            )
        self.receipt = receipt_for(config, None)
        self.tracker.facts = render_machine_lines(
            TargetPaths(config.live_root), machine_root=config.live_root, installed=False
        )
        self.tracker.write = self.receipt

    def read_seed(self) -> None:
        """setup.txt read, its receipt started on its stick, checked (questions asked on the
        console), and its network brought up on the live system."""
        self.say("reading the seed (setup.txt)")
        seed = self.seed = read_install_seed(self.config.seed)
        if self.receipt is None:  # the stick is known now: the receipt starts there
            self.receipt = receipt_for(self.config, seed)
            self.tracker.set_writer(self.receipt)
        self.say(f"seed: {seed.name} from {seed.description}")
        mode = seed_mode(seed.data)
        if mode in ("adopt", "reset"):
            raise AdoptSeedError(
                f"{seed.name} says INSTALL_MODE={mode}: it changes a box that is already "
                "installed, it does not install one (no disk was touched)",
                "boot the installed box from its own disk, then plug this stick in (or keep it "
                "in and let the disk boot first); to install, set INSTALL_MODE=fresh",
            )
        if mode == "restore":  # the backup brings the settings at first boot
            self._check_restore_seed(seed)
            self.answers = {}
            return
        check, self.answers = self._check_seed(seed)
        self.bring_up_network(check)

    def take_disk(self) -> None:
        check, seed = self._require_check(), self._require_seed()
        disk = self.choose_disk(check, seed)
        hostname = (
            restore_seed.RESTORE_HOSTNAME
            if check.restore_only
            else check.require_resolved().host.hostname
        )
        self._target = Target(disk, hostname)

    def partition(self) -> None:
        node = self.target.disk.node
        self.say(f"partitioning {node}")
        layout.write_partition_table(node)
        layout.reread_partitions(node)
        self.target.nodes = layout.wait_for_partitions(node)

    def make_file_systems(self) -> None:
        target = self.target
        self.say(f"making the file systems on {', '.join(target.nodes[1:])}")
        target.formatted = layout.make_file_systems(target.disk.node, target.nodes)

    def mount(self) -> None:
        """The new root mounted (until `unmount`, or the failure's handler, undoes it)."""
        target = self.target
        target.root = self._mount_dir(self.mounts)
        system.mount(self.mounts, target.require_formatted().root, target.root, fs_type="ext4")
        target.copy_bytes = system.read_copy_bytes(self.config.squashfs)

    def copy_deadline(self) -> float:
        return system.copy_deadline(self.target.copy_bytes)

    def copy(self) -> None:
        config, copy_bytes = self.config, self.target.copy_bytes
        self.say(f"copy deadline: {system.render_copy_deadline(copy_bytes)}")
        self.say("copying the system 0%")
        system.copy_system(
            config.squashfs,
            self.target.root,
            self._copy_progress(),
            timeout=self.copy_deadline() * system.COPY_KILL_FACTOR,
        )
        self._copy_kernel(self.target.root)

    def configure(self) -> None:
        config, target, seed = self.config, self.target, self._require_seed()
        disk, paths = target.disk, TargetPaths(target.root)
        formatted = target.require_formatted()
        self.say("writing /etc/fstab, machine id, seed copy and install record")
        system.write_fstab(paths, layout.render_fstab(formatted.root_uuid, formatted.esp_uuid))
        system.clear_machine_id(paths)
        check = self._require_check()
        if check.restore_only:
            self.say(restore_seed.store_restore_seed(paths, seed, check))
        else:
            store_seed(
                paths, Stamps(paths.stamps_dir), seed.data, self.answers, seed.description, check
            )
        system.write_install_record(
            paths,
            system.InstallRecord(
                installed_at=utc_now(),
                installer_version=__version__,
                image_version=system.read_image_version(config.live_root),
                disk=disk.node,
                disk_model=disk.device.model,
                disk_size=render_size(disk.device.size),
                disk_serial=disk.device.serial,
                disk_by_id=preferred_by_id(disk.device),
                disk_held=render_erased(disk),
                disk_identity=render_identity(disk),
                hostname=target.hostname,
                seed_source=seed.description,
                answered_on_console=tuple(sorted(self.answers)),
            ),
        )

    def make_identities(self) -> None:
        if self.config.bootloader:
            system.bind_live_filesystems(self.mounts, self.target.root)
            identities.make_machine_identities(self.target.root, self.target.hostname, self.say)

    def install_bootloader(self) -> None:
        target = self.target
        if not self.config.bootloader:
            self.say("machine identities and boot loader: skipped (--no-bootloader)")
            return
        self.say("installing the boot loader (BIOS and UEFI)")
        formatted = target.require_formatted()
        system.install_bootloader(
            self.mounts,
            target.root,
            target.disk.node,
            formatted.esp,
            formatted.root_uuid,
            self.say,
        )

    def complete(self) -> None:
        """The receipt's facts read from the new system, then the record written last."""
        paths = TargetPaths(self.target.root)
        self.tracker.facts = self._facts(paths, self.target.hostname)
        system.write_install_complete(paths, utc_now(), __version__)
        self.say("install record complete; unmounting")

    def unmount(self) -> None:
        self.mounts.close()
        system.sync()

    def _scrubs(self) -> bool:
        """SEED_SCRUB=yes in the seed just installed from (a restore seed's too)."""
        if self.check is None:
            return False
        if self.check.restore_only:
            return restore_seed.wants_scrub(self.check)
        return self.check.resolved is not None and self.check.resolved.install.seed_scrub

    def _check_restore_seed(self, seed: SeedInput) -> SeedCheck:
        try:
            check = restore_seed.check_restore_install_seed(seed)
        except SeedInvalidError as err:
            self.check = err.check
            raise
        self.check = check
        for warning in check.warnings:
            self.say(f"seed warning: {warning.message}")
        self.say(f"restore seed: the backup {check.backup_name} is restored at first boot")
        return check

    def bring_up_network(self, check: SeedCheck) -> None:
        """The seed's Wi-Fi or static address on the live system too, with first boot's own
        network step (its files, its bounded wait for the join and the address), so the receipt
        shows the address. Wired DHCP needs nothing: the image's own file has it. Never fatal:
        the install itself needs no network, and first boot configures it again."""
        seed = check.require_resolved()
        network = seed.network
        paths = TargetPaths(self.config.live_root)
        if not paths.is_live_system or (
            network.wifi is None and network.static is None and not network.dns
        ):
            return
        from installer.net import files as network_files
        from installer.net import live as network_live

        self.say("network: bringing up the seed's network on this live system")
        try:
            changed = network_files.write_files(paths, network)
            live = network_live.bring_up(paths, seed, changed)
        except (InstallerError, OSError) as err:
            reason = err.message if isinstance(err, InstallerError) else str(err)
            self.say(f"network: not brought up here ({reason}); first boot configures it")
            return
        for line in [*live.done, *live.notes]:
            self.say(f"network: {line}")
        self.tracker.facts = render_machine_lines(
            paths, machine_root=self.config.live_root, installed=False
        )

    def _check_seed(self, seed: SeedInput) -> tuple[SeedCheck, dict[str, str]]:
        try:
            check, answers = resolve_seed(seed.data, seed.name, self.asker, INSTALL_AGAIN)
        except SeedInvalidError as err:
            self.check = err.check
            raise
        self.check = check
        for warning in check.warnings:
            self.say(f"seed warning: {warning.message}")
        if answers:
            self.say(f"answered on the console: {', '.join(sorted(answers))}")
        return check, answers

    # -- the target disk -----------------------------------------------------------------------

    def choose_disk(self, check: SeedCheck, seed: SeedInput) -> TargetDisk:
        """The disk to erase: chosen, asked for, and past the existing-install guard."""
        devices = read_block_devices()
        disks = read_target_disks(devices, only=self.config.only_disks)
        if check.restore_only:
            named, erase = restore_seed.disk_wish(check)
        else:
            options = check.require_resolved().install
            named, erase = options.target_disk, options.erase_target_disk
        choice = choose_target(
            disks,
            boot_disks=read_boot_disks(self.config),
            seed_disks={seed.device.disk} if seed.device else set(),
            named=read_target_name(named) if named else None,
            erase=erase,
            partitions=[d for d in devices if not d.is_disk],
        )
        return self.take(choice, disks)

    def take(self, choice: Choice, disks: Sequence[TargetDisk] = ()) -> TargetDisk:
        """The chosen disk past the guard (a Clawdie installation needs REINSTALL typed) and the
        countdown (data erased unattended), or the disk the console question chose."""
        if choice.disk is None:
            return self.chosen(self.ask_disk(choice, disks))
        disk = self.chosen(choice.disk)
        self.say(f"target disk {disk.node}: {render_identity(disk)} ({choice.reason})")
        if choice.again:
            self.say(AGAIN_LINE)
            self.tracker.note(f"Note: {AGAIN_LINE}.")
            self.count_down(disk)
        elif disk.holds_clawdie:
            self.guard_existing(disk)
        elif choice.countdown:
            self.count_down(disk)
        return disk

    def chosen(self, disk: TargetDisk) -> TargetDisk:
        """The receipt names the target disk from the moment it is chosen."""
        self.tracker.note(f"Target disk: {disk.node}: {render_identity(disk)}")
        return disk

    def count_down(self, disk: TargetDisk) -> None:
        """The last chance to stop an unattended erase: any key on the console stops it."""
        device, wait = disk.device, self.config.erase_countdown
        who = f"{render_model(device.model)} serial {device.serial or '(none)'}"
        stopped = self.console.countdown(
            f"erasing {who} ({render_size(device.size)}, {disk.node}, holds "
            f"{render_contents(disk)}) in {wait:.0f} s — press any key to stop",
            wait,
        )
        if stopped:
            raise TargetError(
                f"erasing {who} ({disk.node}) was stopped at the console; nothing was written",
                "restart the machine to install again; remove ERASE_TARGET_DISK=yes from "
                "setup.txt to be asked which disk to erase",
            )
        self.say(f"erasing {who} ({disk.node}): nobody stopped the countdown")

    def guard_existing(self, disk: TargetDisk) -> None:
        """A disk holding a Clawdie installation is erased only after REINSTALL is typed."""
        with self.console.plain():
            self._guard_existing(disk)

    def _guard_existing(self, disk: TargetDisk) -> None:
        where = self.console.where()
        if disk.unfinished_clawdie:
            self.say(
                f"{disk.node}: the last install on this disk did not finish, so it cannot start "
                f"— type {REINSTALL_WORD} to erase it and install again"
            )
            failed = ExistingInstallError(
                f"{disk.node} holds a Clawdie install that did not finish (it cannot start) and "
                f"{REINSTALL_WORD} was not typed",
                render_restart_hint(disk, where),
            )
        else:
            self.say(
                f"{disk.node}: this disk already holds a Clawdie installation — remove the stick "
                f"and restart to boot it, or type {REINSTALL_WORD} to erase it and install again"
            )
            again = render_typing_hint(REINSTALL_WORD, where)
            failed = ExistingInstallError(
                f"{disk.node} already holds a Clawdie installation and {REINSTALL_WORD} was not "
                "typed",
                "remove the stick and restart to boot the installed system; to install again, "
                + (f"restart from the stick and {again}" if where else again),
            )
        if not self.console.interactive:
            raise failed
        typed = self.console.ask(
            f"type {REINSTALL_WORD} to erase {disk.node} and install again:",
            self.config.console_wait,
        )
        if typed != REINSTALL_WORD:
            raise failed

    def ask_disk(self, choice: Choice, disks: Sequence[TargetDisk] = ()) -> TargetDisk:
        """The console question: which disk, then ERASE (or REINSTALL) to confirm (plain lines:
        the progress screen is paused while it asks)."""
        with self.console.plain():
            return self._ask_disk(choice, disks)

    def _ask_disk(self, choice: Choice, disks: Sequence[TargetDisk] = ()) -> TargetDisk:
        wait, where = self.config.console_wait, self.console.where()
        self.say(f"choose the disk to install to ({choice.reason}); it will be erased:")
        for listed in choice.ask:
            self.console.line(f"  {render_disk(listed)}")
        installed = any(d.holds_clawdie and not d.unfinished_clawdie for d in choice.ask)
        if installed:
            self.say("to start an installed system instead, remove the stick and restart")
        for listed in choice.ask:
            if listed.unfinished_clawdie:
                self.say(f"{listed.node}: the last install on this disk did not finish")
        if not self.console.interactive:
            raise TargetError(
                f"{choice.reason}; the disk must be chosen on the console, and there is no console",
                (
                    "to boot the installed system, remove the stick and restart; "
                    if installed
                    else ""
                )
                + render_unattended_hint(choice.ask, disks or choice.ask),
            )
        disk = self._typed_disk(choice, disks)
        word = REINSTALL_WORD if disk.holds_clawdie else ERASE_WORD
        if disk.holds_clawdie:
            self.say(f"{disk.node}: this disk already holds a Clawdie installation")
        typed = self.console.ask(
            f"{disk.node} holds {render_contents(disk)}. Type {word} to erase it and install:",
            wait,
        )
        if typed != word:
            raise TargetError(
                f"erasing {disk.node} was not confirmed (type {word} to confirm)",
                f"restart the machine from the stick and {render_typing_hint(word, where)}",
            )
        self.say(f"target disk {disk.node} (chosen on the console)")
        return disk

    def _typed_disk(self, choice: Choice, disks: Sequence[TargetDisk]) -> TargetDisk:
        """The disk typed on the console, asked again until it is one of those listed."""
        wait, where = self.config.console_wait, self.console.where()
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            typed = self.console.ask("type the disk to install to (e.g. /dev/sda):", left)
            if typed is None:
                raise TargetError(
                    f"nobody chose a disk within {wait:.0f} s (asked {where})",
                    render_unattended_hint(choice.ask, disks or choice.ask),
                )
            disk = match_typed_disk(typed, choice.ask)
            if disk is not None:
                return disk
            self.say(f"{typed!r} is not one of the disks listed")

    # -- writing the disk ----------------------------------------------------------------------

    def _require_check(self) -> SeedCheck:
        """The valid seed check `_check_seed` made (the seed copy is derived from it)."""
        if self.check is None:
            raise RuntimeError("the seed is written before it was checked")
        return self.check

    @property
    def target(self) -> Target:
        if self._target is None:
            raise RuntimeError("the disk is written before it was chosen")
        return self._target

    def _require_seed(self) -> SeedInput:
        if self.seed is None:
            raise RuntimeError("the disk is chosen before the seed was read")
        return self.seed

    def _dashboard(self) -> str | None:
        """The dashboard's address once first boot has run, when the seed is known."""
        seed = self.check.resolved if self.check is not None else None
        return f"https://{seed.host.domain}/" if seed is not None else None

    def _facts(self, paths: TargetPaths, hostname: str) -> list[str]:
        """The receipt's description of the box, read while the new system is mounted (its SSH
        host keys); the hardware is the live system's. (The disk has its own receipt line.)"""
        seed = self.check.resolved if self.check is not None else None
        domain = seed.host.domain if seed is not None else hostname
        return render_machine_lines(
            paths,
            machine_root=self.config.live_root,
            dashboard=f"https://{domain}/",
        )

    def _copy_kernel(self, root: Path) -> None:
        live_dir = self.config.squashfs.parent
        done = system.copy_kernel(live_dir, root)
        if done is not None:
            self.say(done)
        elif self.config.bootloader:
            raise InstallerError(
                f"no kernel to install: the system has no /boot/vmlinuz-* and {live_dir} no "
                "vmlinuz and initrd.img for its modules",
                "the installer image is incomplete; rebuild it",
            )
        else:
            self.say("kernel: none to copy (no boot loader either)")

    def _mount_dir(self, stack: contextlib.ExitStack) -> Path:
        if self.config.mount_dir is not None:
            return self.config.mount_dir
        made = Path(tempfile.mkdtemp(prefix="clawdie-target-"))

        def remove() -> None:
            try:
                made.rmdir()
            except OSError as err:  # still busy after a lazy unmount: harmless on a live system
                log.warning("install: could not remove %s: %s", made, err.strerror)

        stack.callback(remove)  # registered first: runs after every unmount
        return made

    def _copy_progress(self) -> Callable[[int], None]:
        shown = 0

        def show(percent: int) -> None:
            nonlocal shown
            if percent >= shown + PROGRESS_STEP or (percent == 100 and shown != 100):
                shown = percent
                self.say(f"copying the system {percent}%")

        return show

    # -- the end -------------------------------------------------------------------------------

    def _write_receipt(self, text: str) -> None:
        if self.receipt is None:
            self.say("no receipt: there is no seed partition to write it on")
            return
        written, message = self.receipt(text)
        self.say(f"receipt: {message}")
        if not written:
            log.warning("install: no receipt: %s", message)

    def _bundle(self, receipt: str) -> None:
        """The failure's log bundle next to the receipt and in the live system's state
        directory (in memory on the stick's live system; a later install does not see it)."""
        resolved = self.check.resolved if self.check is not None else None
        host = resolved.host.hostname if resolved is not None else "installer"
        own = self.own_log.text() if self.own_log is not None else ""
        live = self.config.live_root.resolve() == Path("/")
        parts = collect_parts(own, live=live, receipt=receipt)
        state = TargetPaths(self.config.live_root).bundles_dir
        for line in write_failure_bundle(state, host, parts, files_for(self.config, self.seed)):
            self.say(line)

    def failed(self, err: InstallerError) -> None:
        """The one place an install's failure is handled: the new root unmounted, then the
        receipt, the bundle, the console's marker and the power-off (not when this is no
        installer stick: nothing of ours ran)."""
        self.mounts.close()
        self._fail(err, power_off=not isinstance(err, NotInstallerError))

    def _fail(self, err: InstallerError, *, power_off: bool = True) -> None:
        problems = render_problems(self.check if isinstance(err, SeedInvalidError) else None)
        self.say(f"FAILED: {err.message}")
        for problem in problems:
            self.say(f"  {problem}")
        if err.hint:
            self.say(f"what to do: {err.hint}")
        where = self.tracker.where()
        log.error("install: failed at %s: %s", where, err.message)
        touched = self.tracker.index >= [s.name for s in self.tracker.plan].index("partitions") + 1
        receipt = render_failure_receipt(
            utc_now(),
            err,
            problems,
            where,
            [*self.tracker.notes, *self.tracker.facts],
            disk_touched=touched,
        )
        self._write_receipt(receipt)
        if not isinstance(err, NotInstallerError):  # not the stick: nothing of ours to collect
            self._bundle(receipt)
        self.console.line(render_failed_marker(err.message))
        self.console.failed(err.message, err.hint)
        if not power_off:
            return
        wait = self.config.failure_wait
        self.say(f"this machine powers off in {wait:.0f} s; press Enter to power off now")
        self.console.wait_for_enter(wait)
        system.sync()
        if self.config.poweroff:
            run(["systemctl", "poweroff"], check=False, timeout=60)
