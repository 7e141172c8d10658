"""The console of a box with a screen (issue 14): the dashboard's QR code on the login screen,
read back by a QR reader from the block characters; the progress screen first boot repaints on
tty1; the failure it leaves; the wizard's wait told on the serial console; and no login prompt
over the live installer. The real commands run in tmux with TERM=linux at 80x25, the login
screen is the real agetty's, and each captured screen is kept under build/console/ as text and
as a PNG drawn with the console font the image loads."""

from __future__ import annotations

import configparser
import io
import logging
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zxingcpp

from installer import faults
from installer.dev.sandbox import make_sandbox_root
from installer.firstboot.config import DbConfig, FirstbootConfig
from installer.firstboot.runner import plan_steps
from installer.firstboot.steps.report import ISSUE_ROWS, Outcome, render_issue
from installer.install.console import Console
from installer.paths import TargetPaths
from installer.qr import CHARACTERS, QUIET_ZONE, SMALL_QUIET_ZONE, render_qr
from installer.screen import (
    FAILURE_ROWS,
    HEIGHT,
    WIDTH,
    ProgressScreen,
    render_failure,
    render_progress,
)
from installer.tracker import PlannedStep, StepTracker
from installer.wizard.asker import render_wait_notice, wait_notices
from tests.helpers.console_font import (
    FONT_DIR,
    block_pixels,
    configured_font_path,
    read_psf,
    render_png,
    render_rows,
)
from tests.helpers.firstboot import SEED
from tests.helpers.install_disk import DISK_MIB, install_argv, seed_for
from tests.helpers.loopdev import MIB, loop_file
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import firstboot_box
from tests.helpers.terminal import Terminal, assert_console_safe, linux_consoles

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "clawdie-setup"
ARTEFACTS = ROOT / "build/console"
OVERLAY = ROOT / "iso/overlay/etc/systemd/system"
DEBIAN_ISSUE = "Debian GNU/Linux 12 \\n \\l\n\n"  # the image's /etc/issue
WIDEST = "255.255.255.255"

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def decode(lines: list[str]) -> list[str]:
    """What a QR reader finds in the block characters of `lines` (dark on light only)."""
    pixels, width, height = block_pixels(lines)
    image = memoryview(pixels).cast("B", (height, width))
    return [found.text for found in zxingcpp.read_barcodes(image, try_invert=False)]


def assert_in_console_font(screen: str) -> None:
    """Every character on `screen` has a glyph in the image's console font (our own words are
    ASCII; the seed's may be any script the font has, like the Wi-Fi name's ë)."""
    font = read_psf(configured_font_path())
    missing = sorted({c for c in screen if c != "\n" and not font.has(c)})
    assert not missing, f"not in {configured_font_path().name}: {missing}"


