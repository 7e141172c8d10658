"""One declaration per setup key (issue 28): a new key is its declaration and nothing else, every
key set is derived from the declarations, sources are kept as data, and what `check` and first
boot write for a set of seeds stays as it was (golden files in tests/data/declare/)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installer.envfile import render_env_file
from installer.firstboot.config import DbConfig
from installer.firstboot.steps.platform_env import render_platform_env, render_resolved_json
from installer.seed.model import DECLARATIONS, KNOWN_KEYS
from installer.seed.profiles import SOURCE_KINDS, Source, recorded_source
from installer.seed.resolve import check_seed_bytes
from tests.helpers.seeds import valid
from tests.helpers.sentinels import SENTINEL

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "declare"
SEEDS = sorted(p.stem for p in GOLDEN.glob("*.txt"))
BOOTED = ("demo", "full", "minimal")  # the valid fresh seeds: what first boot writes from them
UPDATE = os.environ.get("CLAWDIE_UPDATE_GOLDEN") == "1"

# --- a new key is one declaration ------------------------------------------------------------

NEW_FIELDS = """
    fan_curve: Annotated[str | None, _rule(check_model_name)] = _field(
        "FAN_CURVE", "advanced", "how the fans run", adopt="safe", passed_through=True
    )
    vault_passphrase: Annotated[SecretStr | None, _rule(check_password)] = _field(
        "VAULT_PASSPHRASE",
        "advanced",
        "the vault's passphrase",
        adopt="identity",
        words="vault passphrase",
        access=True,
        hidden=True,
        platform=False,
        passed_through=True,
    )

    @model_validator(mode="wrap")"""

PROBE = r"""
import json, sys
from pathlib import Path
from installer.adopt import plan
from installer.adopt.plan import Installation, InstalledSetting, plan_key
from installer.envfile import render_env_file
from installer.firstboot.config import DbConfig
from installer.firstboot.steps import platform_env
from installer.seed import model, resolve
from installer.seed.resolve import check_seed_bytes, mask

