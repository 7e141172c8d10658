"""What the operator needs to find and trust a box without a screen: its boot mode, its make and
model, its network interfaces, its SSH host keys, its TLS certificate (the dashboard's) and its
installation fingerprint.

Every reader takes a root (`/` on the machine; a planted tree in tests): `/sys` and `/etc` are
read below it, never from a literal path. Commands (`ip`, `ssh-keygen`) run only through
installer.run, bounded, and only where they describe that root. Never a secret: host keys are
shown as fingerprints of their public halves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import __version__
from installer.errors import InstallerError
from installer.fingerprint import read_fingerprint
from installer.fsutil import read_bytes_nofollow
from installer.paths import TargetPaths
from installer.run import run

log = logging.getLogger("clawdie.machine")

EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
COMMAND_TIMEOUT_S = 10.0
# DMI fields that mean "not filled in" on cheap boards.
_DMI_PLACEHOLDERS = {"", "to be filled by o.e.m.", "default string", "system product name", "none"}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def read_boot_mode(root: Path) -> str:
    """`UEFI, Secure Boot on|off|state unknown` or `BIOS (legacy)`, from root's /sys/firmware."""
    efi = root / "sys/firmware/efi"
    if not efi.parent.is_dir():
        return "unknown (no /sys/firmware)"
    if not efi.is_dir():
        return "BIOS (legacy)"
    var = efi / "efivars" / f"SecureBoot-{EFI_GLOBAL_GUID}"
    try:
        data = var.read_bytes()
    except OSError:
        return "UEFI, Secure Boot state unknown (no SecureBoot variable)"
    if len(data) < 5:  # 4 bytes of attributes, then the value
        return "UEFI, Secure Boot state unknown (a short SecureBoot variable)"
    state = f"UEFI, Secure Boot {'on' if data[4] == 1 else 'off'}"
    lockdown = read_lockdown(root)
    return f"{state}, kernel lockdown {lockdown}" if lockdown not in ("", "none") else state


def read_lockdown(root: Path) -> str:
    """The kernel's lockdown mode (`integrity` under Secure Boot with Debian's kernel), from
    root's /sys/kernel/security/lockdown (`none [integrity] confidentiality`); empty: unknown."""
    text = _text(root / "sys/kernel/security/lockdown")
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else ""