def keep(name: str, screen: str) -> None:
    """The captured screen for a person to look at: text, and a PNG in the console font."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"{name}.txt").write_text(screen)
    font = read_psf(configured_font_path())
    (ARTEFACTS / f"{name}.png").write_bytes(render_png(screen.splitlines(), font))


# -- the code ------------------------------------------------------------------------------------


@pytest.mark.parametrize("border", [QUIET_ZONE, SMALL_QUIET_ZONE])
@pytest.mark.parametrize(
    "url",
    [
        "https://clawdie.local/",
        "https://zoe-s-helper.local/",
        f"https://{'a' * 38}.local/",
        f"https://{'b' * 63}.local/",
        "https://assistant.example.org:8443/",
    ],
)
def test_the_code_reads_back_as_the_address(url: str, border: int) -> None:
    lines = render_qr(url, border)
    assert decode(lines) == [url]
    assert set("".join(lines)) <= CHARACTERS
    assert len({len(line) for line in lines}) == 1
    assert lines[0] == "\u2588" * len(lines[0])  # the quiet zone is drawn light


def test_an_inverted_code_is_not_what_the_reader_sees() -> None:
    """The reader in these tests does not try inverted codes: a code drawn light on dark (the
    console's own colours, the wrong way round for most phones) would fail them."""
    swapped = str.maketrans({"\u2588": " ", " ": "\u2588", "\u2580": "\u2584", "\u2584": "\u2580"})
    lines = [line.translate(swapped) for line in render_qr("https://clawdie.local/", 0)]
    assert decode(lines) == []


def test_the_console_font_of_the_image_has_the_code_characters() -> None:
    """The image's console-setup names a font with the half blocks; Debian's default lacks them
    (why the image changes it)."""
    font = read_psf(configured_font_path())
    assert configured_font_path().name == "Uni2-VGA14.psf.gz"
    for char in CHARACTERS:
        assert font.has(char), hex(ord(char))
    assert all(font.has(c) for c in "Zoë's Helper -:/()[]=.,")
    default = read_psf(FONT_DIR / "Uni2-Fixed16.psf.gz")
    assert not default.has("\u2580")
    assert not default.has("\u2584")


# -- the login screen ----------------------------------------------------------------------------


def box_root(where: Path, interfaces: dict[str, str]) -> TargetPaths:
    root = make_sandbox_root(where)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    for name, mac in interfaces.items():
        (root / "sys/class/net" / name).mkdir(parents=True)
        (root / "sys/class/net" / name / "address").write_text(mac + "\n")
    subprocess.run(["ssh-keygen", "-q", "-A", "-f", str(root)], check=True)
    return TargetPaths(root)


def as_agetty_shows(issue: str) -> list[str]:
    """The issue file as agetty prints it, with the widest address in each `\\4{name}`."""
    text = re.sub(r"(?<!\\)\\4\{[\w.-]+\}", WIDEST, issue).replace("\\\\", "\\")
    return text.splitlines()


DONE = Outcome(True, "the assistant is set up (12.3 s)", platform="starting after this report")
INTERFACES = {"enp1s0": "52:54:00:12:34:56", "wlp2s0": "52:54:00:65:43:21"}


@pytest.mark.parametrize(
    ("host", "border"),
    [("clawdie", QUIET_ZONE), ("zoe-s-helper", QUIET_ZONE), ("a" * 25, SMALL_QUIET_ZONE)],
)
def test_the_login_screen_shows_the_code_and_fits_the_console(
    tmp_path: Path, host: str, border: int
) -> None:
    paths = box_root(tmp_path / "root", INTERFACES)
    url = f"https://{host}.local/"
    issue = render_issue(f"Host {host}, assistant Zoë", DONE, paths, dashboard=url)
    shown = as_agetty_shows(issue)
    assert len(shown) <= ISSUE_ROWS
    assert max(len(line) for line in shown) <= WIDTH
    assert decode(shown) == [url]
    code_width = len(render_qr(url, border)[0])
    assert shown[0].startswith("  " + "\u2588" * code_width + " Clawdie first boot: ok")
    text = "\n".join(shown)
    for name, mac in INTERFACES.items():
        assert f"{name} {mac} {WIDEST}" in text
    assert "Dashboard:" in text
    assert f" {url}\n" in text  # whole, on one row
    assert text.count("SSH host key: ") == 3
    assert "Installation fingerprint: " in text
    font = read_psf(configured_font_path())
    assert all(font.has(c) for c in text if c != "\n")


UPKEEP = (
    "Updates: last checked 2026-12-07 04:21, applied 12 in 7 days, reboot pending (at 04:00)",
    "Backups: last 2026-12-07 04:38 to BACKUP_DIR /srv/backup (812.4 MB), the CLAWDIE-BACKUP "
    "stick /dev/sdb1 (812.4 MB)",
)


@pytest.mark.parametrize("host", ["clawdie", "zoe-s-helper"])
def test_the_login_screen_says_how_updates_and_backups_went_and_still_fits(
    tmp_path: Path, host: str
) -> None:
    """DESIGN §9: one line each for updates and backups, on the same 21 rows, the code whole."""
    paths = box_root(tmp_path / "root", INTERFACES)
    url = f"https://{host}.local/"
    issue = render_issue(f"Host {host}, assistant Zoë", DONE, paths, dashboard=url, upkeep=UPKEEP)
    shown = as_agetty_shows(issue)
    assert len(shown) <= ISSUE_ROWS
    assert max(len(line) for line in shown) <= WIDTH
    assert decode(shown) == [url]
    words = " ".join(re.sub("[" + "".join(sorted(CHARACTERS)) + "]", " ", "\n".join(shown)).split())
    for line in UPKEEP:
        assert line in words


def test_a_long_interface_name_goes_below_the_code(tmp_path: Path) -> None:
    """An address agetty fills in beside the code could push the code's row out of shape."""
    paths = box_root(tmp_path / "root", {"enx525400123456": "52:54:00:12:34:56"})
    url = "https://clawdie.local/"
    shown = as_agetty_shows(render_issue("Host clawdie", DONE, paths, dashboard=url))
    assert decode(shown) == [url]
    (line,) = [line for line in shown if "enx525400123456" in line]
    assert line == f"  Network: enx525400123456 52:54:00:12:34:56 {WIDEST}"


@pytest.mark.parametrize("host", ["b" * 38, "c" * 63])
def test_a_code_that_does_not_fit_leaves_the_plain_screen(tmp_path: Path, host: str) -> None:
    """The address is not cut in two beside the code; where it takes a row of its own below
    the code, the screen would not fit any more."""
    paths = box_root(tmp_path / "root", INTERFACES)
    issue = render_issue("Host b", DONE, paths, dashboard=f"https://{host}.local/")
    assert not set(issue) & (CHARACTERS - {" "})
    assert f"  Dashboard: https://{host[:20]}" in issue or "  Dashboard:\n      https://" in issue


def test_a_failed_first_boot_shows_no_code(tmp_path: Path) -> None:
    """The dashboard does not run: the failure's reason and hint take the screen."""
    paths = box_root(tmp_path / "root", INTERFACES)
    failed = Outcome(False, "stopped at step 7 of 10 (database-ready): x", "x", "run it again")
    issue = render_issue("Host c", failed, paths, dashboard="https://c.local/")
    assert not set(issue) & (CHARACTERS - {" "})
    assert "  What to do: run it again\n" in issue


# -- the progress screen -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def firstboot_tracker(clock: Clock) -> StepTracker:
    config = FirstbootConfig(root=Path("/"), db=DbConfig("", "", 5432, 60000))
    return StepTracker("Clawdie first boot", plan_steps(config), "h", clock=clock, wall=clock)


def test_the_progress_screen_names_the_step_its_clock_and_the_last_line() -> None:
    clock = Clock()
    tracker = firstboot_tracker(clock)
    clock.now += 30
    tracker.begin("accounts")
    clock.now += 12
    lines = render_progress(tracker, "accounts: starting")
    assert lines[0] == "Clawdie first boot: in progress"
    assert "Step 4 of 10: the service account and its SSH key (accounts)" in lines
    assert "This step: 0:12 of its 2:00 deadline; 0:42 since the start" in lines
    assert "  done    3. the wired and Wi-Fi network" in lines
    assert "  now     4. the service account and its SSH key" in lines
    assert "          5. the platform's configuration" in lines
    assert lines[-2:] == ["Last log line:", "accounts: starting"]
    assert len(lines) <= HEIGHT - 1
    assert all(len(line) <= WIDTH and line.isascii() for line in lines)
    clock.now += 200
    assert render_progress(tracker, "")[3].endswith("PAST ITS DEADLINE")


def test_the_failure_screen_puts_the_cause_first_then_the_hint() -> None:
    clock = Clock()
    tracker = firstboot_tracker(clock)
    tracker.begin("database-ready")
    cause = "PostgreSQL did not accept queries within 60000 ms: " + "the reason " * 30
    lines = render_failure(tracker, cause, "start PostgreSQL, then restart the machine", "x")
    assert lines[0] == "Clawdie first boot: failed"
    assert lines[2].startswith("Reason: PostgreSQL did not accept queries")
    hint = next(i for i, line in enumerate(lines) if line.startswith("What to do: "))
    assert all(line.startswith("  ") for line in lines[3:hint])  # the reason's own rows
    assert lines.index("Stopped at step 7 of 10 (database-ready), 0:00 after the start") > hint
    assert "  failed  7. waiting for PostgreSQL" in lines
    assert len(lines) <= FAILURE_ROWS
    assert all(len(line) <= WIDTH for line in lines)


def test_the_screen_paints_in_place_and_a_failure_stays() -> None:
    out = io.StringIO()
    screen = ProgressScreen(out)
    tracker = StepTracker("T", [PlannedStep("a", "doing a", 30)], "h", show=screen.show)
    tracker.begin("a")
    screen.note("a: starting")
    painted = out.getvalue().split("\x1b[H")
    assert len(painted) == 3  # the step's start, then the log line: two paints from home
    assert "Step 1 of 1: doing a (a)\x1b[K\n" in painted[-1]
    assert painted[-1].endswith("a: starting\x1b[K\n\x1b[J")
    screen.fail("it broke", "fix it")
    screen.note("later")
    screen.repaint()
    last = out.getvalue().split("\x1b[H")[-1]
    assert "Reason: it broke" in last
    assert "later" not in last


def test_the_wizards_wait_is_told_on_the_journal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clawdie.console-wait")
    with wait_notices(120, ["TELEGRAM_BOT_TOKEN"]):
        pass
    assert render_wait_notice(120, ["TELEGRAM_BOT_TOKEN"]).startswith(
        "waiting 120 s for someone at the console to answer for TELEGRAM_BOT_TOKEN; "
    )
    assert "s for someone at the console to answer for TELEGRAM_BOT_TOKEN" in caplog.text


# -- the units: no login prompt over the installer -----------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string((OVERLAY / name).read_text())
    return parser


@pytest.mark.parametrize("getty", ["getty@tty1.service", "serial-getty@ttyS0.service"])
def test_no_login_prompt_starts_over_the_live_installer(getty: str) -> None:
    """The login prompts wait for the installer (Before= is the prompt's After=; the installer
    reboots or powers off before it ends): the serial console's, which the kernel's
    console=ttyS0 brings, as tty1's. Never Conflicts=: the installed system has the installer
    unit too, skipped by its condition, and a conflict still drops the prompt's start job (the
    boot test found no login prompt after first boot)."""
    installer = unit("clawdie-installer.service")["Unit"]
    assert getty in installer["Before"].split()
    assert "Conflicts" not in installer


# -- the real commands in a Linux console --------------------------------------------------------


@pytest.fixture
def console() -> Iterator[Callable[[str], Terminal]]:
    """tmux sessions at 80x25 with TERM=linux, each running one shell command line."""
    # no newline after EXIT: no scrolling
    with linux_consoles("console", lambda c: f"TERM=linux {c}; printf EXIT=$?; sleep 120") as start:
        yield start


def firstboot_command(box: Path, pg: PgCluster, fault: str, release: Path | None = None) -> str:
    env = [f"CLAWDIE_FIRSTBOOT_FAULT={fault}"]
    if release is not None:
        env.append(f"CLAWDIE_FAULT_RELEASE={release}")
    argv = [
        str(CLI),
        "firstboot",
        *("--root", str(box / "root")),
        *("--seed", str(box / "setup.txt")),
        *db_cli_args(pg),
        "--no-platform-start",
        "--no-telegram",
        *("--receipt-dir", str(box / "stick")),
        *("--wizard", "never"),
    ]
    return shlex.join(["env", *env, *argv])


@pytest.fixture
def box(tmp_path: Path) -> Path:
    where = firstboot_box(tmp_path, SEED)
    box_root(where / "root", {"enp1s0": "52:54:00:12:34:56"})
    (where / "root/etc/issue").write_text(DEBIAN_ISSUE)
    return where


@needs_tmux
@pytest.mark.root
def test_first_boot_in_a_linux_console_progress_then_the_login_code(
    box: Path, pg: PgCluster, console: Callable[[str], Terminal]
) -> None:
    release = box / "release"
    term = console(firstboot_command(box, pg, "hold:before:accounts", release))
    held = term.wait_text("Step 4 of 10: the service account and its SSH key (accounts)", 60)
    keep("firstboot-progress", held)
    lines = held.splitlines()
    assert lines[0] == "Clawdie first boot: in progress"
    assert re.search(
        r"^This step: 0:\d\d of its 2:00 deadline; 0:\d\d since the start$", held, re.M
    )
    assert "  now     4. the service account and its SSH key" in lines
    assert "Last log line:" in lines
    assert_in_console_font(held)
    release.touch()
    done = term.wait_text("EXIT=", 120)
    keep("firstboot-done", done)
    assert "EXIT=0" in done
    assert done.splitlines()[0] == "Clawdie first boot: ok"
    assert "/var/lib/clawdie-setup/install-summary.txt" in done  # where the full report is
    assert "  done   10. starting the platform" in done.splitlines()
    assert_in_console_font(done)

    root = box / "root"
    login = console(
        shlex.join(
            [
                # agetty ignores the hangup of a killed tmux session: bound it (TERM, then KILL)
                *("timeout", "--foreground", "-k", "5", "60"),
                "/sbin/agetty",
                "--noclear",
                "--issue-file",
                f"{root / 'etc/issue'}:{root / 'etc/issue.d'}",
                "--login-program",
                "/bin/false",
                "-",
                "linux",
            ]
        )
    )
    screen = login.wait_text("login:", 30)
    keep("login-screen", screen)
    shown = screen.splitlines()
    assert shown[1].startswith("Debian GNU/Linux 12")  # all of it fits: nothing scrolled away
    last = [line for line in shown if line.strip()][-1]
    assert last.endswith("login:") or "login:" in last
    assert decode(shown) == ["https://zoe-s-helper.local/"]
    assert "Clawdie first boot: ok" in screen
    blocks = "[" + "".join(sorted(CHARACTERS)) + "]"
    words = " ".join(re.sub(blocks, " ", screen).split())
    assert "Updates: not checked (offline, or before the first window)" in words  # DESIGN §9
    assert "Backups: off: set BACKUP_RECIPIENT to turn backups on" in words
    assert_in_console_font(screen)
    font = read_psf(configured_font_path())
    # as the machine's screen draws it in that font, a camera's view: still the address
    rows = render_rows(shown, font)
    picture = memoryview(b"".join(rows)).cast("B", (len(rows), len(rows[0])))
    found = zxingcpp.read_barcodes(picture, try_invert=False)
    assert [code.text for code in found] == ["https://zoe-s-helper.local/"]


@needs_tmux
@pytest.mark.root
def test_a_failure_is_painted_last_and_stays(
    box: Path, pg: PgCluster, console: Callable[[str], Terminal]
) -> None:
    term = console(firstboot_command(box, pg, "fail:before:database"))
    screen = term.wait_text("EXIT=", 120)
    keep("firstboot-failed", screen)
    assert "EXIT=1" in screen
    lines = screen.splitlines()
    assert lines[0] == "Clawdie first boot: failed"
    assert lines[2] == "Reason: a failure was injected at before:database (fail:before:database)"
    assert lines[3].startswith("What to do: this is a test: unset CLAWDIE_FIRSTBOOT_FAULT")
    assert "Stopped at step 8 of 10 (database)" in screen
    assert "  failed  8. database role, databases, operator" in lines
    assert "  done    7. waiting for PostgreSQL" in lines
    assert_in_console_font(screen)


@needs_tmux
@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_the_install_in_a_linux_console_progress_then_the_code(
    tmp_path: Path, live: Path, console: Callable[[str], Terminal]
) -> None:
    release = tmp_path / "release"
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}")
        argv = install_argv(tmp_path, live, seed, disk.node)
        env = ["env", "CLAWDIE_INSTALL_FAULT=hold:before:copy", f"CLAWDIE_FAULT_RELEASE={release}"]
        term = console(shlex.join([*env, str(CLI), *argv]))
        held = term.wait_text("Step 5 of 8: copying the system (copy)", 120)
        keep("install-progress", held)
        assert held.splitlines()[0] == "Clawdie installer: in progress"
        assert "  done    4. making the file systems" in held.splitlines()
        assert_console_safe(held)
        release.touch()
        done = term.wait_text("EXIT=", 300)
    keep("install-done", done)
    assert "EXIT=0" in done
    lines = done.splitlines()
    assert lines[0] == "Clawdie installer: ok"
    assert decode(lines) == ["https://loopy.local/"]
    assert " Remove the stick: first boot runs on the" in done
    assert "CLAWDIE-INSTALL-DONE" not in done  # a marker for the serial console, not the screen
    assert_in_console_font(done)


