"""A minimal target root for first boot outside a real system: the demo and the tests use it.

It holds just what Debian's account tools and first boot read: passwd, group, shadow, gshadow,
hosts, locale.gen, login.defs. Everything else first boot creates itself.
"""

from __future__ import annotations

from pathlib import Path

from installer.fsutil import write_atomic

_FILES: dict[str, tuple[str, int]] = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o644,
    ),
    "etc/group": ("root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": (
        "root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n",
        0o640,
    ),
    "etc/gshadow": ("root:*::\ndaemon:*::\nnogroup:*::\n", 0o640),
    "etc/hosts": ("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
    "etc/hostname": ("debian\n", 0o644),
    "etc/locale.gen": ("# en_US.UTF-8 UTF-8\n# de_DE.UTF-8 UTF-8\n", 0o644),
    "etc/login.defs": (
        "SYS_UID_MIN 100\nSYS_UID_MAX 999\nSYS_GID_MIN 100\nSYS_GID_MAX 999\n"
        "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n",
        0o644,
    ),
}


def make_sandbox_root(root: Path) -> Path:
    """Create the minimal /etc of a Debian system under `root`; return `root`."""
    for relative, spec in _FILES.items():
        content, mode = spec
        write_atomic(root / relative, content, mode=mode)
    for directory in ("etc/ssh/sshd_config.d", "etc/default", "etc/issue.d", "var/lib"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return root
