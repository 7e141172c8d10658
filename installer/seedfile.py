"""setup.txt bytes -> numbered KEY=VALUE entries, problems and repair notes. Pure: no I/O here.

The reader accepts what common editors produce (see DESIGN §3 "Format") and reports every repair
it made by line number. It never puts a value in a message: values may be secrets.
"""

from __future__ import annotations

from collections.abc import Iterable

SEED_NAME = "setup.txt"


def choose_seed_name(names: Iterable[str]) -> tuple[str | None, list[str]]:
    """Pick the seed file among directory entry `names`; return it (or None) and warnings.

    `setup.txt` wins (any case); `setup.txt.txt` (Windows hiding extensions) is accepted with a
    warning; macOS AppleDouble files (`._*`) are never taken.
    """
    candidates = [n for n in names if not n.startswith("._")]
    by_lower = {n.lower(): n for n in sorted(candidates)}
    warnings: list[str] = []
    if SEED_NAME in by_lower:
        chosen = by_lower[SEED_NAME]
        if f"{SEED_NAME}.txt" in by_lower:
            warnings.append(
                f"both {chosen} and {by_lower[SEED_NAME + '.txt']} exist; using {chosen}: "
                "delete the other one so nobody edits the wrong file"
            )
        return chosen, warnings
    if f"{SEED_NAME}.txt" in by_lower:
        chosen = by_lower[f"{SEED_NAME}.txt"]
        warnings.append(
            f"using {chosen}: the editor added a second .txt (Windows hides extensions); "
            "rename it to setup.txt"
        )
        return chosen, warnings
    return None, warnings
