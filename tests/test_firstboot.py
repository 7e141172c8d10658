"""First boot end to end in a sandbox root against a real PostgreSQL: the happy path, reruns,
power cuts at every step boundary, a dead database, a bad seed, and secrets that never leak."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.envfile import parse_env_file
from installer.firstboot.steps.platform_env import render_unit_dropin
from tests.helpers.firstboot import ROOT, SEED, db_state, firstboot, libcrypt, snapshot
from tests.helpers.pg import PgCluster
from tests.helpers.provider_stub import Reply, provider_stub
from tests.helpers.seeds import ED25519, firstboot_box
from tests.helpers.sentinels import (
    OPENROUTER,
    SENTINEL,
    TOKEN,
    USER_PASSWORD,
)

pytestmark = pytest.mark.root


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A sandbox target root with the seed and a stick stand-in next to it."""
    return firstboot_box(tmp_path, SEED)


def test_first_boot_end_to_end_then_a_rerun_changes_nothing(box: Path, pg: PgCluster) -> None:
    result = firstboot(box, pg)
    assert result.returncode == 0, result.stdout + result.stderr
    root = box / "root"

    assert (root / "etc/hostname").read_text() == "zoe-s-helper\n"
    assert "127.0.1.1\tzoe-s-helper.local\tzoe-s-helper" in (root / "etc/hosts").read_text()
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/default/locale").read_text() == "LANG=de_DE.UTF-8\n"
    assert 'XKBLAYOUT="de"' in (root / "etc/default/keyboard").read_text()
    assert "de_DE.UTF-8 UTF-8\n" in (root / "etc/locale.gen").read_text().replace("# de", "X")
    supplicant = root / "etc/wpa_supplicant/clawdie-wifi.conf"
    assert stat.S_IMODE(supplicant.stat().st_mode) == 0o600
    assert supplicant.stat().st_uid == 0
    assert "country=DE\n" in supplicant.read_text()
    assert (root / "etc/systemd/network/25-clawdie-wifi.network").is_file()

    passwd = (root / "etc/passwd").read_text()
    entry = next(line for line in passwd.splitlines() if line.startswith("clawdie:"))
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    assert uid < 1000  # a system user
    assert entry.endswith(":/var/lib/clawdie:/bin/bash")
    shadow = dict(line.split(":", 2)[:2] for line in (root / "etc/shadow").read_text().splitlines())
    assert shadow["root"].startswith("!")
    assert libcrypt(USER_PASSWORD, shadow["clawdie"]) == shadow["clawdie"]
    keys = root / "var/lib/clawdie/.ssh/authorized_keys"
    assert keys.read_text() == ED25519 + "\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.stat().st_uid == uid
    assert stat.S_IMODE(keys.parent.stat().st_mode) == 0o700

    env_file = root / "etc/clawdie/system.env"
    # root's file the platform reads (DESIGN §4): root:<service group> 0640
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert (env_file.stat().st_uid, env_file.stat().st_gid) == (0, gid)
    env = parse_env_file(env_file.read_text())
    assert env["TELEGRAM_BOT_TOKEN"] == TOKEN
    assert env["PI_TUI_MODEL"] == "deepseek/deepseek-chat"
    assert "OPERATOR_PASSWORD" not in env
    assert "CLAWDIE_USER_PASSWORD" not in env
    # the dashboard's session secret: made here, on the box (the image has none)
    assert len(env["BETTER_AUTH_SECRET"]) >= 40
    assert env["BETTER_AUTH_SECRET"] not in result.stdout + result.stderr
    assert not [key for key in env if key.startswith(("WIFI_", "NET_"))]
    resolved = json.loads((root / "etc/clawdie/setup.resolved.json").read_text())
    by_key = {s["key"]: s for s in resolved["settings"]}
    assert by_key["HOSTNAME"]["source"] == "derived from ASSISTANT_NAME"
    assert by_key["TELEGRAM_BOT_TOKEN"]["value"] is None

    state = db_state(pg)
    assert state["roles"] == [("clawdie", True)]
    assert state["dbs"] == [
        ("system_brain", "clawdie"),
        ("system_ops", "clawdie"),
        ("system_skills", "clawdie"),
    ]
    assert state["users"] == [("ops@example.com",)]
    assert state["accounts"] == [("credential",)]
    assert (root / "platform.out").read_text() == (
        "PLATFORM-READY role=clawdie db=system_ops operators=1\n"
    )

    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert (
        stat.S_IMODE((root / "var/lib/clawdie-setup/install-summary.txt").stat().st_mode) == 0o600
    )
    assert "Clawdie first boot: ok" in summary
    assert "Host name:      zoe-s-helper" in summary
    assert "Wi-Fi: Zoë's Wi-Fi (country DE)" in summary
    assert "chat:         openrouter deepseek/deepseek-chat" in summary
    assert "Dashboard:      operator ops@example.com can sign in" in summary
    assert "reformat the stick or delete setup.txt" in summary
    assert "Platform: started" in summary
    issue = (root / "etc/issue.d/clawdie.issue").read_text()
    assert "Clawdie first boot: ok" in issue
    assert "Platform: started" in issue
    assert "Clawdie first boot: ok" in (box / "stick/SETUP-RESULT.txt").read_text()

    before, before_db = snapshot(root, pg), db_state(pg)
    (box / "setup.txt").write_text(SEED.replace("Zoë's Helper", "Someone Else"))
    again = firstboot(box, pg)
    assert again.returncode == 0
    assert "already completed" in again.stderr
    assert "are not read again" in again.stderr
    assert snapshot(root, pg) == before
    assert db_state(pg) == before_db


