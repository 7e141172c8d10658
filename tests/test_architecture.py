"""The rooms of installer/ and the doors between them, read from the real source files (issues 11
and 28).

Every `import` and `from ... import` of every module is collected with `ast`, including the lazy
ones inside functions, and checked against these rules:

- each module belongs to one room (`ROOMS`, the README's room table as data) and imports only
  the rooms its room may use (`MAY_USE`); the table itself has no cycle;
- no import cycle between modules, lazy imports included;
- a first-boot step never imports another step (shared helpers live in installer/firstboot);
- a command never imports another command (`_`-named modules of installer/commands are the
  command layer's private helpers, not commands);
- nothing but installer/dev and tests imports the development-only installer.dev.

A second group runs the CLI in a fresh interpreter to check that the database modules stay lazy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from installer.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("installer", "bench", "iso")  # tests may import anything

# Known breaks of a rule, each with the change that removes it. A listed break that no longer
# exists fails the test too, so the list cannot outlive the code it excuses.
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(path: Path, root: Path, modules: set[str]) -> set[str]:
    """Every module `path` imports, at the top or inside a function. `from a.b import c` counts
    as `a.b`, and as `a.b.c` too when that is one of `modules` (else `c` is a name in `a.b`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if is_package(path) else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules
            )
    return found


def python_files(root: Path, folders: Iterable[str]) -> list[Path]:
    return sorted(p for folder in folders for p in (root / folder).rglob("*.py"))


def graph(root: Path, folders: Iterable[str] = SCANNED) -> dict[str, set[str]]:
    """module -> the modules it imports, for every .py file under `folders` of `root`."""
    files = python_files(root, folders)
    modules = {module_name(p, root) for p in files}
    return {module_name(p, root): imports_of(p, root, modules) for p in files}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def command_modules(root: Path) -> set[str]:
    folder = root / "installer" / "commands"
    return {
        f"installer.commands.{p.stem}" for p in folder.glob("*.py") if not p.stem.startswith("_")
    }


# The README's room table, as data: room -> the packages and modules it holds (longest prefix
# wins; a module of installer/ itself that is in no other room is the core).
ROOMS: dict[str, tuple[str, ...]] = {
    "core": ("installer",),
    "seed": ("installer.seed",),
    "seed I/O": ("installer.seed.io", "installer.seed.stored"),
    "media": ("installer.media",),
    "net": ("installer.net",),
    "online": ("installer.online",),
    "first boot": ("installer.firstboot",),
    "adopt": ("installer.adopt",),
    "existing host": ("installer.host",),
    "update": ("installer.update",),
    "backup": ("installer.backup",),
    "install": ("installer.install",),
    "wizard": ("installer.wizard",),
    "commands": ("installer.commands", "installer.cli"),
    "dev": ("installer.dev",),
}
EVERY_ROOM = frozenset(ROOMS)
# room -> the rooms it may import (its own always).
MAY_USE: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "seed": frozenset({"core"}),
    "media": frozenset({"core", "seed"}),
    "seed I/O": frozenset({"core", "seed", "media"}),
    "net": frozenset({"core", "seed"}),
    "online": frozenset({"core", "seed"}),
    "first boot": frozenset({"core", "seed", "seed I/O", "net", "online"}),
    "adopt": frozenset({"core", "seed", "seed I/O", "net", "online", "first boot"}),
    "existing host": frozenset({"core", "seed", "first boot", "update"}),
    "update": frozenset({"core", "first boot", "online"}),
    "backup": frozenset({"core", "media", "first boot", "install"}),
    "install": frozenset({"core", "seed", "seed I/O", "media", "net"}),
    "wizard": frozenset({"core", "seed"}),
    "commands": EVERY_ROOM - {"dev"},
    "dev": EVERY_ROOM,
}


def room_of(module: str, rooms: dict[str, tuple[str, ...]] = ROOMS) -> str | None:
    """The room holding `module` (the longest matching prefix), None outside installer/."""
    best: tuple[int, str | None] = (-1, None)
    for room, prefixes in rooms.items():
        for prefix in prefixes:
            if within(module, prefix) and len(prefix) > best[0]:
                best = (len(prefix), room)
    return best[1]


