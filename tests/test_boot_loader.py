"""The installed system's boot loader files the installer writes itself: grub.cfg from the
image's /etc/default/grub (checked by grub's own parser) and the EFI fallback copy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from installer.errors import InstallerError
from installer.install import system
from installer.paths import TargetPaths

REPO = Path(__file__).resolve().parent.parent
IMAGE_GRUB_DEFAULTS = REPO / "iso/overlay/etc/default/grub"
UUID = "0b6a4c1e-7d2f-4e53-9c1b-3f1f2a9d8e77"
RELEASE = "6.1.0-50-amd64"


def image_defaults() -> dict[str, str]:
    return system.read_grub_defaults(IMAGE_GRUB_DEFAULTS.read_text())


def test_grub_defaults_are_read_as_shell_words() -> None:
    text = (
        "# a comment\n"
        "GRUB_DEFAULT=0\n"
        'GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 console=tty0"\n'
        "GRUB_DISTRIBUTOR='Clawdie'  # trailing comment\n"
        "export GRUB_IGNORED=1\n"
        "not a setting\n"
    )
    assert system.read_grub_defaults(text) == {
        "GRUB_DEFAULT": "0",
        "GRUB_CMDLINE_LINUX": "console=ttyS0,115200n8 console=tty0",
        "GRUB_DISTRIBUTOR": "Clawdie",
    }


def test_grub_cfg_from_the_images_defaults_boots_the_root_by_uuid() -> None:
    defaults = image_defaults()
    cfg = system.render_grub_cfg(defaults, UUID, RELEASE)
    lines = [line.strip() for line in cfg.splitlines()]
    # the menu on the screen and on the serial port, for the image's timeout
    assert defaults["GRUB_SERIAL_COMMAND"] in lines
    assert "terminal_input console serial" in lines
    assert "terminal_output console serial" in lines
    assert f"set timeout={defaults['GRUB_TIMEOUT']}" in lines
    assert f"search --no-floppy --fs-uuid --set=root {UUID}" in lines
    linux = [line for line in lines if line.startswith("linux ")]
    assert linux == [
        f"linux /boot/vmlinuz-{RELEASE} root=UUID={UUID} ro {defaults['GRUB_CMDLINE_LINUX']}",
        f"linux /boot/vmlinuz-{RELEASE} root=UUID={UUID} ro single "
        f"{defaults['GRUB_CMDLINE_LINUX']}",
    ]
    assert lines.count(f"initrd /boot/initrd.img-{RELEASE}") == 2
    assert "menuentry 'Clawdie' --id clawdie {" in lines


def test_grub_cfg_passes_grubs_own_syntax_check(tmp_path: Path) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(system.render_grub_cfg(image_defaults(), UUID, RELEASE))
    subprocess.run(["grub-script-check", str(cfg)], check=True)
    # and the check can fail: an unclosed entry is refused
    cfg.write_text(cfg.read_text().rstrip().removesuffix("}") + "\n")
    broken = subprocess.run(["grub-script-check", str(cfg)], capture_output=True, check=False)
    assert broken.returncode != 0


def test_grub_cfg_is_written_for_the_copied_kernel(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    (tmp_path / f"usr/lib/modules/{RELEASE}").mkdir(parents=True)
    (tmp_path / "boot").mkdir()
    (tmp_path / f"boot/vmlinuz-{RELEASE}").write_bytes(b"kernel")
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/grub").write_text(IMAGE_GRUB_DEFAULTS.read_text())
    (tmp_path / "boot/grub").mkdir()
    system.write_grub_cfg(paths, UUID)
    assert paths.grub_cfg.read_text() == system.render_grub_cfg(image_defaults(), UUID, RELEASE)


def test_grub_cfg_without_a_kernel_is_an_install_error(tmp_path: Path) -> None:
    (tmp_path / f"usr/lib/modules/{RELEASE}").mkdir(parents=True)
    with pytest.raises(InstallerError, match="no kernel"):
        system.write_grub_cfg(TargetPaths(tmp_path), UUID)


def test_the_signed_chain_is_copied_to_the_fallback_path(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    installed = paths.esp_dir / "EFI/clawdie"
    installed.mkdir(parents=True)
    for name in ("shimx64.efi", "grubx64.efi", "mmx64.efi", "grub.cfg"):
        (installed / name).write_bytes(f"{name} as grub-install wrote it".encode())
    # what an older install (or --force-extra-removable) left there is replaced
    (paths.esp_dir / "EFI/BOOT").mkdir(parents=True)
    (paths.esp_dir / "EFI/BOOT/BOOTX64.EFI").write_bytes(b"MZ unsigned grub image")
    system.copy_efi_removable(paths)
    removable = paths.esp_dir / "EFI/BOOT"
    # shim at the path firmware starts, the signed GRUB and MokManager beside it
    assert (removable / "BOOTX64.EFI").read_bytes() == b"shimx64.efi as grub-install wrote it"
    for name in ("grubx64.efi", "mmx64.efi", "grub.cfg"):
        assert (removable / name).read_bytes() == (installed / name).read_bytes()
    assert not (removable / "fbx64.efi").exists(), "no fallback loader: it writes a boot entry"


def test_a_missing_signed_loader_is_an_install_error(tmp_path: Path) -> None:
    paths = TargetPaths(tmp_path)
    installed = paths.esp_dir / "EFI/clawdie"
    installed.mkdir(parents=True)
    (installed / "grubx64.efi").write_bytes(b"MZ unsigned core image")  # no shim: unsigned
    (installed / "grub.cfg").write_text("configfile /boot/grub/grub.cfg\n")
    with pytest.raises(InstallerError, match=r"no shimx64\.efi, mmx64\.efi") as err:
        system.copy_efi_removable(paths)
    assert "shim-signed" in (err.value.hint or "")
    assert not (paths.esp_dir / "EFI/BOOT").exists()