check = check_seed_bytes(Path(sys.argv[1]).read_bytes())
settings = list(check.settings)
env = platform_env.render_platform_env(settings, "clawdie", "db-password", DbConfig())
record = json.loads(platform_env.render_resolved_json(settings, 1, []))
box = Installation(
    "3f2a9c01",
    {
        "FAN_CURVE": InstalledSetting("FAN_CURVE", "quiet", True, False),
        "VAULT_PASSPHRASE": InstalledSetting("VAULT_PASSPHRASE", "old passphrase 1", True, True),
    },
)
print(json.dumps({
    "package": model.__file__,
    "problems": [p.message for p in check.problems],
    "explain": {s.key: [mask(s), s.source.describe()] for s in settings},
    "system_env": render_env_file(env),
    "record": {e["key"]: e for e in record["settings"]},
    "secret": sorted(model.SECRET_KEYS),
    "hidden": sorted(resolve.FULLY_HIDDEN_KEYS),
    "safe": sorted(plan.SAFE_KEYS),
    "identity": sorted(plan.IDENTITY_KEYS),
    "access": sorted(plan.ACCESS_KEYS),
    "fan": plan_key("FAN_CURVE", "loud", box, False).render(),
    "vault": plan_key("VAULT_PASSPHRASE", "new passphrase 2", box, False).render(),
}))
"""


def test_a_new_key_is_its_declaration_and_nothing_else(tmp_path: Path) -> None:
    """In a copy of the package, two keys are added to the model (their declarations, nothing
    else): `check` resolves and masks them, system.env gets the one declared for the platform,
    and adopt treats each by its declared class."""
    copy = tmp_path / "copy"
    shutil.copytree(
        ROOT / "installer", copy / "installer", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "seed", copy / "seed")
    model = copy / "installer" / "seed" / "model.py"
    text = model.read_text(encoding="utf-8")
    assert text.count('\n\n    @model_validator(mode="wrap")') == 1
    model.write_text(
        text.replace('\n\n    @model_validator(mode="wrap")', NEW_FIELDS), encoding="utf-8"
    )
    seed = tmp_path / "setup.txt"
    seed.write_bytes(valid("FAN_CURVE=loud-at-night", f"VAULT_PASSPHRASE={SENTINEL}"))
    assert {"FAN_CURVE", "VAULT_PASSPHRASE"}.isdisjoint(KNOWN_KEYS)
    assert not check_seed_bytes(seed.read_bytes()).valid  # here they are unknown keys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(seed)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["package"] == str(model)
    assert out["problems"] == []
    assert out["explain"]["FAN_CURVE"] == ["loud-at-night", "setup.txt line 4"]
    assert out["explain"]["VAULT_PASSPHRASE"] == ["(set, hidden)", "setup.txt line 5"]
    assert 'FAN_CURVE="loud-at-night"\n' in out["system_env"]
    assert "VAULT_PASSPHRASE" not in out["system_env"]
    assert SENTINEL not in done.stdout
    assert out["record"]["FAN_CURVE"]["value"] == "loud-at-night"
    assert out["record"]["FAN_CURVE"]["origin"] == {"kind": "line", "line": 4}
    assert out["record"]["VAULT_PASSPHRASE"]["value"] is None
    assert "VAULT_PASSPHRASE" in out["secret"]
    assert "VAULT_PASSPHRASE" in out["hidden"]
    assert "FAN_CURVE" in out["safe"]
    assert "FAN_CURVE" not in out["access"]
    assert "VAULT_PASSPHRASE" in out["identity"]
    assert "VAULT_PASSPHRASE" in out["access"]
    assert out["fan"] == "FAN_CURVE: applied (was quiet)"
    assert out["vault"].startswith("VAULT_PASSPHRASE: refused (the box's vault passphrase is")
    assert "passphrase 1" not in out["vault"]
    assert "passphrase 2" not in out["vault"]


def test_every_key_is_declared_with_its_facts() -> None:
    assert DECLARATIONS.keys() == KNOWN_KEYS
    for spec in DECLARATIONS.values():
        assert spec.doc, spec.key
        assert not spec.hidden or spec.secret, f"{spec.key}: only a secret is hidden"
        assert not spec.login_password or (spec.secret and spec.hidden), spec.key
        assert spec.words or spec.adopt != "identity", f"{spec.key}: an identity needs words"
    wifi = [k for k, s in DECLARATIONS.items() if s.group == "wifi"]
    assert all(DECLARATIONS[k].missing_hint for k in wifi)


# --- sources as data -------------------------------------------------------------------------

SOURCES = [
    Source("line", line=7),
    Source("profile", "balanced (mapping v1)", profile="balanced", mapping_version=1),
    Source("derived", "ASSISTANT_NAME"),
    Source("default"),
    Source("wizard"),
    Source("installed"),
]


@pytest.mark.parametrize("source", SOURCES, ids=[s.kind for s in SOURCES])
def test_a_source_is_its_record_and_its_words(source: Source) -> None:
    record = source.to_record()
    assert Source.from_record(json.loads(json.dumps(record))) == source
    # a record written before sources were data (0.1.0) is read by its words
    assert recorded_source({"source": source.describe()}) == source
    assert {s.kind for s in SOURCES} == set(SOURCE_KINDS)


def test_the_record_is_read_not_the_words() -> None:
    entry = {"source": "default", "origin": {"kind": "line", "line": 3}}
    assert recorded_source(entry).given
    assert not recorded_source({"source": "setup.txt line 3", "origin": {"kind": "default"}}).given


@pytest.mark.parametrize(
    "record",
    [
        "line 3",
        {"kind": "guess"},
        {"kind": "line", "line": "3"},
        {"kind": "line", "line": True},
        {"kind": "profile", "detail": 1},
        {"kind": "profile", "mapping_version": "1"},
    ],
)
def test_a_broken_record_is_refused(record: object) -> None:
    with pytest.raises(ValueError):
        Source.from_record(record)


# --- what check and first boot write, before and after ---------------------------------------


def _check_output(seed: Path, flag: str) -> str:
    from installer.commands import check

    out = io.StringIO()
    args = argparse.Namespace(file=seed, explain=flag == "explain", json=flag == "json")
    with contextlib.redirect_stdout(out):
        code = check.run(args)
    return f"{out.getvalue()}--- exit {code}\n"


def _first_boot_files(seed: Path) -> dict[str, str]:
    """system.env and setup.resolved.json as first boot's platform step renders them (with a
    fixed database password and the default database place)."""
    resolved = check_seed_bytes(seed.read_bytes()).require_resolved()
    settings = list(resolved.settings)
    role = resolved.accounts.service_account
    env = render_platform_env(settings, role, "db-password", DbConfig())
    return {
        "system.env": render_env_file(env),
        "setup.resolved.json": render_resolved_json(settings, resolved.models.mapping_version, []),
    }


def _compare(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{path.name} changed"


@pytest.mark.parametrize("name", SEEDS)
def test_check_writes_what_it_wrote(name: str) -> None:
    seed = GOLDEN / f"{name}.txt"
    for flag in ("explain", "json"):
        _compare(GOLDEN / f"{name}.check.{flag}", _check_output(seed, flag))


@pytest.mark.parametrize("name", BOOTED)
def test_first_boot_writes_what_it_wrote(name: str) -> None:
    for file, text in _first_boot_files(GOLDEN / f"{name}.txt").items():
        _compare(GOLDEN / f"{name}.{file}", text)