def table_cycles(may_use: dict[str, frozenset[str]]) -> list[list[str]]:
    """Every cycle in the room table (rooms that may use each other, directly or not)."""
    return cycles({room: set(uses) - {room} for room, uses in may_use.items()})


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def module_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between installer modules, lazy imports included. A package's own
    `__init__` is left out of its children's edges (importing `a.b` runs `a` first anyway)."""
    modules = {m for m in imports if within(m, "installer")}
    edges = {
        m: {t for t in imports[m] if t in modules and t != m and not within(m, t)} for m in modules
    }
    return cycles(edges)


def violations(root: Path) -> set[tuple[str, str, str]]:
    """(importer, imported, rule) for every import that breaks a rule."""
    found: set[tuple[str, str, str]] = set()
    commands = command_modules(root)
    imports = graph(root)
    for module, imported in imports.items():
        for target in imported:
            if (
                within(module, "installer.firstboot.steps")
                and module != "installer.firstboot.steps"
                and within(target, "installer.firstboot.steps")
            ):
                found.add((module, target, "a step imports a step"))
            if within(module, "installer.commands") and any(
                within(target, c) and target != module for c in commands
            ):
                found.add((module, target, "a command imports a command"))
            if not within(module, "installer.dev") and within(target, "installer.dev"):
                found.add((module, target, "development-only code imported"))
            here, there = room_of(module), room_of(target)
            if here is None and not within(module, "installer") and there == "commands":
                found.add((module, target, "library code imports the command layer"))
            if here is None or there is None or there == here:
                continue
            if there not in MAY_USE[here]:
                found.add((module, target, f"the {here} room may not use the {there} room"))
    for cycle in module_cycles(imports):
        found.add((cycle[0], " -> ".join(cycle[1:]), "an import cycle"))
    return found


def test_the_room_table_has_no_cycle() -> None:
    assert set(MAY_USE) == set(ROOMS)
    assert table_cycles(MAY_USE) == []


def test_a_cycle_in_the_room_table_is_found() -> None:
    table = {**MAY_USE, "seed": frozenset({"core", "media"})}
    assert table_cycles(table) == [["media", "seed"]]


def test_every_module_is_in_a_room() -> None:
    assert [m for m in graph(ROOT) if within(m, "installer") and room_of(m) is None] == []


def test_the_rules_hold_for_the_real_source() -> None:
    found = {(m, t): rule for m, t, rule in violations(ROOT)}
    new = [
        f"{m} imports {t}: {rule}" for (m, t), rule in sorted(found.items()) if (m, t) not in KNOWN
    ]
    assert not new, "\n".join(new)
    gone = [f"{m} -> {t} ({why})" for (m, t), why in KNOWN.items() if (m, t) not in found]
    assert not gone, "fixed; remove from KNOWN in tests/test_architecture.py: " + "; ".join(gone)


def test_the_scan_reads_the_real_files() -> None:
    """The rules above are only as good as the graph: it must hold the real modules and see the
    imports inside functions, where the lazy ones are."""
    imports = graph(ROOT)
    steps = {m for m in imports if within(m, "installer.firstboot.steps")}
    assert {"installer.firstboot.steps.accounts", "installer.firstboot.steps.database"} <= steps
    assert "installer.firstboot.db.ready" in imports["installer.commands.wait_db"]  # lazy
    assert "installer.firstboot.context" in imports["installer.firstboot.steps.identity"]
    assert "installer.wizard.asker" in imports["installer.commands.install"]  # lazy


def test_the_command_modules_are_the_cli_commands() -> None:
    """What the rules call a command is what the CLI runs; anything else in installer/commands
    is a private helper and must be named `_…`."""
    assert command_modules(ROOT) == {f"installer.commands.{m}" for m in COMMANDS.values()}


