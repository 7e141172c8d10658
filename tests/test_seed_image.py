"""`clawdie-setup seed image`: a real FAT32 image checked with fsck.vfat, blkid and mtools."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from installer import cli
from installer.media import seed_image
from installer.media.check_page import render_check_page
from installer.media.seed_image import parse_size, source_root
from tests.helpers.sentinels import OPENROUTER, SENTINEL

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mkfs.vfat", "fsck.vfat", "mcopy", "mtype", "blkid")),
    reason="needs dosfstools, mtools and blkid",
)


def build(out: Path, *extra: str, epoch: str | None = "1700000000") -> None:
    env = {} if epoch is None else {"SOURCE_DATE_EPOCH": epoch}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SOURCE_DATE_EPOCH", raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        assert cli.main(["seed", "image", str(out), *extra]) == 0


def mtype(image: Path, name: str) -> bytes:
    return subprocess.run(
        ["mtype", "-i", str(image), f"::{name}"],
        capture_output=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout


def test_image_is_clean_fat32_with_label_and_files(tmp_path: Path) -> None:
    out = tmp_path / "seed.img"
    build(out)
    assert out.stat().st_size == 64 * 1024 * 1024
    fsck = subprocess.run(["fsck.vfat", "-n", str(out)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    probe = subprocess.run(
        ["blkid", "-p", "-o", "export", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "LABEL=CLAWDIESEED" in probe.splitlines()
    assert "TYPE=vfat" in probe.splitlines()
    assert "VERSION=FAT32" in probe.splitlines()
    assert mtype(out, "setup.txt") == (source_root() / "setup.txt.example").read_bytes()
    assert mtype(out, "README.txt") == (source_root() / "seed" / "README.txt").read_bytes()
    assert mtype(out, "CHECK-SETUP.html") == render_check_page()


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "one.img", tmp_path / "two.img"
    build(first)
    time.sleep(2.1)  # FAT times have 2-second steps: a clock leak would show.
    build(second)
    assert first.read_bytes() == second.read_bytes()


def test_source_date_epoch_sets_file_times_and_volume_id(tmp_path: Path) -> None:
    build(tmp_path / "a.img", epoch="1700000000")
    build(tmp_path / "b.img", epoch="1710000000")
    listing = subprocess.run(
        ["mdir", "-i", str(tmp_path / "b.img"), "::"],
        capture_output=True,
        text=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "2024-03-09" in listing
    assert (tmp_path / "a.img").read_bytes() != (tmp_path / "b.img").read_bytes()


def test_from_file_is_used_and_the_image_is_private(tmp_path: Path) -> None:
    filled = tmp_path / "filled.txt"
    filled.write_bytes(b"TELEGRAM_ADMIN_ID=42\r\n")
    out = tmp_path / "seed.img"
    build(out, "--from", str(filled), "--size", "40M", "--incomplete")
    assert mtype(out, "setup.txt") == b"TELEGRAM_ADMIN_ID=42\r\n"
    assert out.stat().st_size == 40 * 1024 * 1024
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "10M"], "is not possible"),
        (["--size", "lots"], "cannot read size"),
        (["--from", "missing.txt"], "does not exist"),
    ],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / a) if a.endswith(".txt") else a for a in argv]
    assert cli.main(["seed", "image", str(tmp_path / "seed.img"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.img"))


def test_missing_template_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "README.txt").write_text("hello\n")
    monkeypatch.setattr(seed_image, "source_root", lambda: tmp_path)
    assert cli.main(["seed", "image", str(tmp_path / "seed.img")]) == 2
    assert "setup.txt.example does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "size"),
    [("64M", 64 << 20), ("64MiB", 64 << 20), ("100k", 100 << 10), ("1G", 1 << 30), ("512", 512)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_an_invalid_seed_is_refused_with_checks_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = tmp_path / "setup.txt"
    filled.write_bytes(f"TELEGRAM_ADMIN_ID=42\r\nOPENROUTER_API_KEY={OPENROUTER}\r\n".encode())
    out = tmp_path / "seed.img"
    assert cli.main(["seed", "image", str(out), "--from", str(filled)]) == 1
    err = capsys.readouterr().err
    assert "setup.txt: TELEGRAM_BOT_TOKEN: required, but not set" in err
    assert "no seed image was written" in err
    assert SENTINEL not in err
    assert not out.exists()
    valid_seed = source_root() / "seed" / "demo-setup.txt"
    build(out, "--from", str(valid_seed))
    assert mtype(out, "setup.txt") == valid_seed.read_bytes()
