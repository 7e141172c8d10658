"""Entry points. The one place that catches our errors and turns them into exit codes and messages.

Exit codes: installer/status.py (the README's "Status and exit codes" table). Subcommand modules
are imported lazily (see `installer.commands`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from installer.errors import InstallerError

# name -> module under installer.commands. Keep the order: it is the order of `--help`.
COMMANDS: dict[str, str] = {
    "check": "check",
    "seed": "seed",
    "flash": "flash",
    "install": "install",
    "wizard": "wizard",
    "firstboot": "firstboot",
    "adopt": "adopt",
    "adopt-code": "adopt_code",
    "install-platform": "install_platform",
    "update": "update",
    "rollback": "rollback",
    "wait-db": "wait_db",
    "telegram-retry": "telegram_retry",
    "renew-boot-loader": "renew_boot_loader",
    "set-operator": "set_operator",
    "backup": "backup",
    "restore": "restore",
    "factory-reset": "factory_reset",
    "upkeep": "upkeep",
}


class CommandModule(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(f"installer.commands.{COMMANDS[name]}"))


def _usage() -> str:
    lines = ["usage: clawdie-setup COMMAND [options]", "", "commands:"]
    for name in COMMANDS:
        lines.append(f"  {name:<14} {_load(name).HELP}")
    lines.append("")
    lines.append("Run `clawdie-setup COMMAND --help` for a command's options.")
    return "\n".join(lines)


def _configure_logging(verbose: bool) -> None:
    from installer.redact import add_filter

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        add_filter(handler)
        # the level is the handler's too: a run's log bundle turns our loggers to DEBUG for
        # itself, and that must not reach the console unless -v asked for it
        handler.setLevel(logging.DEBUG if verbose else logging.INFO)


def run_command(name: str, argv: Sequence[str]) -> int:
    """Parse `argv` for command `name`, run it, and map our errors to an exit code."""
    module = _load(name)
    parser = argparse.ArgumentParser(prog=f"clawdie-setup {name}", description=module.HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    module.add_arguments(parser)
    args = parser.parse_args(list(argv))
    _configure_logging(args.verbose)
    try:
        code = module.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # `check --json | head`: the reader has what it wanted. Quiet, and nothing more is
        # written to the closed pipe (the interpreter's own flush at exit would complain).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE
    except InstallerError as err:
        if not err.on_screen:
            print(f"clawdie-setup {name}: error: {err.message}", file=sys.stderr)
            if err.hint:
                print(f"  hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"clawdie-setup {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last boundary: a fault of ours, never a traceback on screen
        from installer.redact import redact

        logging.getLogger("clawdie").debug("internal error", exc_info=True)
        print(
            f"clawdie-setup {name}: internal error: {type(err).__name__}: {redact(str(err))}",
            file=sys.stderr,
        )
        print(
            "  hint: this is a fault in the installer; run again with -v to log the details "
            "(secrets are masked) and report it",
            file=sys.stderr,
        )
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    if args[0] in {"--version", "version"}:
        from installer import __version__

        print(f"clawdie-setup {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"clawdie-setup: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return run_command(args[0], args[1:])


def set_operator_main() -> int:
    """`set-operator EMAIL`: the same as `clawdie-setup set-operator EMAIL`."""
    return main(["set-operator", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