def test_secrets_never_leave_their_files(box: Path, pg: PgCluster) -> None:
    result = firstboot(box, pg, "--verbose")
    assert result.returncode == 0, result.stderr
    root = box / "root"
    allowed = {
        root / "etc/clawdie/system.env",  # the platform's own secret store, root:group 0640
    }
    # the seed copy is gone once first boot is complete: secrets live only where they are used
    assert not (root / "var/lib/clawdie-setup/seed").exists()
    assert SENTINEL not in result.stdout + result.stderr
    for path in [*root.rglob("*"), *(box / "stick").rglob("*")]:
        if path.is_file() and path not in allowed:
            assert SENTINEL not in path.read_bytes().decode(errors="replace"), path
    for path in allowed:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_secrets_stay_put_when_the_providers_echo_them(box: Path, pg: PgCluster) -> None:
    """The preflight and both messages against providers that refuse and quote the key back:
    no sentinel in any file but system.env, on the stick, in the queue or in the log."""
    with provider_stub() as stub:
        echo = {"ok": False, "description": f"Not Found: bot{TOKEN} unknown"}
        stub.script("/getMe", Reply(404, echo))
        stub.script("/sendMessage", Reply(400, echo))
        stub.script("/key", Reply(401, {"error": {"message": f"bad key {OPENROUTER}"}}))
        result = firstboot(box, pg, "--verbose", telegram_api=stub.url, openrouter_api=stub.url)
    assert result.returncode == 0, result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    root = box / "root"
    queued = root / "var/lib/clawdie-setup/telegram-queue/first-boot.json"
    assert queued.is_file()
    for path in [*root.rglob("*"), *(box / "stick").rglob("*")]:
        if path.is_file() and path != root / "etc/clawdie/system.env":
            assert SENTINEL not in path.read_bytes().decode(errors="replace"), path
    assert "Telegram said: Not Found: bot<redacted> unknown" in queued.read_text()


def test_a_root_that_is_not_a_system_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "typo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "installer.cli",
            "firstboot",
            "--root",
            str(target),
            "--wizard",
            "never",
            "--no-telegram",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "is not the root of a system" in result.stderr
    assert not target.exists()


