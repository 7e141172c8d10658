"""What someone who later gets the box's disk finds on it (issue 27): a root on a real ext4 file
system on a loop device, the seed copy placed and synced as the disk installer leaves it, first
boot from that copy against a real PostgreSQL, then the raw image searched, freed blocks
included, for every plaintext password of the seed (and, after an adopt that replaces a provider
key, for the old key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.paths import TargetPaths
from tests.helpers.adopt import adopt, adopt_seed, code_on_receipt, receipt
from tests.helpers.disk_image import raw_counts
from tests.helpers.firstboot import firstboot
from tests.helpers.loopdev import ext4_at, sh
from tests.helpers.pg import PgCluster
from tests.helpers.raw_disk import installed_on_ext4
from tests.helpers.sentinels import OPENROUTER, OPERATOR_PASSWORD, USER_PASSWORD, WIFI_PASSWORD

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("loop_devices")]

NEW_OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 3
PASSWORDS = {
    "operator password": OPERATOR_PASSWORD,
    "fallback password": USER_PASSWORD,
    "Wi-Fi password": WIFI_PASSWORD,
}


def test_no_plaintext_password_on_the_raw_disk_after_first_boot_adopt_and_a_rerun(
    tmp_path: Path, pg: PgCluster
) -> None:
    with installed_on_ext4(tmp_path) as (box, image):
        (box / "setup.txt").unlink()  # first boot reads the copy the installer left
        result = firstboot(box, pg, seed_file=False)
        assert result.returncode == 0, result.stderr
        assert not TargetPaths(box / "root").seed_copy.exists()
        sh("sync")
    # the adopt code the receipt showed its owner, for the adopt seed below
    (box / "owner-code").write_text(code_on_receipt(receipt(box)))
    after_first_boot = raw_counts(image, PASSWORDS)

    with ext4_at(image, box / "root"):
        seed = adopt_seed(box, f"OPENROUTER_API_KEY={NEW_OPENROUTER}")
        adopted = adopt(box, pg, seed)
        assert adopted.returncode == 0, adopted.stdout + adopted.stderr
        env = (box / "root/etc/clawdie/system.env").read_text()
        assert NEW_OPENROUTER in env
        assert OPENROUTER not in env
    after_adopt = raw_counts(image, {**PASSWORDS, "the replaced OpenRouter key": OPENROUTER})
    assert raw_counts(image, {"new": NEW_OPENROUTER})["new"] >= 1  # the search finds what is there

    with ext4_at(image, box / "root"):
        again = firstboot(box, pg, seed_file=False)
        assert again.returncode == 0, again.stderr
    after_rerun = raw_counts(image, PASSWORDS)

    counts = (after_first_boot, after_adopt, after_rerun)
    none = dict.fromkeys(PASSWORDS, 0)
    expected = (none, {**none, "the replaced OpenRouter key": 0}, none)
    assert counts == expected, f"after first boot, adopt, a rerun: {counts}"