@needs_tmux
@pytest.mark.root
@pytest.mark.usefixtures("root_tools")
def test_an_install_failure_stays_on_the_screen(
    tmp_path: Path, live: Path, console: Callable[[str], Terminal]
) -> None:
    with loop_file(tmp_path / "disk.img", DISK_MIB * MIB) as disk:
        seed = seed_for(tmp_path, f"TARGET_DISK={disk.node}")
        argv = install_argv(tmp_path, live, seed, disk.node)
        env = ["env", "CLAWDIE_INSTALL_FAULT=fail:before:partitions"]
        term = console(shlex.join([*env, str(CLI), *argv]))
        screen = term.wait_text("EXIT=", 120)
    keep("install-failed", screen)
    lines = screen.splitlines()
    assert lines[0] == "Clawdie installer: failed"
    assert lines[2].startswith("Reason: a failure was injected at before:partitions")
    assert lines[3].startswith("What to do: this is a test")
    assert "  failed  3. partitioning the disk" in lines
    assert "EXIT=1" in screen


def test_a_hold_needs_its_release_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "_armed", "hold:before:x")
    monkeypatch.delenv(faults.RELEASE_VARIABLE, raising=False)
    with pytest.raises(faults.InjectedFailure, match="names no release file"):
        faults.fault_point("before:x")


def test_the_installers_questions_are_plain_lines_over_a_paused_screen() -> None:
    out = io.StringIO()
    screen = ProgressScreen(out)
    console = Console(out, None, None, screen)
    tracker = StepTracker(
        "T", [PlannedStep("disk", "choosing the disk", 30)], "h", show=screen.show
    )
    with screen:
        tracker.begin("disk")
        console.say("looking at the disks")
        assert "install: looking at the disks\n" not in out.getvalue()  # on the screen instead
        assert "install: looking at the disks\x1b[K\n" in out.getvalue()
        with console.plain():
            console.line("  /dev/sda: a disk")
        assert "\x1b[H\x1b[J  /dev/sda: a disk\n" in out.getvalue()  # a clear screen, then plain
        console.failed("nobody chose a disk", "restart the machine")
        console.say("this machine powers off in 60 s")
    assert out.getvalue().endswith("install: this machine powers off in 60 s\n")
    assert "Reason: nobody chose a disk" in out.getvalue().split("\x1b[H")[-1]