def test_invalid_seed_without_console_fails_clearly(box: Path, pg: PgCluster) -> None:
    (box / "setup.txt").write_text("ASSISTANT_NAME=Ada\nTELEGRAM_ADMIN_ID=@ada\n")
    result = firstboot(box, pg)
    assert result.returncode == 1
    assert "no console to ask on" in result.stderr
    assert "Traceback" not in result.stderr
    root = box / "root"
    summary = (root / "var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Clawdie first boot: failed" in summary
    assert "setup.txt:2: TELEGRAM_ADMIN_ID: this is a user name" in summary
    assert "setup.txt: TELEGRAM_BOT_TOKEN: required" in summary
    assert "Clawdie first boot: failed" in (box / "stick/SETUP-RESULT.txt").read_text()
    assert not (root / "etc/clawdie/system.env").exists()
    assert not (root / "var/lib/clawdie-setup/firstboot").exists()
    assert (root / "etc/hostname").read_text() == "debian\n"  # nothing applied


def test_database_not_running_times_out_at_the_deadline(box: Path, pg: PgCluster) -> None:
    pg.stop()
    result = firstboot(box, pg, timeout_ms=3000)
    assert result.returncode == 3, result.stderr
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "Clawdie first boot: failed" in summary
    assert "not started" in summary
    assert not (box / "root/platform.out").exists()
    pg.start()
    assert firstboot(box, pg).returncode == 0  # the rerun finishes the job
    assert (box / "root/platform.out").exists()


def test_database_started_late_is_waited_for(box: Path, pg: PgCluster) -> None:
    pg.stop()
    pg.start_in_background(delay=8.0)
    result = firstboot(box, pg, timeout_ms=40000)
    pg.wait_background()
    assert result.returncode == 0, result.stderr
    assert "waiting for PostgreSQL" in result.stderr
    assert re.search(r"PostgreSQL \(.*\) is ready after \d", result.stderr)


# Every point where a power cut can land. A representative few run in the fast suite; the whole
# matrix is `slow` (each point is two full first boots).
FAST_FAULT_POINTS = {
    "mid-write:system.env",
    "effects:accounts",
    "before:database",
    "effects:database",
    "before:complete",
}
FAULT_POINTS = [
    pytest.param(point, marks=() if point in FAST_FAULT_POINTS else pytest.mark.slow)
    for point in [
        "effects:seed",
        "stamped:seed",
        "before:identity",
        "effects:identity",
        "mid-write:hostname",
        "before:network",
        "mid-write:clawdie-wifi.conf",
        "effects:network",
        "effects:accounts",
        "mid-write:authorized_keys",
        "before:platform-config",
        "mid-write:system.env",
        "effects:platform-config",
        "before:database-ready",
        "before:database",
        "effects:database",
        "before:report",
        "mid-write:install-summary.txt",
        "before:complete",
    ]
]


# What a clean first boot leaves: the files (`snapshot`) and the database (`db_state`).
CleanRun = tuple[dict[str, tuple[str, int, str]], dict[str, object]]


@pytest.fixture(scope="module")
def power_cut_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the clean run's box and then each interrupted run's box are made, one after the
    other, at the same path: the login screen shows the platform's command with the box's path
    in it, and lays its lines out by their length."""
    return tmp_path_factory.mktemp("power-cut") / "box"


def fresh_box(where: Path) -> Path:
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir()
    return firstboot_box(where, SEED)


@pytest.fixture(scope="module")
def clean_run(power_cut_dir: Path, pg_template: Path) -> Iterator[CleanRun]:
    """A clean first boot to compare every interrupted one against."""
    box = fresh_box(power_cut_dir)
    cluster = PgCluster(template=pg_template)
    try:
        cluster.init()
        cluster.start()
        result = firstboot(box, cluster)
        assert result.returncode == 0, result.stderr
        yield snapshot(box / "root", cluster), db_state(cluster)
    finally:
        cluster.cleanup()


def _world_readable_secrets(root: Path) -> list[str]:
    bad = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_bytes().decode(errors="replace")
        # system.env (and its temp file) is root:<service group> 0640: the platform reads it
        env_file = path.name == "system.env" or path.name.startswith(".system.env.tmp-")
        if SENTINEL in text and mode & (0o007 if env_file else 0o077):
            bad.append(f"{path} {oct(mode)}")
    return bad


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_power_cut_then_rerun_equals_a_clean_run(
    power_cut_dir: Path, pg: PgCluster, point: str, clean_run: CleanRun
) -> None:
    box = fresh_box(power_cut_dir)
    killed = firstboot(box, pg, fault=point)
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
    assert _world_readable_secrets(box / "root") == []
    finished = firstboot(box, pg)
    assert finished.returncode == 0, finished.stderr
    assert not list((box / "root").rglob(".*.tmp-*"))
    # the summary's time counts the cut run too (as far as it got: its last step's start)
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert re.search(r"the assistant is set up \(\d+\.\d s\) over 2 runs", summary), summary
    expected_tree, expected_db = clean_run
    assert snapshot(box / "root", pg) == expected_tree
    assert db_state(pg) == expected_db


def test_telegram_message_reaches_the_admin_without_secrets(box: Path, pg: PgCluster) -> None:
    """Stubs on loopback (no route needed): the credentials are checked (the bot's name and the
    credit limit in the summary and the receipt), "setup started" goes out before the report,
    and a message an earlier run queued is dropped once this one is sent."""
    stale = box / "root/var/lib/clawdie-setup/telegram-queue/first-boot.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"text": "first boot stopped before it finished"}')
    with provider_stub() as stub:
        result = firstboot(
            box, pg, telegram_api=stub.url, openrouter_api=stub.url, start_platform=False
        )
    assert result.returncode == 0, result.stderr
    assert [(s.method, s.path) for s in stub.seen] == [
        ("POST", f"/bot{TOKEN}/sendMessage"),  # setup started, before the database wait
        ("GET", f"/bot{TOKEN}/getMe"),
        ("GET", "/key"),
        ("POST", f"/bot{TOKEN}/sendMessage"),  # the report
    ]
    assert stub.seen[2].authorization == f"Bearer {OPENROUTER}"
    started, report = stub.sent_texts()
    assert started == (
        "Clawdie setup started on zoe-s-helper (assistant Zoë's Helper). "
        "The report follows when it is done."
    )
    assert stub.seen[0].body is not None
    assert stub.seen[0].body["chat_id"] == "123456789"
    assert report.startswith("Clawdie first boot: ok\n")
    for line in (
        "  Network check:  connected",
        "  Telegram bot: @zoe_helper_bot (valid)",
        "  OpenRouter key: valid (credit limit 10.00, 1.50 used)",
    ):
        assert line in report
    assert SENTINEL not in report
    assert not stale.exists()
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert "start skipped (--no-platform-start)" in summary
    assert "  Telegram bot: @zoe_helper_bot (valid)" in summary
    receipt = (box / "stick/SETUP-RESULT.txt").read_text()
    assert receipt.startswith("Clawdie first boot: ok\n")
    assert "  Telegram bot: @zoe_helper_bot (valid)" in receipt
    assert "  OpenRouter key: valid (credit limit 10.00, 1.50 used)" in receipt
    assert "Telegram: setup started message: sent" in result.stderr


def test_refused_credentials_make_it_degraded_with_the_next_step(box: Path, pg: PgCluster) -> None:
    """Telegram refuses the token, OpenRouter the key: first boot completes, `degraded`, each
    with the provider's reason and the setup.txt line to fix; never the key itself."""
    with provider_stub() as stub:
        refused = Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        stub.script("/getMe", refused)
        stub.script("/sendMessage", refused)
        stub.script("/key", Reply(401, {"error": {"message": "User not found.", "code": 401}}))
        result = firstboot(
            box, pg, telegram_api=stub.url, openrouter_api=stub.url, start_platform=False
        )
    assert result.returncode == 0, result.stderr
    summary = (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    receipt = (box / "stick/SETUP-RESULT.txt").read_text()
    for text in (summary, receipt):
        assert text.splitlines()[0] == "Clawdie first boot: degraded"
        assert (
            "  Telegram bot: refused: Telegram said: Unauthorized; next step: the bot token was "
            "refused by Telegram: create a new one with @BotFather (/newbot or /token) and put "
            "it on line 1 of setup.txt"
        ) in text
        assert (
            "  OpenRouter key: refused: OpenRouter said: User not found.; next step: the "
            "OpenRouter key was refused: create a new key at openrouter.ai (Settings, Keys) and "
            "put it on line 3 of setup.txt"
        ) in text
        assert SENTINEL not in text
    # the report could not go out either: it waits for the retry timer (the admin may fix it)
    assert "will retry for up to 24 h" in summary
    queued = json.loads(
        (box / "root/var/lib/clawdie-setup/telegram-queue/first-boot.json").read_text()
    )
    assert SENTINEL not in json.dumps(queued)
    assert SENTINEL not in result.stderr + result.stdout
    issue = (box / "root/etc/issue.d/clawdie.issue").read_text()
    assert "Clawdie first boot: degraded - " in issue


@pytest.mark.parametrize(
    ("password_login", "user", "expected"),
    [
        (True, "clawdie", ("no", "yes")),
        (True, "root", ("no", "no")),
        (True, "someone", ("no", "no")),
        (False, "clawdie", ("no", "no")),
    ],
)
def test_sshd_reads_the_dropin_as_meant(
    tmp_path: Path, password_login: bool, user: str, expected: tuple[str, str]
) -> None:
    from installer.firstboot.steps.accounts import render_sshd_dropin

    (tmp_path / "d").mkdir()
    (tmp_path / "d/clawdie.conf").write_text(render_sshd_dropin("clawdie", password_login))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hk")], check=True
    )
    (tmp_path / "sshd_config").write_text(
        f"Include {tmp_path}/d/*.conf\nHostKey {tmp_path}/hk\n"
        "PasswordAuthentication yes\nPermitRootLogin yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    out = subprocess.run(
        [
            "/usr/sbin/sshd",
            "-T",
            "-f",
            str(tmp_path / "sshd_config"),
            "-C",
            f"user={user},host=x,addr=127.0.0.1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert (settings["permitrootlogin"], settings["passwordauthentication"]) == expected


def test_no_network_queues_the_message_at_once(box: Path, pg: PgCluster) -> None:
    """APIs with a name, and no default route in the target (the sandbox has none): no attempt
    and no retries, no clock wait; `degraded: no network` with the reason in the summary, the
    receipt and the login screen, the credentials not checked, and the message waits in root's
    queue for the retry timer."""
    result = firstboot(
        box,
        pg,
        telegram_api="https://api.telegram.invalid",
        openrouter_api="https://openrouter.invalid/api/v1",
        start_platform=False,
    )
    assert result.returncode == 0, result.stderr
    assert "trying again" not in result.stderr
    assert "clock: not synchronised after" not in result.stderr  # offline: no wait
    state = box / "root/var/lib/clawdie-setup"
    queued = state / "telegram-queue/first-boot.json"
    summary = (state / "install-summary.txt").read_text()
    receipt = (box / "stick/SETUP-RESULT.txt").read_text()
    status = "Clawdie first boot: degraded: no network (no route: no default route)"
    assert summary.splitlines()[0] == status
    assert receipt.splitlines()[0] == status
    issue = (box / "root/etc/issue.d/clawdie.issue").read_text()
    # the login screen's status line, beside the QR code and wrapped to 80 columns
    words = " ".join(re.sub("[\u2580\u2584\u2588]", " ", issue).split())
    assert f"{status} - " in words
    for text in (summary, receipt):
        assert "  Network check:  no network (no route: no default route)" in text
        assert "  Telegram bot: not checked (offline: no route: no default route)" in text
        assert "  OpenRouter key: not checked (offline: no route: no default route)" in text
        assert "  Clock:          not synchronised (NTP): the clock may be wrong: it says " in text
    assert (
        "Telegram message not sent: no network (no route: no default route); queued in "
        "/var/lib/clawdie-setup/telegram-queue/first-boot.json, will retry for up to 24 h"
    ) in summary
    assert stat.S_IMODE(queued.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(queued.stat().st_mode) == 0o600
    assert queued.stat().st_uid == 0
    message = json.loads(queued.read_text())
    assert message["chat_id"] == "123456789"
    assert message["api"] == "https://api.telegram.invalid"
    assert message["reason"] == "no network (no route: no default route)"
    assert message["text"].startswith("Clawdie first boot: degraded: no network (no route")
    assert SENTINEL not in queued.read_text()


def reload_recorder(box: Path) -> str:
    """A stand-in for `systemctl daemon-reload` that notes each call in box/reloads."""
    return f"{sys.executable} -c \"open('{box / 'reloads'}', 'a').write('reload\\n')\""


def with_shipped_dropin(box: Path) -> Path:
    """The platform unit's drop-in as the image ships it (iso/overlay), in the box's root, with
    the default update window's timer drop-ins."""
    for name in (
        "apt-daily-upgrade.timer.d/clawdie-window.conf",
        "clawdie-backup.timer.d/clawdie-window.conf",
        "clawdie-update-check.timer.d/clawdie-window.conf",
        "clawdie-weekly-report.timer.d/clawdie-window.conf",
    ):
        window = box / "root/etc/systemd/system" / name
        window.parent.mkdir(parents=True)
        window.write_bytes((ROOT / "iso/overlay/etc/systemd/system" / name).read_bytes())
    dropin = box / "root/etc/systemd/system/clawdie.service.d/10-account.conf"
    dropin.parent.mkdir(parents=True)
    shipped = ROOT / "iso/overlay/etc/systemd/system/clawdie.service.d/10-account.conf"
    dropin.write_bytes(shipped.read_bytes())
    return dropin


def test_default_account_changes_no_unit_and_reloads_nothing(box: Path, pg: PgCluster) -> None:
    """The image ships the default account's drop-in: first boot leaves it as it is and
    starts the platform without a `systemctl daemon-reload`."""
    dropin = with_shipped_dropin(box)
    result = firstboot(box, pg, "--units-reload", reload_recorder(box))
    assert result.returncode == 0, result.stderr
    assert not (box / "reloads").exists()
    assert "units: unchanged, no reload" in result.stderr
    assert dropin.read_text() == render_unit_dropin("clawdie")


def test_another_account_changes_the_unit_and_reloads_once(box: Path, pg: PgCluster) -> None:
    """SERVICE_ACCOUNT=helper rewrites the drop-in: one reload, before the platform starts."""
    dropin = with_shipped_dropin(box)
    (box / "setup.txt").write_text(SEED + "SERVICE_ACCOUNT=helper\n")
    result = firstboot(box, pg, "--units-reload", reload_recorder(box))
    assert result.returncode == 0, result.stderr
    assert dropin.read_text() == render_unit_dropin("helper")
    assert (box / "reloads").read_text() == "reload\n"
    assert "units: changed by platform-config; reloaded" in result.stderr