@pytest.mark.parametrize(
    ("path", "text", "rule"),
    [
        (
            "installer/firstboot/steps/b.py",
            "def f():\n    from installer.firstboot.steps.a import x\n",
            "a step imports a step",
        ),
        (
            "installer/firstboot/steps/b.py",
            "from installer.firstboot.steps import a\n",
            "a step imports a step",
        ),
        (
            "installer/commands/b.py",
            "from installer.commands import a\n",
            "a command imports a command",
        ),
        (
            "installer/commands/_h.py",
            "import installer.commands.a\n",
            "a command imports a command",
        ),
        (
            "installer/media/x.py",
            "from installer.commands.a import f\n",
            "the media room may not use the commands room",
        ),
        (
            "installer/media/x.py",
            "from .. import cli\n",
            "the media room may not use the commands room",
        ),
        ("bench/x.py", "import installer.cli\n", "library code imports the command layer"),
        (
            "installer/install/x.py",
            "def f():\n    from installer.firstboot import runner\n",
            "the install room may not use the first boot room",
        ),
        (
            "installer/firstboot/x.py",
            "from installer.adopt import run\n",
            "the first boot room may not use the adopt room",
        ),
        (
            "installer/paths.py",
            "import installer.seed.x\n",
            "the core room may not use the seed room",
        ),
        (
            "installer/media/y.py",
            "def f():\n    from installer.media import z\n",
            "an import cycle",
        ),
        ("bench/x.py", "import installer.dev.sandbox\n", "development-only code imported"),
        (
            "installer/seed/x.py",
            "from installer.wizard import ask\n",
            "the seed room may not use the wizard room",
        ),
        (
            "installer/seed/x.py",
            "from ..media import blockdev\n",
            "the seed room may not use the media room",
        ),
    ],
)
def test_each_rule_catches_its_break(tmp_path: Path, path: str, text: str, rule: str) -> None:
    others = {
        "installer/media/z.py": "from installer.media import y\n",  # the other half of a cycle
    }
    for module in ("installer/commands/a.py", "installer/firstboot/steps/a.py", "installer/cli.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    for module, body in others.items():
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text(body if path == "installer/media/y.py" else "")
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
    assert {r for _, _, r in violations(tmp_path)} == {rule}


def test_allowed_imports_pass(tmp_path: Path) -> None:
    files = {
        "installer/firstboot/steps/a.py": "from installer.firstboot.context import StepContext\n",
        "installer/commands/a.py": "from installer.commands._helper import f\n",
        "installer/commands/_helper.py": "from installer.envfile import parse_env_file\n",
        "installer/cli.py": "import installer.commands.a\n",
        "installer/dev/demo.py": "from installer.dev.sandbox import make\n",
        "installer/seed/x.py": "from installer.errors import InstallerError\n",
        "installer/adopt/x.py": "from installer.firstboot.runner import run_steps\n",
        "installer/install/x.py": "def f():\n    from installer.net.live import bring_up\n",
        "installer/seed/io.py": "from installer.media.seed_device import find_seed\n",
        "installer/media/seed_device.py": "from installer.seed.entry import RECEIPT_NAME\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert violations(tmp_path) == set()


# -- lazy imports, observed ---------------------------------------------------------------------

PROBE = """
import sys
from installer.cli import main
code = main(sys.argv[1:])
print(code, sorted(m for m in sys.modules if m.split(".")[0] in {"psycopg", "textual", "pyudev"}
      or m.startswith("installer.firstboot.db.")))
"""


def probe(*argv: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    code, _, modules = result.stdout.splitlines()[-1].partition(" ")
    return int(code), ast.literal_eval(modules)


def test_every_command_loads_without_the_database_or_the_console() -> None:
    """`--help` loads every command module: none imports psycopg, textual or pyudev up front."""
    assert probe("--help") == (0, [])


def test_wait_db_loads_only_the_readiness_wait() -> None:
    code, modules = probe("wait-db", "--conninfo", "host=/nonexistent port=1", "--timeout-ms", "1")
    assert code == 3
    assert "installer.firstboot.db.ready" in modules
    assert not {"installer.firstboot.db.auth", "installer.firstboot.db.bootstrap"} & set(modules)
