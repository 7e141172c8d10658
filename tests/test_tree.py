"""The test tree keeps the order the product keeps: what tests share is in tests/helpers/ (or a
fixture in conftest.py), never in a test module another module imports; one set of sentinel
secrets (tests/helpers/sentinels.py); and importing a test module runs nothing, so a missing
tool skips a test with its reason instead of breaking the collection of the whole suite."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
ONE_SET = ROOT / "tests/helpers/sentinels.py"


def python_files() -> list[Path]:
    return sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


def imported_test_modules(source: str) -> set[str]:
    """Every test module `source` imports, lazily or not, or names in code it runs (a string
    holding `from tests.test_x import ...`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [word for word in node.value.split() if word.startswith("tests.")]
        found |= {n for n in names if n.split(".")[:2][-1].startswith("test_")}
    return {".".join(n.split(".")[:2]) for n in found}


def test_the_finder_sees_each_way_of_importing_a_test_module() -> None:
    assert imported_test_modules("from tests.test_adopt import adopt\n") == {"tests.test_adopt"}
    assert imported_test_modules("import tests.test_db\n") == {"tests.test_db"}
    assert imported_test_modules("from tests import test_db\n") == {"tests.test_db"}
    assert imported_test_modules("def f():\n    from tests.test_x import y\n") == {"tests.test_x"}
    assert imported_test_modules('CODE = "from tests.test_x import y\\n"\n') == {"tests.test_x"}
    assert imported_test_modules("from tests.helpers.adopt import adopt\n") == set()


def test_no_module_imports_a_test_module() -> None:
    found = {
        (str(path.relative_to(ROOT)), module)
        for path in python_files()
        if path != THIS
        for module in imported_test_modules(path.read_text())
    }
    assert found == set()


def test_the_top_of_the_test_tree_holds_only_test_modules() -> None:
    """A helper lives in tests/helpers/ (or is a fixture in conftest.py): at the top of tests/
    there is nothing but the test modules, conftest.py and the package's __init__.py."""
    top = {path.name for path in (ROOT / "tests").glob("*.py")}
    assert {
        name
        for name in top
        if not name.startswith("test_") and name not in ("conftest.py", "__init__.py")
    } == set()


def imported_tests_modules(source: str) -> set[str]:
    """Every module of tests/ that `source` imports (`from tests import x` counts as tests.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tests.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "tests":
            found |= {f"tests.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            found.add(str(node.module))
    return found


def test_the_benchmarks_use_only_the_test_helpers() -> None:
    assert imported_tests_modules("from tests import vm\n") == {"tests.vm"}
    found = {
        (str(path.relative_to(ROOT)), module)
        for path in sorted((ROOT / "bench").rglob("*.py"))
        for module in imported_tests_modules(path.read_text())
        if not module.startswith("tests.helpers")
    }
    assert found == set()


def sentinel_literals(source: str) -> list[str]:
    """String values (not docstrings) and names that hold or spell a sentinel secret."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    values = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and "sentinel" in node.value.lower()
    ]
    names = [
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name)
        and isinstance(node.ctx, ast.Store)
        and "SENTINEL" in node.id.upper()
    ]
    return values + names


def test_the_sentinel_finder_sees_a_planted_secret_and_not_a_docstring() -> None:
    assert sentinel_literals('"""A sentinel leaks."""\nX = 1\n') == []
    assert sentinel_literals('SECRET = "Db-Sentinel-7f3e"\n') == ["Db-Sentinel-7f3e"]
    assert sentinel_literals('MY_SENTINEL = "x"\n') == ["MY_SENTINEL"]


def test_every_sentinel_secret_comes_from_the_one_set() -> None:
    found = {
        str(path.relative_to(ROOT)): literals
        for path in python_files()
        if path not in (ONE_SET, THIS) and (literals := sentinel_literals(path.read_text()))
    }
    assert found == {}


# Run in a child interpreter: starting any program while the test modules are imported fails.
NO_PROGRAMS = """
import importlib, os, subprocess, sys

def refuse(*args, **kwargs):
    raise AssertionError(f"a program started at import time: {args[:1]}")

subprocess.Popen = refuse
os.system = os.posix_spawn = os.posix_spawnp = os.fork = refuse
for name in ("execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe"):
    setattr(os, name, refuse)
for module in sys.argv[1:]:
    importlib.import_module(module)
"""


def test_importing_the_test_modules_runs_nothing() -> None:
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "__init__.py"
    ]
    result = subprocess.run(
        [sys.executable, "-c", NO_PROGRAMS, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
