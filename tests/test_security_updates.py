"""Debian's security fixes, unattended (issue 23, DESIGN §9): the image's apt configuration, as
apt itself reads it after Debian's own 50unattended-upgrades, allows the Debian-Security origin
and nothing else, reboots at the window's start, and the upgrade timer fires inside the window
(04:00-05:00, UPDATE_WINDOW's default) on the installed system only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.apt_repo import DEBIANS, apt_config, unit

REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "iso/overlay/etc"


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="apt-config is Debian's")
def test_only_the_debian_security_origin_is_upgraded_unattended(tmp_path: Path) -> None:
    parts = tmp_path / "apt.conf.d"
    parts.mkdir()
    (parts / "50unattended-upgrades").write_text(DEBIANS)
    for path in (OVERLAY / "apt/apt.conf.d").iterdir():
        shutil.copy(path, parts / path.name)
    config = apt_config(parts)
    assert config["Unattended-Upgrade::Origins-Pattern::"] == [
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
        "origin=Debian,codename=${distro_codename},label=Debian-Security",
    ]
    assert config["APT::Periodic::Update-Package-Lists"] == ["1"]
    assert config["APT::Periodic::Unattended-Upgrade"] == ["1"]
    assert config["Unattended-Upgrade::Automatic-Reboot"] == ["true"]
    assert config["Unattended-Upgrade::Automatic-Reboot-Time"] == ["04:00"]


def test_the_upgrade_timer_fires_inside_the_window() -> None:
    timer = unit(OVERLAY / "systemd/system/apt-daily-upgrade.timer.d/clawdie-window.conf")
    assert timer["Timer"]["OnCalendar"].splitlines()[-1] == "*-*-* 04:00"
    delay = timer["Timer"]["RandomizedDelaySec"]
    assert delay.endswith("min")
    assert int(delay.removesuffix("min")) < 60
    assert timer["Timer"]["Persistent"] == "true"


def test_the_installer_stick_never_updates_itself() -> None:
    for name in ("apt-daily.service.d", "apt-daily-upgrade.service.d"):
        dropin = unit(OVERLAY / "systemd/system" / name / "clawdie-not-live.conf")
        assert dropin["Unit"]["ConditionKernelCommandLine"] == "!boot=live"


def test_the_image_has_unattended_upgrades() -> None:
    packages = (REPO / "iso/packages.txt").read_text().splitlines()
    assert any(line.split("#")[0].strip() == "unattended-upgrades" for line in packages)
