"""The image build refuses an unsigned EFI binary on either ESP (DESIGN §5: Secure Boot on).

Real parts: a FAT ESP image made by the build's own `write_esp` (mkfs.vfat, mtools), GRUB's
`grub-mkimage` for an unsigned EFI binary (today's loader before the signed chain), and Debian's
sbsigntool, which signs a copy with a throwaway key so that the check is seen to pass too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from installer.errors import InstallerError
from tests.helpers.image import load_build

EPOCH = 1704067200


build = load_build()


@pytest.fixture(scope="module")
def loaders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An unsigned EFI binary (grub-mkimage) and the same binary signed (sbsign)."""
    for tool in ("grub-mkimage", "sbsign", "sbverify", "openssl", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}: run .ci/bootstrap")
    work = tmp_path_factory.mktemp("efi")
    unsigned = work / "unsigned.efi"
    subprocess.run(
        ["grub-mkimage", "-O", "x86_64-efi", "-p", "/boot/grub", "-o", str(unsigned), "echo"],
        check=True,
    )
    key, cert = work / "test.key", work / "test.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=Clawdie test signer", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    signed = work / "signed.efi"
    subprocess.run(
        ["sbsign", "--key", str(key), "--cert", str(cert), "--output", str(signed),
         str(unsigned)],
        check=True, capture_output=True,
    )  # fmt: skip
    return unsigned, signed


def test_signatures_are_read_with_sbverify(loaders: tuple[Path, Path]) -> None:
    unsigned, signed = loaders
    assert build.efi_signatures(unsigned) == []
    assert build.efi_signatures(signed) == ["/CN=Clawdie test signer"]
    not_pe = unsigned.with_name("not-pe.efi")
    not_pe.write_bytes(b"not a PE image")
    assert build.efi_signatures(not_pe) == []


def test_stick_esp_with_signed_loaders_is_written(
    loaders: tuple[Path, Path], tmp_path: Path
) -> None:
    _, signed = loaders
    cfg = tmp_path / "grub.cfg"
    cfg.write_text("configfile /boot/grub/grub.cfg\n")
    files = [("EFI/BOOT/BOOTX64.EFI", signed), ("EFI/BOOT/grub.cfg", cfg)]
    esp = build.write_esp(tmp_path / "esp.img", files, EPOCH)
    listing = subprocess.run(
        ["mdir", "-/", "-b", "-i", str(esp), "::"],
        capture_output=True, text=True, check=True, env={"MTOOLS_SKIP_CHECK": "1"},
    ).stdout  # fmt: skip
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing
    assert "::/EFI/BOOT/grub.cfg" in listing


@pytest.mark.parametrize("name", ["EFI/BOOT/grubx64.efi", "EFI/BOOT/BOOTX64.EFI", "loader.bin"])
def test_an_unsigned_efi_binary_on_the_stick_esp_fails_the_build(
    loaders: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    """By its name (any case) or by its content (a PE image named otherwise)."""
    unsigned, signed = loaders
    files = [("EFI/BOOT/BOOTX64.EFI", signed), (name, unsigned)]
    if name == "EFI/BOOT/BOOTX64.EFI":
        files = [(name, unsigned)]
    with pytest.raises(InstallerError, match="without an Authenticode signature") as err:
        build.write_esp(tmp_path / "esp.img", files, EPOCH)
    assert name in err.value.message
    assert "no unsigned fallback" in (err.value.hint or "")


def plant_root(root: Path, signed: Path) -> None:
    for name in build.INSTALLED_ESP_SOURCES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(signed, root / name)


def test_installed_esp_sources_must_be_signed(loaders: tuple[Path, Path], tmp_path: Path) -> None:
    unsigned, signed = loaders
    plant_root(tmp_path, signed)
    build.check_installed_esp_sources(tmp_path)
    grub = tmp_path / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
    shutil.copyfile(unsigned, grub)
    with pytest.raises(InstallerError, match="installed system's ESP: EFI binary without"):
        build.check_installed_esp_sources(tmp_path)
    grub.unlink()
    with pytest.raises(InstallerError, match="lacks the signed boot loaders"):
        build.check_installed_esp_sources(tmp_path)
