"""Cold start of `clawdie-setup check` against `cloud-init schema -c` on the same information.

Both validate an operator's seed offline: ours a setup.txt (seed/demo-setup.txt), cloud-init an
equivalent cloud-config (host name, time zone, locale, keyboard, a user with an SSH key, and a
write_files entry holding the tokens) that this script writes from the same seed. Each run is a
fresh process; the two commands alternate, after warm-up runs of each so the OS file cache is warm
for both. Prints each median and, as the last line, the ratio of the medians ours/theirs (issue 2
targets <= 0.35). Either command failing on its input is an error (exit 1), never a timing.

Bytecode: Debian ships cloud-init with its .pyc compiled. If PYTHONDONTWRITEBYTECODE is set, the
runs get an environment without it, so the warm-up runs leave our .pyc files where a normal first
run would (pass --keep-env to measure with the environment as it is).

Standalone, stdlib only: python3 bench/check_vs_cloud_init.py [--repeat N] [--warmup N]
(cloud-init comes from Debian: CLAWDIE_EXTRA_APT=cloud-init .ci/bootstrap; `just bench-check`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seed" / "demo-setup.txt"
TARGET = 0.35
# What the cloud-config's write_files entry carries, as the appliance would need it.
SECRET_KEYS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_ADMIN_ID",
    "OPENROUTER_API_KEY",
    "OPERATOR_EMAIL",
    "OPERATOR_PASSWORD",
)


def seed_values(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a plain, well-formed seed (the demo seed is one)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def cloud_config(seed: dict[str, str]) -> str:
    """A plausible cloud-config for the same job as the seed, in block-style YAML."""

    def q(value: str) -> str:  # a JSON string is a valid YAML double-quoted scalar
        return json.dumps(value, ensure_ascii=False)

    secrets = "".join(f"      {k}={seed[k]}\n" for k in SECRET_KEYS if k in seed)
    return (
        "#cloud-config\n"
        "hostname: zoes-helper\n"
        "fqdn: zoes-helper.local\n"
        f"timezone: {q(seed.get('TIMEZONE', 'UTC'))}\n"
        "locale: en_US.UTF-8\n"
        "keyboard:\n"
        "  layout: us\n"
        "users:\n"
        "  - name: clawdie\n"
        f"    gecos: {q(seed.get('ASSISTANT_NAME', 'Clawdie'))}\n"
        "    shell: /bin/bash\n"
        "    groups: [sudo]\n"
        "    lock_passwd: true\n"
        "    ssh_authorized_keys:\n"
        f"      - {q(seed['SSH_AUTHORIZED_KEY'])}\n"
        "write_files:\n"
        "  - path: /etc/clawdie/setup.env\n"
        "    owner: root:root\n"
        "    permissions: '0600'\n"
        "    content: |\n"
        f"{secrets}"
    )


def ensure_ok(name: str, cmd: list[str], env: dict[str, str], expect: str) -> None:
    """Run once and fail loudly unless it exits 0 and says the input is valid."""
    result = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or expect not in output:
        sys.exit(
            f"bench: {name} failed on its input (exit {result.returncode}, expected {expect!r}):\n"
            f"  $ {' '.join(cmd)}\n{output}"
        )


def wall_time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {result.returncode} during the timed runs")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of each (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument(
        "--clawdie-setup",
        type=Path,
        default=ROOT / ".venv" / "bin" / "clawdie-setup",
        help="our entry point (default .venv/bin/clawdie-setup)",
    )
    parser.add_argument(
        "--keep-env", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if it is set"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be at least 1 and --warmup at least 0")

    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        sys.exit("bench: no cloud-init; install it: CLAWDIE_EXTRA_APT=cloud-init .ci/bootstrap")
    if not args.clawdie_setup.exists():
        sys.exit(f"bench: {args.clawdie_setup} not found; run .ci/bootstrap first")

    env = dict(os.environ)
    if not args.keep_env and env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("note: PYTHONDONTWRITEBYTECODE unset for the runs (see --keep-env)", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="clawdie-bench-") as tmp:
        config = Path(tmp) / "cloud-config.yaml"
        config.write_text(cloud_config(seed_values(SEED)), encoding="utf-8")
        ours = [str(args.clawdie_setup), "check", str(SEED.relative_to(ROOT))]
        theirs = [cloud_init, "schema", "-c", str(config)]
        ensure_ok("clawdie-setup check", ours, env, ": valid")
        ensure_ok("cloud-init schema", theirs, env, "Valid cloud-config")

        for _ in range(args.warmup):
            wall_time(ours, env)
            wall_time(theirs, env)
        times: dict[str, list[float]] = {"ours": [], "theirs": []}
        for i in range(args.repeat):
            # Alternate who goes first, so neither always runs right after the other.
            pair = (("ours", ours), ("theirs", theirs))
            for name, cmd in pair if i % 2 == 0 else reversed(pair):
                times[name].append(wall_time(cmd, env))

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, label in (("ours", "clawdie-setup check"), ("theirs", "cloud-init schema -c")):
        values = times[name]
        print(
            f"{label:<22} median {medians[name] * 1e3:7.1f} ms"
            f"  (min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f}, n={len(values)})"
        )
    print(f"target: ratio <= {TARGET}")
    print(f"ratio check/cloud-init-schema: {medians['ours'] / medians['theirs']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