# Debian's signed boot chain (DESIGN §5): the packages, and the loader each puts on the ESP.
BOOT_LOADERS = (
    ("shim-signed", "usr/lib/shim/shimx64.efi.signed", "shim"),
    ("grub-efi-amd64-signed", "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "grub"),
)
DPKG_STATUS = "var/lib/dpkg/status"
_DPKG_STATUS_LIMIT = 64 << 20
_EFI_LIMIT = 32 << 20


def read_package_versions(root: Path, names: Sequence[str]) -> dict[str, str]:
    """The installed versions of `names` from root's dpkg status file (absent: not installed)."""
    try:
        text = read_bytes_nofollow(root / DPKG_STATUS, _DPKG_STATUS_LIMIT).decode(errors="replace")
    except OSError:
        return {}
    found = {}
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        name = fields.get("Package", "")
        if name in names and fields.get("Status", "").endswith(" installed"):
            found[name] = fields.get("Version", "?")
    return found


def pe_section(image: bytes, wanted: str) -> bytes | None:
    """The raw data of the PE/COFF section named `wanted` (`.sbat`), None when there is none."""
    if image[:2] != b"MZ" or len(image) < 0x40:
        return None
    pe = int.from_bytes(image[0x3C:0x40], "little")
    if image[pe : pe + 4] != b"PE\0\0":
        return None
    sections = int.from_bytes(image[pe + 6 : pe + 8], "little")
    table = pe + 24 + int.from_bytes(image[pe + 20 : pe + 22], "little")
    for index in range(sections):
        entry = image[table + 40 * index : table + 40 * (index + 1)]
        if len(entry) < 40 or entry[:8].rstrip(b"\0").decode(errors="replace") != wanted:
            continue
        virtual_size = int.from_bytes(entry[8:12], "little")
        raw_size = int.from_bytes(entry[16:20], "little")
        offset = int.from_bytes(entry[20:24], "little")
        return image[offset : offset + min(virtual_size or raw_size, raw_size)]
    return None


def read_sbat_generation(path: Path, component: str) -> str | None:
    """`shim,4`: the component's SBAT generation in the EFI binary's .sbat section (what
    firmware revocations, SbatLevel, are compared against)."""
    try:
        section = pe_section(read_bytes_nofollow(path, _EFI_LIMIT), ".sbat")
    except OSError:
        return None
    for line in (section or b"").rstrip(b"\0").decode(errors="replace").splitlines():
        fields = line.split(",")
        if len(fields) > 1 and fields[0] == component:
            return f"{component},{fields[1]}"
    return None


def read_boot_loaders(root: Path) -> str:
    """`shim-signed 1.51… (SBAT shim,4), grub-efi-amd64-signed 1+2.06… (SBAT grub,5)`: the
    signed loaders of root's ESP by package version and SBAT generation, so that a box that
    stops booting after a firmware revocation update can be matched to its loaders."""
    versions = read_package_versions(root, [name for name, _, _ in BOOT_LOADERS])
    parts = []
    for package, binary, component in BOOT_LOADERS:
        if package not in versions:
            parts.append(f"{package} not installed")
            continue
        sbat = read_sbat_generation(root / binary, component)
        parts.append(f"{package} {versions[package]} (SBAT {sbat or 'not found'})")
    return ", ".join(parts)


def read_machine_model(root: Path) -> str:
    """Vendor and product from DMI (root's /sys/class/dmi/id), as on the machine's label."""
    dmi = root / "sys/class/dmi/id"
    parts = []
    for name in ("sys_vendor", "product_name", "product_version"):
        value = " ".join(_text(dmi / name).split())
        if value.lower() not in _DMI_PLACEHOLDERS and value not in parts:
            parts.append(value)
    return " ".join(parts) or "unknown (no DMI information)"


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    addresses: tuple[str, ...] = ()
    state: str = ""


def parse_ip_addresses(text: str) -> dict[str, list[str]]:
    """`ip -json address show` -> interface name -> its addresses (`10.0.2.15/24`, ...)."""
    try:
        links = json.loads(text or "[]")
    except ValueError:
        return {}
    found: dict[str, list[str]] = {}
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or not isinstance(link.get("ifname"), str):
            continue
        found[link["ifname"]] = [
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if isinstance(a, dict) and "local" in a and "prefixlen" in a
        ]
    return found


def read_addresses(root: Path) -> dict[str, list[str]]:
    """The addresses of the running system's interfaces; {} for any other root (its network is
    not this process's) or when `ip` cannot say."""
    if root.resolve() != Path("/"):
        return {}
    try:
        result = run(["ip", "-json", "address", "show"], check=False, timeout=COMMAND_TIMEOUT_S)
    except InstallerError as err:
        log.info("machine: no addresses: %s", err.message)
        return {}
    return parse_ip_addresses(result.stdout.decode(errors="replace"))


def read_interfaces(
    root: Path, addresses: Mapping[str, Sequence[str]] | None = None
) -> list[Interface]:
    """Every network interface but loopback, with its MAC (root's /sys/class/net) and address."""
    net = root / "sys/class/net"
    if addresses is None:
        addresses = read_addresses(root)
    try:
        names = sorted(p.name for p in net.iterdir())
    except OSError:
        return []
    interfaces = []
    for name in names:
        if name == "lo":
            continue
        interfaces.append(
            Interface(
                name,
                _text(net / name / "address") or "no MAC",
                tuple(addresses.get(name, ())),
                _text(net / name / "operstate"),
            )
        )
    return interfaces


def render_interface(interface: Interface) -> str:
    addresses = ", ".join(interface.addresses) or "no address"
    state = f" ({interface.state})" if interface.state and interface.state != "up" else ""
    return f"{interface.name} {interface.mac} {addresses}{state}"


# The name `ssh-keygen -l` gives each public key type.
_SSH_KEY_KINDS = {
    "ssh-ed25519": "ED25519",
    "ssh-rsa": "RSA",
    "ssh-dss": "DSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}


def ssh_fingerprint(public_line: str) -> str | None:
    """`ssh-ed25519 AAAA... root@host` -> `ED25519 SHA256:...`, as `ssh-keygen -l` shows it:
    the unpadded base64 of the SHA-256 of the key blob. Computed here, not by ssh-keygen: the
    reports render the machine several times per run, and a process each time costs seconds
    on a slow machine."""
    words = public_line.split()
    if len(words) < 2:
        return None
    try:
        blob = base64.b64decode(words[1], validate=True)
    except ValueError:
        return None
    kind = _SSH_KEY_KINDS.get(words[0], "ECDSA" if words[0].startswith("ecdsa-") else "key")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{kind} SHA256:{digest}"


def read_ssh_fingerprints(paths: TargetPaths) -> list[str]:
    """The fingerprint of each SSH host key of the system at `paths` (its public halves)."""
    found = []
    for key in sorted(paths.ssh_dir.glob("ssh_host_*_key.pub")):
        shown = ssh_fingerprint(_text(key))
        if shown is not None:
            found.append(shown)
    return found


@dataclass(frozen=True)
class TlsFingerprint:
    """The box's TLS certificate as a browser shows it (SHA-256 of the certificate, hex pairs),
    and the SHA-256 of its public key (SPKI, base64), which Chromium's
    --ignore-certificate-errors-spki-list takes."""

    certificate: bytes
    spki: bytes

    @property
    def hex(self) -> str:
        return ":".join(f"{b:02X}" for b in self.certificate)

    @property
    def short(self) -> str:
        """The first half, for the login screen's one line (a browser shows the whole)."""
        return ":".join(f"{b:02X}" for b in self.certificate[:16]) + ":..."

    @property
    def spki_base64(self) -> str:
        return base64.b64encode(self.spki).decode()


def _der_item(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER item at `at`: its tag, where its content starts and where it ends."""
    tag, length, start = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(der[start : start + count], "big"), start + count
    if start + length > len(der):
        raise ValueError("a DER item runs past the end")
    return tag, start, start + length


def certificate_spki(der: bytes) -> bytes:
    """The subjectPublicKeyInfo of an X.509 certificate (DER), whole: the 7th field of the
    TBSCertificate, or the 6th when the version field is left out (RFC 5280, 4.1)."""
    _, body, _ = _der_item(der, 0)
    _, at, end = _der_item(der, body)
    fields = []
    while at < end:
        tag, _, after = _der_item(der, at)
        fields.append((tag, at, after))
        at = after
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("the certificate has no public key field")
    _, begin, after = fields[5]
    return der[begin:after]


def read_tls_fingerprint(paths: TargetPaths) -> TlsFingerprint | None:
    """The fingerprints of the box's TLS certificate (the dashboard's), None while there is none
    or it cannot be read as one."""
    try:
        der = ssl.PEM_cert_to_DER_cert(_text(paths.tls_cert))
        spki = certificate_spki(der)
    except (ValueError, IndexError):
        return None
    return TlsFingerprint(hashlib.sha256(der).digest(), hashlib.sha256(spki).digest())


def render_tls_lines(paths: TargetPaths) -> list[str]:
    """The summary's and the receipt's lines of the TLS certificate: what to compare with the
    browser's warning, and the key's hash for a browser told to trust this key only."""
    tls = read_tls_fingerprint(paths)
    if tls is None:
        return ["TLS certificate: none yet"]
    return [
        f"TLS certificate: SHA-256 {tls.hex}",
        f"  its key (SPKI SHA-256, base64): {tls.spki_base64}",
    ]


def read_installation_fingerprint(paths: TargetPaths) -> str:
    if not _text(paths.machine_id):
        return "not yet: the machine id is made at the first start"
    try:
        shown = read_fingerprint(paths)
    except InstallerError as err:
        return f"not yet ({err.message})"
    return f"{shown} (an adopt seed names it: INSTALL_FINGERPRINT={shown})"


def read_image_build(paths: TargetPaths) -> str:
    return " ".join(_text(paths.image_version).split()) or "a development tree (no image version)"


def render_machine_lines(
    paths: TargetPaths,
    *,
    machine_root: Path | None = None,
    disk: str | None = None,
    dashboard: str | None = None,
    addresses: Mapping[str, Sequence[str]] | None = None,
    installed: bool = True,
) -> list[str]:
    """The receipt's and the summary's description of the box: version and image, firmware,
    model, disk, network, dashboard, SSH host keys and the installation fingerprint.

    `paths` is the system installed (or being installed); `machine_root` the root whose /sys
    describes the hardware (the running system: `/`, or a planted tree in tests). Without
    `installed` (the installer before it has written a system) there are no host keys and no
    fingerprint to show: the live system's own would mislead.
    """
    hardware = paths.root if machine_root is None else machine_root
    interfaces = read_interfaces(hardware, addresses)
    ssh = read_ssh_fingerprints(paths) if installed else []
    boot_mode = read_boot_mode(hardware)
    lines = [
        f"Version:        clawdie-setup {__version__}, image {read_image_build(paths)}",
        f"Boot mode:      {boot_mode}",
        *([f"Boot loaders:   {read_boot_loaders(paths.root)}"] if boot_mode[:4] == "UEFI" else []),
        f"Machine:        {read_machine_model(hardware)}",
    ]
    if disk:
        lines.append(f"Disk:           {disk}")
    if interfaces:
        lines.append("Network:")
        lines += [f"  {render_interface(i)}" for i in interfaces]
    else:
        lines.append("Network:        no interface found")
    if dashboard:
        lines.append(f"Dashboard URL:  {dashboard}")
    if not installed:
        return lines
    if ssh:
        lines.append("SSH host keys:")
        lines += [f"  {key}" for key in ssh]
    else:
        lines.append("SSH host keys:  none yet")
    lines += render_tls_lines(paths)
    lines.append(f"Installation fingerprint: {read_installation_fingerprint(paths)}")
    return lines
