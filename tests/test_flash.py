"""`clawdie-setup flash` onto loop devices: what is written reads back identical, and refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from installer import cli
from installer.fsutil import file_sha256
from installer.media import flash
from installer.media.blockdev import read_mounts
from installer.media.flash_io import BLOCK, VerifyError, verify_device, write_image
from installer.progress import NullProgress, RichProgress
from tests.helpers.loopdev import MIB, Part, loop_disk, loop_file
from tests.helpers.seeds import valid

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("loop_devices")]


def make_image(path: Path, size: int = 24 * MIB) -> Path:
    """Random data with zero stretches: whole zero blocks, and a short tail not block aligned."""
    rng = hashlib.sha256(b"clawdie")
    data = bytearray()
    while len(data) < size:
        rng = hashlib.sha256(rng.digest())
        data += rng.digest() * 128
    data = data[:size]
    data[BLOCK : 3 * BLOCK] = bytes(2 * BLOCK)  # two all-zero blocks
    path.write_bytes(bytes(data) + b"tail" * 1000)  # 4000 bytes past the last block
    return path


def fill(node: str, size: int, byte: bytes) -> None:
    with open(node, "r+b") as handle:
        handle.write(byte * size)
        handle.flush()
        os.fsync(handle.fileno())


def device_bytes(node: str, size: int) -> bytes:
    fd = os.open(node, os.O_RDONLY)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def flash_cli(*argv: str) -> int:
    return cli.main(["flash", *argv, "--yes", "--allow-non-removable"])


@pytest.mark.parametrize("previous", [b"\x00", b"\xa5"])
def test_device_reads_back_identical(tmp_path: Path, previous: bytes) -> None:
    image = make_image(tmp_path / "clawdie.img")
    size = image.stat().st_size
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        fill(stick.node, 40 * MIB, previous)
        result = write_image(image, stick.node, NullProgress())
        verify_device(stick.node, size, result, NullProgress())
        assert device_bytes(stick.node, size) == image.read_bytes()
    # Zero blocks are skipped only where the stick already held zeros.
    assert result.skipped == (2 if previous == b"\x00" else 0)


def test_cli_writes_verifies_and_checks_sha256_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    digest = file_sha256(image)
    (tmp_path / "clawdie.img.sha256").write_text(f"{digest}  clawdie.img\n")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert flash_cli(str(image), stick.node) == 0
        assert device_bytes(stick.node, image.stat().st_size) == image.read_bytes()
    out = capsys.readouterr().out
    assert "written and verified" in out
    assert "image checksum matched .sha256" in out


def test_the_kernel_sees_the_flashed_partitions_and_the_next_step_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "clawdie.img"
    with image.open("wb") as handle:
        handle.truncate(8 * MIB)
    subprocess.run(  # a GPT with a seed partition, as the installer image has
        ["sgdisk", "--new=1:2048:+4M", "--change-name=1:CLAWDIE-SEED", str(image)],
        check=True,
        capture_output=True,
    )
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert not Path(f"{stick.node}p1").exists()  # a blank stick: no partition yet
        assert flash_cli(str(image), stick.node) == 0
        assert Path(f"{stick.node}p1").exists()  # no unplugging needed to open it
    out = capsys.readouterr().out
    assert "You can remove the stick" not in out
    assert (
        out.rstrip()
        .splitlines()[-1]
        .startswith(
            "Next: open the stick's CLAWDIESEED drive on any computer, fill in the first lines of "
            "setup.txt"
        )
    )


def test_damaged_image_is_caught_by_its_sha256_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    (tmp_path / "clawdie.img.sha256").write_text(f"{'0' * 64}  clawdie.img\n")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert flash_cli(str(image), stick.node) == 1
    assert "does not match clawdie.img.sha256" in capsys.readouterr().err


def test_corrupted_readback_is_detected(tmp_path: Path) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        result = write_image(image, stick.node, NullProgress())
        offset = 5 * BLOCK + 12345
        with open(stick.node, "r+b") as handle:
            handle.seek(offset)
            old = handle.read(1)
            handle.seek(offset)
            handle.write(bytes([old[0] ^ 0x01]))
            handle.flush()
            os.fsync(handle.fileno())
        with pytest.raises(VerifyError, match="does not read back") as caught:
            verify_device(stick.node, image.stat().st_size, result, NullProgress())
    assert f"{5 * BLOCK:,} to {6 * BLOCK:,}" in caught.value.message


def test_sparse_leaves_zero_blocks_alone_and_still_verifies(tmp_path: Path) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        fill(stick.node, 40 * MIB, b"\xa5")
        assert flash_cli(str(image), stick.node, "--sparse") == 0
        on_stick = device_bytes(stick.node, image.stat().st_size)
    assert on_stick[BLOCK : 3 * BLOCK] == b"\xa5" * (2 * BLOCK)
    assert on_stick[3 * BLOCK :] == image.read_bytes()[3 * BLOCK :]


def test_json_progress_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert flash_cli(str(image), stick.node, "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    phases = [(line["event"], line.get("phase")) for line in lines]
    assert phases[0] == ("start", "write")
    assert ("end", "verify") in phases
    assert lines[-1]["event"] == "done"
    assert lines[-1]["verified"] is True


def test_ctrl_c_says_the_stick_is_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")

    def interrupt(_self: RichProgress, done: int) -> None:
        if done > 2 * BLOCK:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichProgress, "advance", interrupt)
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert flash_cli(str(image), stick.node) == 130
        # The writer let go of the device: an exclusive open works again.
        os.close(os.open(stick.node, os.O_WRONLY | os.O_EXCL))
    err = capsys.readouterr().err
    assert "is incomplete and will not boot" in err


def test_list_shows_the_loop_device_with_its_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert cli.main(["flash", str(image)]) == 0
        listed = capsys.readouterr().out
        assert cli.main(["flash", str(image), "--allow-non-removable", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["devices"]
    line = next(line for line in listed.splitlines() if line.startswith(stick.node + " "))
    assert "41.9 MB" in line
    assert "not a removable disk" in line
    row = next(row for row in rows if row["device"] == stick.node)
    assert row["refusals"] == []
    assert row["size"] == 40 * MIB


def test_refuses_a_too_small_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 16 * MIB) as stick:
        assert flash_cli(str(image), stick.node) == 1
    err = capsys.readouterr().err
    assert "holds 16.8 MB, the image needs 25.2 MB" in err


def test_refuses_a_device_with_a_mounted_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_disk(tmp_path, [Part(None, fs=None)], size_mib=64) as disk:
        subprocess.run(["mkfs.ext4", "-q", disk.parts[0]], check=True)
        with tempfile.TemporaryDirectory() as mount_point:
            subprocess.run(["mount", disk.parts[0], mount_point], check=True)
            try:
                assert flash_cli(str(image), disk.node) == 1
                assert flash_cli(str(image), disk.parts[0]) == 1
            finally:
                subprocess.run(["umount", mount_point], check=True)
    err = capsys.readouterr().err
    assert f"{disk.node} has mounted file systems ({mount_point}); unmount them" in err
    assert f"{disk.parts[0]} is a partition; give the whole disk {disk.node}" in err


def test_refuses_a_non_removable_device_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert cli.main(["flash", str(image), stick.node, "--yes"]) == 1
    err = capsys.readouterr().err
    assert "is not a removable disk" in err
    assert "add --allow-non-removable" in err


def test_refuses_the_system_disk_even_with_every_flag(tmp_path: Path) -> None:
    """Checked without writing: the test must never be able to touch the system disk."""
    system = flash.read_system_disks(read_mounts())
    if not system:
        pytest.skip("/ is not on a block device here")
    image_size = make_image(tmp_path / "clawdie.img").stat().st_size
    for node in sorted(system):
        state = flash.read_target(node)
        with pytest.raises(flash.FlashRefusedError, match="holds the running system") as caught:
            flash.ensure_target_allowed(state, image_size, allow_non_removable=True)
        assert "--allow-non-removable" not in (caught.value.hint or "")


def test_no_terminal_and_no_yes_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = make_image(tmp_path / "clawdie.img")
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115
    with loop_file(tmp_path / "stick.bin", 40 * MIB) as stick:
        assert cli.main(["flash", str(image), stick.node, "--allow-non-removable"]) == 2
    assert "add --yes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "digest"),
    [
        (f"{'a' * 64}  clawdie.img\n", "a" * 64),
        (f"{'B' * 64} *clawdie.img\n", "b" * 64),
        (f"{'c' * 64}\n", "c" * 64),
        (f"{'d' * 64}  other.img\n{'e' * 64}  dist/clawdie.img\n", "e" * 64),
        (f"{'f' * 64}  other.img\n", None),
    ],
)
def test_parse_sha256_file(text: str, digest: str | None) -> None:
    assert flash.parse_sha256_file(text, "clawdie.img") == digest


def seed_stick_image(path: Path) -> Path:
    """An image shaped like the installer's for the seed: a GPT with a FAT partition labelled
    CLAWDIESEED holding the example setup.txt."""
    with path.open("wb") as handle:
        handle.truncate(48 * MIB)
    subprocess.run(
        ["sgdisk", "--new=1:2048:+40M", "--change-name=1:CLAWDIE-SEED", str(path)],
        check=True,
        capture_output=True,
    )
    offset = 2048 * 512
    with tempfile.TemporaryDirectory() as staging:
        fat = Path(staging) / "fat.img"
        with fat.open("wb") as handle:
            handle.truncate(40 * MIB)
        subprocess.run(["mkfs.vfat", "-F", "32", "-n", "CLAWDIESEED", str(fat)], check=True,
                       capture_output=True)  # fmt: skip
        example = Path(staging) / "setup.txt"
        example.write_bytes(b"# fill me in\n")
        subprocess.run(["mcopy", "-i", str(fat), str(example), "::setup.txt"], check=True,
                       env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
        with path.open("r+b") as out:
            out.seek(offset)
            out.write(fat.read_bytes())
    return path


def read_stick_seed(node: str) -> bytes:
    proc = subprocess.run(
        ["mcopy", "-n", "-i", f"{node}@@{2048 * 512}", "::setup.txt", "-"],
        capture_output=True,
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
    return proc.stdout


def test_flash_with_a_seed_writes_the_checked_seed_onto_the_seed_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = seed_stick_image(tmp_path / "clawdie.img")
    seed = tmp_path / "setup.txt"
    seed.write_bytes(valid())
    with loop_file(tmp_path / "stick.bin", 64 * MIB) as stick:
        assert flash_cli(str(image), stick.node, "--seed", str(seed)) == 0
        assert read_stick_seed(stick.node) == seed.read_bytes()
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == flash.SEEDED_NEXT_STEP


def test_flash_with_an_invalid_seed_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = seed_stick_image(tmp_path / "clawdie.img")
    seed = tmp_path / "setup.txt"
    seed.write_text("TELEGRAM_ADMIN_ID=forty-two\n")
    with loop_file(tmp_path / "stick.bin", 64 * MIB) as stick:
        fill(stick.node, MIB, b"\xa5")
        assert flash_cli(str(image), stick.node, "--seed", str(seed)) == 1
        assert device_bytes(stick.node, MIB) == b"\xa5" * MIB  # not erased
    err = capsys.readouterr().err
    assert "setup.txt:1: TELEGRAM_ADMIN_ID" in err
    assert "problem(s) to fix; nothing was written" in err
