"""The demo first boot (`just demo`): a throwaway PostgreSQL, a sandbox root with a minimal /etc,
a full first boot from the filled demo seed, the summary, and everything cleaned up after.

Run as root on Debian (it creates accounts inside the sandbox with Debian's tools and runs the
throwaway server as the `postgres` user). Nothing outside the temp directory is touched.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from installer.dev.sandbox import make_sandbox_root
from installer.errors import InstallerError
from installer.firstboot.config import DbConfig, FirstbootConfig

DEMO_SEED = Path(__file__).resolve().parents[2] / "seed" / "demo-setup.txt"


def probe_platform(root: Path) -> int:
    """The demo's stand-in for the platform: it starts the way the real one does, from
    system.env, and shows that the handoff works."""
    import psycopg

    from installer.envfile import parse_env_file

    env = parse_env_file((root / "etc/clawdie/system.env").read_text())
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        row = conn.execute(
            'SELECT current_user, current_database(), (SELECT count(*) FROM "user")'
        ).fetchone()
    if row is None:
        raise InstallerError("the platform stand-in got no answer from system_ops")
    print(f"platform stand-in: connected to {row[1]} as {row[0]}; dashboard users: {row[2]}")
    return 0


def run_demo(keep: bool, seed: Path = DEMO_SEED) -> int:
    from installer.dev.throwaway_pg import PgCluster, unavailable_reason
    from installer.firstboot.runner import FirstbootRun
    from installer.seed.io import receipt_in_directory

    reason = unavailable_reason()
    if reason:
        raise InstallerError(f"the demo cannot run here: {reason}", "run it as root on Debian 12")
    workdir = Path(tempfile.mkdtemp(prefix="clawdie-demo-"))
    workdir.chmod(0o711)  # the server runs as postgres and must reach its directory
    (workdir / "pg").mkdir()
    cluster = PgCluster(workdir / "pg")
    try:
        print(f"demo: throwaway PostgreSQL in {cluster.base}", file=sys.stderr)
        cluster.init()
        cluster.start()
        root = make_sandbox_root(workdir / "root")
        stick = workdir / "stick"
        stick.mkdir()
        print(f"demo: sandbox root {root}; first boot from {seed}", file=sys.stderr)
        config = FirstbootConfig(
            root=root,
            seed=seed,
            db=DbConfig(cluster.admin_conninfo(), str(cluster.sockdir), cluster.port, 30000),
            platform_start=(
                sys.executable,
                "-m",
                "installer.dev.demo",
                "--probe-platform",
                str(root),
            ),
            wizard="never",
        )
        code = FirstbootRun(config, receipt=receipt_in_directory(stick)).execute()
        if keep:
            print(f"\ndemo: files first boot wrote under {root}:", file=sys.stderr)
            for path in sorted(root.rglob("*")):
                if (
                    path.is_file()
                    and path.stat().st_mtime > (root / "etc/login.defs").stat().st_mtime
                ):
                    mode = oct(path.stat().st_mode & 0o777)[2:]
                    print(f"  {mode} /{path.relative_to(root)}", file=sys.stderr)
        print(render_closing(code, seed), file=sys.stderr)
        return code
    finally:
        cluster.cleanup()
        if keep:
            print(f"demo: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def render_closing(code: int, seed: Path) -> str:
    """The demo's last line: what happened, and what to do next."""
    if code != 0:
        return (
            f"\ndemo: first boot from {seed.name} failed (the reason is above). Next: fix the "
            f"file (clawdie-setup check {seed} lists every problem) and run the demo again."
        )
    if seed == DEMO_SEED:
        return (
            "\ndemo: first boot ran from the demo seed (made-up keys) and the platform started. "
            "Next: fill in your own setup.txt (setup.txt.example) and try it with "
            "`just demo path/to/setup.txt`, then flash a stick (clawdie-setup flash)."
        )
    return (
        f"\ndemo: first boot ran from {seed.name} and the platform started. Next: flash a stick "
        "(clawdie-setup flash), put this setup.txt on it and boot the machine from it."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installer.dev.demo", description=__doc__)
    parser.add_argument(
        "seed",
        type=Path,
        nargs="?",
        default=DEMO_SEED,
        help="the setup.txt to run first boot from (default: the demo seed, made-up keys)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the sandbox for a look (and list its files)"
    )
    parser.add_argument("--probe-platform", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.probe_platform:
        return probe_platform(args.probe_platform)
    try:
        return run_demo(args.keep, args.seed.resolve())
    except InstallerError as err:
        print(f"demo: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  hint: {err.hint}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
