"""Adopt (INSTALL_MODE=adopt) over a box first boot set up, in a sandbox root against a real
PostgreSQL: the fingerprint gate, each safe change, each identity change refused then allowed,
fill-only fields, a second run that changes nothing, and a power cut at every step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer.paths import TargetPaths
from installer.seed.hashes import derive_psk
from tests.helpers.adopt import (
    MACHINE_ID,
    SEED,
    adopt,
    adopt_seed,
    env_of,
    fingerprint,
    installed_box,
    receipt,
    restarts,
)
from tests.helpers.firstboot import ROOT, db_state, firstboot, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.seeds import ED25519, RSA_2048, firstboot_box
from tests.helpers.sentinels import (
    NEW_TOKEN,
    OPENROUTER,
    OPERATOR_PASSWORD,
    SENTINEL,
    USER_PASSWORD,
    WIFI_PASSWORD,
)

pytestmark = pytest.mark.root


def assert_no_secret(
    box: Path, result: subprocess.CompletedProcess[str], psk: str | None = None
) -> None:
    """The sentinel nowhere but in system.env; a Wi-Fi key (`psk`) nowhere but in the
    supplicant's configuration."""
    assert SENTINEL not in result.stdout + result.stderr
    allowed = {box / "root/etc/clawdie/system.env"}
    conf = box / "root/etc/wpa_supplicant/clawdie-wifi.conf"
    for path in [*(box / "root").rglob("*"), *(box / "stick").rglob("*")]:
        if path.is_file() and path not in allowed:
            assert SENTINEL not in path.read_bytes().decode(errors="replace"), path
    if psk is None:
        return
    assert psk not in result.stdout + result.stderr
    for path in [*(box / "root").rglob("*"), *(box / "stick").rglob("*")]:
        if path.is_file() and path != conf:
            assert psk not in path.read_bytes().decode(errors="replace"), path


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster) -> Path:
    return installed_box(tmp_path, pg)


def test_the_summary_and_receipt_show_the_fingerprint_an_adopt_seed_needs(box: Path) -> None:
    shown = fingerprint(box)
    line = (
        f"Installation fingerprint: {shown} (an adopt seed names it: INSTALL_FINGERPRINT={shown})"
    )
    assert line in (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()
    assert line in receipt(box)


def test_a_wrong_fingerprint_is_refused_and_nothing_changes(box: Path, pg: PgCluster) -> None:
    before, before_db = snapshot(box / "root", pg), db_state(pg)
    wrong = "0" * 8 if not fingerprint(box).startswith("0") else "f" * 8
    seed = adopt_seed(
        box,
        "PROFILE=economy",
        "TIMEZONE=Europe/Berlin",
        f"SSH_AUTHORIZED_KEY={RSA_2048}",
        fingerprint_line=f"INSTALL_FINGERPRINT={wrong}",
    )
    result = adopt(box, pg, seed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"adopt.txt:2: INSTALL_FINGERPRINT={wrong} is not this box's fingerprint" in (
        result.stderr
    )
    assert "nothing on this box was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert fingerprint(box) not in result.stderr + receipt(box)  # never told to the stick
    assert "Clawdie adopt: failed (adopt.txt)\nReason: " in receipt(box)
    # on the login screen until the next boot (/run), and nowhere on the disk
    notice = box / "root/run/issue.d/clawdie-adopt.issue"
    assert f"INSTALL_FINGERPRINT={wrong} is not this box's fingerprint" in notice.read_text()
    assert "Nothing on this box was changed." in notice.read_text()
    assert snapshot(box / "root", pg) == before  # /run is memory, not the box (see snapshot)
    assert db_state(pg) == before_db
    assert restarts(box) == 0
    # an adopt that runs takes the refusal off the login screen
    assert adopt(box, pg, adopt_seed(box, "PROFILE=economy")).returncode == 0
    assert not notice.exists()


def test_an_adopt_seed_without_a_fingerprint_or_on_a_fresh_box_is_refused(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = installed_box(tmp_path, pg)
    seed = box / "adopt.txt"
    seed.write_text("INSTALL_MODE=adopt\nPROFILE=economy\n")
    result = adopt(box, pg, seed)
    assert result.returncode == 1
    assert "INSTALL_FINGERPRINT: required because INSTALL_MODE=adopt" in result.stderr
    # a box where first boot never ran has nothing to adopt
    bare = firstboot_box(tmp_path / "bare", SEED)
    (bare / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
    refused = adopt(
        bare, pg, adopt_seed(bare, "PROFILE=economy", code_line="ADOPT_CODE=K7QD-M4XP-R9TW-3HNE")
    )
    assert refused.returncode == 1
    assert "there is no installation" in refused.stderr
    assert not (bare / "root/etc/clawdie").exists()


def test_safe_changes_are_applied_and_a_second_run_changes_nothing(
    box: Path, pg: PgCluster
) -> None:
    root = box / "root"
    before_env, before_db = env_of(box), db_state(pg)
    seed = adopt_seed(
        box,
        "PROFILE=economy",
        "LLM_FALLBACK_MODEL=anthropic/claude-sonnet-4",
        "TIMEZONE=Europe/Berlin",
        "LOCALE=de_DE.UTF-8",
        "KEYMAP=de",
        f"SSH_AUTHORIZED_KEY={RSA_2048}",
        "ASSISTANT_NAME=Ada",  # the same: kept
    )
    result = adopt(box, pg, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    env = env_of(box)
    assert env["PROFILE"] == "economy"
    assert env["PI_TUI_MODEL"] == "deepseek/deepseek-chat"  # the economy profile's chat model
    assert env["LLM_FALLBACK_MODEL"] == "anthropic/claude-sonnet-4"
    assert env["TIMEZONE"] == "Europe/Berlin"
    # what the box is stays: names, Telegram, keys, the database password
    for key in ("ASSISTANT_NAME", "HOSTNAME", "TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID"):
        assert env[key] == before_env[key], key
    assert env["OPENROUTER_API_KEY"] == OPENROUTER
    assert env["PLATFORM_DB_PASSWORD"] == before_env["PLATFORM_DB_PASSWORD"]
    # a new session secret would sign the operator out of the dashboard
    assert env["BETTER_AUTH_SECRET"] == before_env["BETTER_AUTH_SECRET"]
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/default/locale").read_text() == "LANG=de_DE.UTF-8\n"
    assert 'XKBLAYOUT="de"' in (root / "etc/default/keyboard").read_text()
    assert (root / "etc/hostname").read_text() == "ada\n"
    # the key is added next to the first one, never in its place
    keys = (root / "var/lib/clawdie/.ssh/authorized_keys").read_text()
    assert keys == f"{ED25519}\n{RSA_2048}\n"
    assert db_state(pg) == before_db  # the databases are untouched
    resolved = json.loads((root / "etc/clawdie/setup.resolved.json").read_text())
    sources = {s["key"]: s["source"] for s in resolved["settings"]}
    assert sources["PROFILE"] == "setup.txt line 4"
    assert sources["TELEGRAM_ADMIN_ID"] == "setup.txt line 2"  # kept byte for byte
    assert restarts(box) == 1  # system.env changed
    # still root's file that the platform's group reads (it runs wait-db as the account)
    env_stat = (root / "etc/clawdie/system.env").stat()
    assert (env_stat.st_mode & 0o777, env_stat.st_uid) == (0o640, 0)

    out = result.stdout
    for line in (
        "PROFILE: applied (balanced → economy)",
        "LLM_FALLBACK_MODEL: kept (already anthropic/claude-sonnet-4)",  # and now pinned
        "TIMEZONE: applied (UTC → Europe/Berlin)",
        "LOCALE: applied (en_US.UTF-8 → de_DE.UTF-8)",
        "KEYMAP: applied (us → de)",
        "SSH_AUTHORIZED_KEY: applied (1 key(s) → 2 key(s); added; the 1 key(s) already there stay)",
        "ASSISTANT_NAME: kept (already Ada)",
        "INSTALL_MODE: kept (an instruction for this run, not a setting of the box)",
    ):
        assert line in out, line
    assert "Platform: restarted: system.env changed" in out
    assert out == receipt(box)
    assert out == (root / "var/lib/clawdie-setup/adopt-summary.txt").read_text()
    assert not (root / "var/lib/clawdie-setup/adopt").exists()  # the run's state is gone
    assert_no_secret(box, result)

    # the same seed again: every key kept, nothing written, no restart
    before, before_db = snapshot(root, pg), db_state(pg)
    again = adopt(box, pg, seed)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert "PROFILE: kept (already economy)" in again.stdout
    assert "SSH_AUTHORIZED_KEY: kept (the service account already has this key)" in again.stdout
    assert "Platform: not restarted: nothing changed" in again.stdout
    assert snapshot(root, pg) == before
    assert db_state(pg) == before_db
    assert restarts(box) == 1


# (key, the new value, what to check on the box afterwards)
IDENTITY: list[tuple[str, str, Callable[[Path], bool]]] = [
    ("HOSTNAME", "bobbox", lambda box: (box / "root/etc/hostname").read_text() == "bobbox\n"),
    ("ASSISTANT_NAME", "Bob", lambda box: env_of(box)["ASSISTANT_NAME"] == "Bob"),
    (
        "AGENT_DOMAIN",
        "bob.example.org",
        lambda box: env_of(box)["AGENT_DOMAIN"] == "bob.example.org",
    ),
    ("TELEGRAM_BOT_TOKEN", NEW_TOKEN, lambda box: env_of(box)["TELEGRAM_BOT_TOKEN"] == NEW_TOKEN),
    ("TELEGRAM_ADMIN_ID", "987654321", lambda box: env_of(box)["TELEGRAM_ADMIN_ID"] == "987654321"),
]


@pytest.mark.parametrize(("key", "value", "changed"), IDENTITY, ids=[i[0] for i in IDENTITY])
def test_an_identity_change_is_refused_then_allowed_with_the_flag(
    box: Path, pg: PgCluster, key: str, value: str, changed: Callable[[Path], bool]
) -> None:
    root = box / "root"
    before, before_db = snapshot(root, pg), db_state(pg)
    refused = adopt(box, pg, adopt_seed(box, f"{key}={value}"))
    assert refused.returncode == 0, refused.stderr
    assert f"{key}: refused (the box's " in refused.stdout
    assert "add ALLOW_IDENTITY_CHANGE=yes" in refused.stdout
    assert f"{key}: refused" in receipt(box)
    assert snapshot(root, pg) == before  # nothing applied: nothing written
    assert db_state(pg) == before_db
    assert restarts(box) == 0

    allowed = adopt(box, pg, adopt_seed(box, f"{key}={value}", "ALLOW_IDENTITY_CHANGE=yes"))
    assert allowed.returncode == 0, allowed.stderr
    assert f"{key}: applied (" in allowed.stdout
    assert "ALLOW_IDENTITY_CHANGE=yes)" in allowed.stdout
    assert changed(box)
    assert restarts(box) == 1
    assert db_state(pg) == before_db
    assert_no_secret(box, allowed)


def test_a_new_assistant_name_does_not_rename_the_host(box: Path, pg: PgCluster) -> None:
    result = adopt(box, pg, adopt_seed(box, "ASSISTANT_NAME=Bob", "ALLOW_IDENTITY_CHANGE=yes"))
    assert result.returncode == 0, result.stderr
    assert env_of(box)["ASSISTANT_NAME"] == "Bob"
    assert (box / "root/etc/hostname").read_text() == "ada\n"
    assert env_of(box)["AGENT_DOMAIN"] == "ada.local"


def operators(pg: PgCluster) -> list[tuple[str, ...]]:
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        return [tuple(r) for r in conn.execute('SELECT email FROM "user" ORDER BY 1')]


def test_the_operator_and_the_fallback_password_are_filled_only_when_blank(
    box: Path, pg: PgCluster
) -> None:
    root = box / "root"
    assert operators(pg) == []
    seed = adopt_seed(
        box,
        "OPERATOR_EMAIL=ops@example.com",
        f"OPERATOR_PASSWORD={OPERATOR_PASSWORD}",
        f"CLAWDIE_USER_PASSWORD={USER_PASSWORD}",
    )
    result = adopt(box, pg, seed)
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if "OPERATOR_EMAIL: applied (" in x]
    assert line.endswith("; the dashboard had no operator yet)"), line
    assert "CLAWDIE_USER_PASSWORD: applied" in result.stdout
    assert operators(pg) == [("ops@example.com",)]
    shadow = (root / "etc/shadow").read_text()
    assert next(x for x in shadow.splitlines() if x.startswith("clawdie:")).split(":")[1][:3] == (
        "$6$"
    )
    assert "Match User clawdie" in (root / "etc/ssh/sshd_config.d/clawdie.conf").read_text()

    # another operator and another password: refused; the first ones stay
    before, before_db = snapshot(root, pg), db_state(pg)
    other = adopt_seed(
        box,
        "OPERATOR_EMAIL=someone@example.com",
        f"OPERATOR_PASSWORD=other {OPERATOR_PASSWORD}",
        f"CLAWDIE_USER_PASSWORD=other-{USER_PASSWORD}",
    )
    again = adopt(box, pg, other)
    assert again.returncode == 0, again.stderr
    assert "OPERATOR_EMAIL: refused (the dashboard already has its operator ops@example.com" in (
        again.stdout
    )
    assert "CLAWDIE_USER_PASSWORD: refused (the service account has a fallback password" in (
        again.stdout
    )
    assert snapshot(root, pg) == before
    assert db_state(pg) == before_db
    # a later adopt that leaves the password out keeps SSH password login as it is
    third = adopt(box, pg, adopt_seed(box, "PROFILE=quality"))
    assert third.returncode == 0, third.stderr
    assert "Match User clawdie" in (root / "etc/ssh/sshd_config.d/clawdie.conf").read_text()
    assert operators(pg) == [("ops@example.com",)]
    assert_no_secret(box, third)


def test_the_service_account_is_never_renamed(box: Path, pg: PgCluster) -> None:
    before = snapshot(box / "root", pg)
    result = adopt(box, pg, adopt_seed(box, "SERVICE_ACCOUNT=helper", "ALLOW_IDENTITY_CHANGE=yes"))
    assert result.returncode == 0, result.stderr
    assert "SERVICE_ACCOUNT: refused (the platform runs as clawdie" in result.stdout
    assert snapshot(box / "root", pg) == before


def test_a_stick_with_an_adopt_seed_is_taken_at_boot_a_fresh_one_is_not(
    box: Path, pg: PgCluster
) -> None:
    root = box / "root"
    fresh = firstboot(box, pg)  # setup.txt, the fresh seed: never read again
    assert fresh.returncode == 0
    assert "are not read again" in fresh.stderr
    adopt_path = adopt_seed(box, "PROFILE=economy", "TELEGRAM_ADMIN_ID=555")
    (box / "setup.txt").write_text(adopt_path.read_text())
    result = firstboot(box, pg)
    assert result.returncode == 0, result.stderr
    assert "asks to adopt" in result.stderr
    assert env_of(box)["PROFILE"] == "economy"
    assert env_of(box)["TELEGRAM_ADMIN_ID"] == "123456789"
    text = receipt(box)
    assert "PROFILE: applied (balanced → economy)" in text
    assert "TELEGRAM_ADMIN_ID: refused (the box's Telegram admin is different" in text
    assert "Platform: starts after this with the new settings" in text
    assert (root / "var/lib/clawdie-setup/adopt-summary.txt").read_text() == text


def test_a_cut_run_of_one_seed_does_not_skip_the_steps_of_another(box: Path, pg: PgCluster) -> None:
    killed = adopt(box, pg, adopt_seed(box, "PROFILE=economy"), fault="stamped:identity")
    assert killed.returncode == -9
    other = adopt(box, pg, adopt_seed(box, "TIMEZONE=Europe/Berlin"))
    assert other.returncode == 0, other.stderr
    assert os.readlink(box / "root/etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert env_of(box)["PROFILE"] == "balanced"  # the cut seed's change is not half-kept


def test_a_database_that_is_gone_fails_with_the_reason_on_the_stick(
    box: Path, pg: PgCluster
) -> None:
    pg.stop()
    path = adopt_seed(box, "PROFILE=economy")
    result = adopt(box, pg, path, timeout_ms=2000)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert receipt(box).startswith("Clawdie adopt: failed (adopt.txt)\nReason: ")
    assert env_of(box)["PROFILE"] == "balanced"


# Every point where a power cut can land in an adopt run; a few in the fast suite.
FAST_ADOPT_POINTS = {
    "effects:identity",
    "mid-write:system.env",
    "scrub:system.env",
    "before:adopt-done",
}
ADOPT_POINTS = [
    pytest.param(point, marks=() if point in FAST_ADOPT_POINTS else pytest.mark.slow)
    for point in [
        "before:identity",
        "mid-write:hostname",
        "effects:identity",
        "stamped:identity",
        "mid-write:authorized_keys",
        "effects:accounts",
        "mid-write:system.env",
        "scrub:system.env",  # the new version renamed in, the old one not yet overwritten
        "scrubbed:system.env",  # the old one overwritten, its descriptor not yet closed
        "mid-write:setup.resolved.json",
        "effects:platform-config",
        "before:database",
        "effects:database",
        "before:adopt-done",
    ]
]
CHANGES = (
    "PROFILE=economy",
    "TIMEZONE=Europe/Berlin",
    f"SSH_AUTHORIZED_KEY={RSA_2048}",
    "HOSTNAME=bobbox",
    "ALLOW_IDENTITY_CHANGE=yes",
    "OPERATOR_EMAIL=ops@example.com",
    f"OPERATOR_PASSWORD={OPERATOR_PASSWORD}",
)
AdoptedRun = tuple[dict[str, tuple[str, int, str]], dict[str, object], str]


@pytest.fixture(scope="module")
def clean_adopt(
    tmp_path_factory: pytest.TempPathFactory, pg_template: Path
) -> Iterator[AdoptedRun]:
    """A clean adopt run to compare every interrupted one against."""
    cluster = PgCluster(template=pg_template)
    try:
        cluster.init()
        cluster.start()
        box = installed_box(tmp_path_factory.mktemp("clean-adopt"), cluster)
        result = adopt(box, cluster, adopt_seed(box, *CHANGES))
        assert result.returncode == 0, result.stderr
        yield snapshot(box / "root", cluster), db_state(cluster), normalised(result.stdout, box)
    finally:
        cluster.cleanup()


def normalised(text: str, box: Path) -> str:
    return text.replace(str(box), "BOX")


@pytest.mark.parametrize("point", ADOPT_POINTS)
def test_a_power_cut_during_adopt_then_a_rerun_equals_a_clean_run(
    box: Path, pg: PgCluster, point: str, clean_adopt: AdoptedRun
) -> None:
    seed = adopt_seed(box, *CHANGES)
    killed = adopt(box, pg, seed, fault=point)
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
    env = (box / "root/etc/clawdie/system.env").read_bytes()  # the old or the new, never zeros
    assert env.startswith(b"# Written by clawdie-setup"), point
    assert b"\0" not in env, point
    finished = adopt(box, pg, seed)
    assert finished.returncode == 0, finished.stderr
    expected_tree, expected_db, expected_out = clean_adopt
    assert snapshot(box / "root", pg) == expected_tree
    assert db_state(pg) == expected_db
    # the report is the interrupted run's plan, not "kept" for what the cut run already did
    assert normalised(finished.stdout, box) == expected_out
    assert "HOSTNAME: applied" in finished.stdout
    assert not list((box / "root").rglob(".*.tmp-*"))


# --- the stick at boot or plugged in: clawdie-adopt.service ------------------------------------


def adopt_at_boot(box: Path, pg: PgCluster, seed: Path) -> subprocess.CompletedProcess[str]:
    """As the appliance's unit runs it (`--at-boot`), on a sandbox root."""
    argv = [
        sys.executable, "-m", "installer.cli", "adopt", "--at-boot",
        "--root", str(box / "root"), "--seed", str(seed), *db_cli_args(pg),
        "--platform-start", f"sh -c 'echo restarted >> {box}/restarts'",
        "--receipt-dir", str(box / "stick"),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)


def test_at_boot_a_fresh_seed_on_an_installed_box_is_left_alone(box: Path, pg: PgCluster) -> None:
    before = snapshot(box / "root", pg)
    receipt_before = receipt(box)
    result = adopt_at_boot(box, pg, box / "setup.txt")  # the fresh seed it was installed from
    assert result.returncode == 0, result.stderr
    assert "without INSTALL_MODE=adopt: ignored" in result.stdout
    assert snapshot(box / "root", pg) == before
    assert receipt(box) == receipt_before  # the stick is not written either
    assert restarts(box) == 0


def test_at_boot_a_box_not_yet_installed_leaves_the_stick_alone(
    tmp_path: Path, pg: PgCluster
) -> None:
    fresh = firstboot_box(tmp_path, SEED)
    seed = fresh / "adopt.txt"
    seed.write_text("INSTALL_MODE=adopt\nINSTALL_FINGERPRINT=0123abcd\nPROFILE=economy\n")
    result = adopt_at_boot(fresh, pg, seed)
    assert result.returncode == 0, result.stderr
    assert "first boot has not completed" in result.stdout
    assert not (fresh / "stick/SETUP-RESULT.txt").exists()


def test_at_boot_an_adopt_seed_is_applied(box: Path, pg: PgCluster) -> None:
    result = adopt_at_boot(box, pg, adopt_seed(box, "PROFILE=economy", "TELEGRAM_ADMIN_ID=555"))
    assert result.returncode == 0, result.stderr
    assert env_of(box)["PROFILE"] == "economy"
    text = receipt(box)
    assert "TELEGRAM_ADMIN_ID: refused" in text
    # the box as the operator finds it, as first boot's receipt shows it
    assert "\nThis box:\n  Version:        clawdie-setup " in text
    assert f"  Installation fingerprint: {fingerprint(box)}" in text
    assert restarts(box) == 1


def test_a_seed_stick_appearing_starts_the_adopt_unit_on_an_installed_box_only() -> None:
    """udev wants clawdie-adopt.service for the partitions the seed finder takes (by the same
    name and label); the unit runs only once first boot has completed, never on the live stick,
    and before the platform at boot."""
    from installer.media.seed_device import SEED_FS_LABEL, SEED_PART_NAME

    rules = (ROOT / "iso/overlay/etc/udev/rules.d/90-clawdie-adopt.rules").read_text()
    wants = 'ENV{SYSTEMD_WANTS}+="clawdie-adopt.service"'
    assert f'ENV{{ID_PART_ENTRY_NAME}}=="{SEED_PART_NAME}", TAG+="systemd", {wants}' in rules
    assert f'ENV{{ID_FS_LABEL}}=="{SEED_FS_LABEL}", TAG+="systemd", {wants}' in rules
    unit = (ROOT / "iso/overlay/etc/systemd/system/clawdie-adopt.service").read_text()
    lines = [line.strip() for line in unit.splitlines()]
    assert f"ConditionPathExists={TargetPaths(Path('/')).complete_stamp}" in lines
    assert "ConditionKernelCommandLine=!boot=live" in lines
    execs = [line for line in lines if line.startswith("ExecStart=")]
    assert execs[0].startswith("ExecStart=/usr/local/bin/clawdie-setup adopt --at-boot ")
    assert "--no-block try-restart clawdie.service" in execs[0]  # never waits on its own order
    # before the platform, and before the login prompts at boot (its outcome not interleaved)
    assert "Before=clawdie.service getty@tty1.service serial-getty@ttyS0.service" in lines
    assert "[Install]" not in unit  # started by udev only, never by a target


# --- a box on Wi-Fi: it keeps the key (PSK), not the password ---------------------------------

WIFI_SSID = "Clawdie Net"
WIFI = f"WIFI_SSID={WIFI_SSID}\nWIFI_PASSWORD={WIFI_PASSWORD}\nWIFI_COUNTRY=DE\n"
SUPPLICANT_CONF = "root/etc/wpa_supplicant/clawdie-wifi.conf"


def wifi_files(box: Path) -> dict[str, tuple[bytes, int, int]]:
    """The Wi-Fi's files (the supplicant's, networkd's, the unit, udev's rule, the regulatory
    domain): bytes, inode and mtime (a rewrite changes the inode, even with the same bytes)."""
    return {
        str(p.relative_to(box)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted((box / "root").rglob("*clawdie-wifi*"))
        if p.is_file()
    }


@pytest.fixture
def wifi_box(tmp_path: Path, pg: PgCluster) -> Path:
    return installed_box(tmp_path, pg, SEED + WIFI)


def test_a_box_on_wifi_adopts_a_seed_without_wifi_lines_and_keeps_its_wifi_as_it_is(
    wifi_box: Path, pg: PgCluster
) -> None:
    """The box keeps only the PSK, never the Wi-Fi password: that key stands for WIFI_PASSWORD,
    so a seed that leaves the Wi-Fi lines out goes through, and the supplicant's configuration
    is not written at all."""
    box = wifi_box
    psk = derive_psk(WIFI_PASSWORD, WIFI_SSID)
    assert f"\tpsk={psk}\n" in (box / SUPPLICANT_CONF).read_text()
    before = wifi_files(box)
    assert len(before) == 5
    result = adopt(box, pg, adopt_seed(box, "PROFILE=economy"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert env_of(box)["PROFILE"] == "economy"
    assert "PROFILE: applied (balanced → economy)" in receipt(box)
    assert "WIFI" not in result.stdout  # a key the seed leaves blank is kept as installed
    assert wifi_files(box) == before
    assert_no_secret(box, result, psk)
    # the record now says the key was kept from the installation: the next adopt reads it again
    again = adopt(box, pg, adopt_seed(box, "PROFILE=quality"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert env_of(box)["PROFILE"] == "quality"
    assert wifi_files(box) == before
    assert_no_secret(box, again, psk)


def test_a_box_on_wifi_moved_to_another_network_needs_that_networks_password(
    wifi_box: Path, pg: PgCluster
) -> None:
    box = wifi_box
    before, before_conf = snapshot(box / "root", pg), wifi_files(box)
    refused = adopt(box, pg, adopt_seed(box, "PROFILE=economy", "WIFI_SSID=Office"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    for text in (refused.stderr, receipt(box)):
        assert (
            "adopt.txt:5: WIFI_SSID: another Wi-Fi network than the box's needs its password"
            in (text)
        )
        assert "add a WIFI_PASSWORD= line with the new network's password" in text
        assert "nothing on the box was changed" in text
    assert "Traceback" not in refused.stderr
    assert snapshot(box / "root", pg) == before
    assert wifi_files(box) == before_conf
    assert restarts(box) == 0

    moved = adopt(box, pg, adopt_seed(box, "WIFI_SSID=Office", "WIFI_PASSWORD=office-pass-9"))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "WIFI_SSID: applied (Clawdie Net → Office)" in moved.stdout
    conf = (box / SUPPLICANT_CONF).read_text()
    assert f"\tssid={b'Office'.hex()}\n" in conf
    assert f"\tpsk={derive_psk('office-pass-9', 'Office')}\n" in conf
    assert_no_secret(box, moved, derive_psk("office-pass-9", "Office"))


def test_a_box_on_wifi_takes_a_new_password_for_its_network(wifi_box: Path, pg: PgCluster) -> None:
    box = wifi_box
    before = wifi_files(box)
    same = adopt(box, pg, adopt_seed(box, f"WIFI_PASSWORD={WIFI_PASSWORD}"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "WIFI_PASSWORD: kept (the box's Wi-Fi key is already this password's)" in same.stdout
    assert "nothing to change" in same.stdout
    assert wifi_files(box) == before

    new_password = f"new-{WIFI_PASSWORD}"
    result = adopt(box, pg, adopt_seed(box, "PROFILE=economy", f"WIFI_PASSWORD={new_password}"))
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [x for x in result.stdout.splitlines() if "WIFI_PASSWORD: applied (" in x]
    assert "(not shown)" in line, line
    assert env_of(box)["PROFILE"] == "economy"
    psk = derive_psk(new_password, WIFI_SSID)
    assert f"\tpsk={psk}\n" in (box / SUPPLICANT_CONF).read_text()
    assert derive_psk(WIFI_PASSWORD, WIFI_SSID) not in (box / SUPPLICANT_CONF).read_text()
    assert_no_secret(box, result, psk)


# -- adopt changes exactly what it lists ------------------------------------------------------

EMAIL_SEED = SEED + f"OPERATOR_EMAIL=op@example.com\nOPERATOR_PASSWORD={OPERATOR_PASSWORD}\n"


def records(box: Path) -> tuple[dict[str, str], dict[str, str]]:
    """system.env and setup.resolved.json's settings, key by key (the JSON as written)."""
    doc = json.loads((box / "root/etc/clawdie/setup.resolved.json").read_text())
    settings = {str(s["key"]): json.dumps(s, sort_keys=True) for s in doc["settings"]}
    return env_of(box), settings


def test_an_adopt_of_a_profile_and_a_key_keeps_the_operator_and_both_keys(
    tmp_path: Path, pg: PgCluster
) -> None:
    box = installed_box(tmp_path, pg, EMAIL_SEED)
    env_before, _ = records(box)
    assert env_before["OPERATOR_EMAIL"] == "op@example.com"
    result = adopt(box, pg, adopt_seed(box, "PROFILE=economy", f"SSH_AUTHORIZED_KEY={RSA_2048}"))
    assert result.returncode == 0, result.stderr
    env_after, json_after = records(box)
    assert env_after["OPERATOR_EMAIL"] == "op@example.com"
    assert "op@example.com" in json_after["OPERATOR_EMAIL"]
    keys = json.loads(json_after["SSH_AUTHORIZED_KEY"])["value"]
    assert ED25519.split()[1] in keys
    assert RSA_2048.split()[1] in keys
    text = receipt(box)
    assert "PROFILE: applied (balanced → economy)" in text, text


ADOPT_LINES = (
    "PROFILE=economy",
    "PROFILE=quality",
    "PROFILE=balanced",
    "TIMEZONE=Europe/Berlin",
    "LOCALE=de_DE.UTF-8",
    "KEYMAP=de",
    f"SSH_AUTHORIZED_KEY={RSA_2048}",
    f"SSH_AUTHORIZED_KEY={ED25519}",
    "LLM_FALLBACK_MODEL=anthropic/claude-sonnet-4",
    "ASSISTANT_NAME=Bea",
    "TELEGRAM_ADMIN_ID=987654321",
    f"TELEGRAM_BOT_TOKEN={NEW_TOKEN}",
    f"OPERATOR_EMAIL=other@example.com\nOPERATOR_PASSWORD={OPERATOR_PASSWORD}",  # both or none
    "ALLOW_IDENTITY_CHANGE=yes",
)


@pytest.fixture
def email_box_template(tmp_path: Path, pg: PgCluster) -> Path:
    return installed_box(tmp_path / "template", pg, EMAIL_SEED)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(
        st.sampled_from(ADOPT_LINES),
        min_size=1,
        max_size=5,
        unique_by=lambda line: line.split("=")[0],
    )
)
def test_any_adopt_changes_only_what_its_receipt_lists_as_applied(
    email_box_template: Path, pg: PgCluster, lines: list[str]
) -> None:
    """For any adopt seed: every key of system.env and setup.resolved.json stays byte-identical
    or is listed in the receipt as applied (with before → after); no secret is shown."""
    box = email_box_template.parent / "box"
    if box.exists():
        shutil.rmtree(box)
    subprocess.run(["cp", "-a", str(email_box_template), str(box)], check=True)
    env_before, json_before = records(box)
    result = adopt(box, pg, adopt_seed(box, *lines))
    assert result.returncode == 0, result.stdout + result.stderr
    env_after, json_after = records(box)
    text = receipt(box)
    applied = {
        line.split(":", 1)[0].removeprefix("  - ")
        for line in text.splitlines()
        if line.startswith("  - ") and ": applied (" in line
    }
    for key in {*env_before, *env_after}:
        if env_before.get(key) != env_after.get(key):
            assert key in applied, (key, lines)
    for key in {*json_before, *json_after}:
        if json_before.get(key) != json_after.get(key):
            assert key in applied, (key, lines)
    assert env_after["OPERATOR_EMAIL"] == "op@example.com"  # never changed by adopt
    assert SENTINEL not in text
