"""`clawdie-setup check` as an operator runs it: a real subprocess, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.errors import SeedUnreadableError
from installer.seed.io import read_seed_path
from tests.helpers.seeds import OPENROUTER, TOKEN, valid
from tests.helpers.sentinels import SENTINEL, SENTINEL_WORD

ROOT = Path(__file__).resolve().parents[1]


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "installer.cli", "check", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def test_example_lists_the_three_missing_required_keys_with_lines() -> None:
    result = check(ROOT / "setup.txt.example")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("setup.txt.example:6: TELEGRAM_BOT_TOKEN: required")
    assert lines[2].startswith("setup.txt.example:8: TELEGRAM_ADMIN_ID: required")
    assert lines[4].startswith("setup.txt.example:10: OPENROUTER_API_KEY: required")
    assert all(line.startswith("  hint: ") for line in lines[1:6:2])
    assert lines[-1] == "setup.txt.example: 3 problem(s) to fix"


def test_valid_seed_exits_zero_and_explains_with_masked_secrets(tmp_path: Path) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(
        valid("ASSISTANT_NAME=Ada", "OPERATOR_EMAIL=a@example.com", f"OPERATOR_PASSWORD={SENTINEL}")
    )
    result = check(seed, "--explain")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "warning: setup.txt:6: OPERATOR_PASSWORD: a plaintext password" in out
    assert "[derived from ASSISTANT_NAME]" in out
    assert "[profile balanced (mapping v1)]" in out
    assert "[setup.txt line 4]" in out
    assert SENTINEL not in out + result.stderr
    assert TOKEN not in out
    assert OPENROUTER not in out
    assert TOKEN[:4] + "…" in out  # at most the first 4 characters
    assert out.rstrip().endswith("setup.txt: valid (1 warning(s))")


@pytest.mark.parametrize("gap", [" ", ":", "\t"])
def test_a_password_typed_without_its_equals_is_never_printed(tmp_path: Path, gap: str) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(
        valid("OPERATOR_EMAIL=a@example.com", f"OPERATOR_PASSWORD{gap}{SENTINEL_WORD}=rest-of-it")
    )
    text = check(seed, "--explain")
    as_json = check(seed, "--json")
    assert (text.returncode, as_json.returncode) == (1, 1)
    everything = text.stdout + text.stderr + as_json.stdout + as_json.stderr
    assert SENTINEL_WORD.lower() not in everything.lower()
    assert "rest-of-it" not in everything
    assert "setup.txt:5: this line does not start with a known key" in text.stdout
    assert "hint: did you mean OPERATOR_PASSWORD? write OPERATOR_PASSWORD=value" in text.stdout
    (problem,) = json.loads(as_json.stdout)["problems"]
    assert problem == {
        "line": 5,
        "key": None,
        "message": "this line does not start with a known key",
        "hint": "did you mean OPERATOR_PASSWORD? write OPERATOR_PASSWORD=value",
    }


def test_json_document_is_stable(tmp_path: Path) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(valid("HOSTNAME=my_box", "Timezone=europe/berlin"))
    result = check(seed, "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["format"] == "clawdie-setup-check/1"
    assert doc["valid"] is False
    assert doc["status"] == "failed"  # the status word of installer/status.py
    assert doc["problems"] == [
        {
            "line": 4,
            "key": "HOSTNAME",
            "message": "a host name cannot contain '_'",
            "hint": "use '-' instead of '_'",
        }
    ]
    assert set(doc) == {
        "format",
        "file",
        "valid",
        "status",
        "encoding",
        "problems",
        "warnings",
        "repairs",
        "mapping_version",
        "settings",
    }


def test_json_valid_has_settings_with_provenance(tmp_path: Path) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(valid())
    doc = json.loads(check(seed, "--json").stdout)
    assert doc["status"] == "ok"
    by_key = {s["key"]: s for s in doc["settings"]}
    assert by_key["TELEGRAM_ADMIN_ID"]["source"] == {
        "kind": "line",
        "text": "setup.txt line 2",
        "line": 2,
    }
    assert by_key["PI_TUI_MODEL"]["source"]["kind"] == "profile"
    assert by_key["TELEGRAM_BOT_TOKEN"]["secret"] is True
    assert TOKEN not in json.dumps(doc)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = check(tmp_path / "nothing.txt")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_file_exits_2_without_traceback(tmp_path: Path) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(bytes(range(256)) * 4)
    result = check(seed)
    assert result.returncode == 2
    assert "not a text file" in result.stderr
    assert "Traceback" not in result.stderr


def test_windows_double_extension_is_found_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "setup.txt.txt").write_bytes(valid())
    (tmp_path / "._setup.txt").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    result = check(tmp_path / "setup.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: setup.txt.txt: using setup.txt.txt" in result.stdout
    by_dir = check(tmp_path)
    assert by_dir.returncode == 0


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")
def test_a_named_pipe_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "setup.txt"
    os.mkfifo(fifo)
    with pytest.raises(SeedUnreadableError, match=r"is not a regular file \(a named pipe"):
        read_seed_path(fifo)
    for given in (fifo, tmp_path):  # the file itself, or the folder holding it
        result = check(given)
        assert result.returncode == 2, result.stderr
        assert "is not a regular file (a named pipe (FIFO))" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")
def test_a_file_that_turns_into_a_pipe_after_the_check_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the stat and the open the file can change: the open must not block on a pipe."""
    fifo = tmp_path / "setup.txt"
    os.mkfifo(fifo)
    (tmp_path / "regular").write_bytes(valid())
    regular = (tmp_path / "regular").stat()
    monkeypatch.setattr(Path, "stat", lambda _self, **_: regular)
    with pytest.raises(SeedUnreadableError, match=r"is not a regular file \(a named pipe"):
        read_seed_path(fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this OS")
def test_a_device_is_refused_not_read() -> None:
    with pytest.raises(SeedUnreadableError, match=r"/dev/zero is not a regular file \(a character"):
        read_seed_path(Path("/dev/zero"))
    result = check("/dev/zero")
    assert result.returncode == 2
    assert "/dev/zero is not a regular file (a character device)" in result.stderr
    assert "bytes" not in result.stderr


def test_folder_without_seed_exits_2(tmp_path: Path) -> None:
    (tmp_path / "._setup.txt").write_bytes(b"junk")
    result = check(tmp_path)
    assert result.returncode == 2
    assert "has no setup.txt" in result.stderr


@pytest.mark.parametrize("args", [["--help"], []])
def test_top_level_help(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert "check" in result.stdout
    assert result.returncode == (0 if args else 2)


def test_unknown_command_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "installer.cli", "frobnicate"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown command" in result.stderr


def test_an_adopt_seed_is_explained_and_one_without_its_fingerprint_is_refused(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(
        valid("INSTALL_MODE=adopt", "INSTALL_FINGERPRINT=3F2A-9C01", f"ADOPT_CODE={CODE}")
    )
    out = check(seed, "--explain").stdout
    assert "an adopt seed: the box keeps every setting it leaves out; it sets:" in out, out
    assert "  INSTALL_FINGERPRINT=3F2A-9C01\n" in out
    assert "  ADOPT_CODE=(set, hidden)\n" in out
    assert CODE not in out
    assert "setup.txt: valid adopt seed" in out
    seed.write_bytes(valid("INSTALL_MODE=adopt", f"ADOPT_CODE={CODE}"))
    refused = check(seed)
    assert refused.returncode == 1
    assert "INSTALL_FINGERPRINT: required because INSTALL_MODE=adopt" in refused.stdout


def test_a_notepad_file_is_plainly_valid_and_its_readings_are_notes_with_explain(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(valid("ASSISTANT_NAME=\u201cAda\u201d", eol="\r\n", bom=b"\xef\xbb\xbf"))
    plain = check(seed)
    assert plain.returncode == 0
    assert plain.stdout == "setup.txt: valid\n"  # CRLF, a BOM and quotes are normal, not news
    explained = check(seed, "--explain").stdout
    assert "repaired" not in explained
    assert "note: setup.txt:1: read as UTF-8 with byte-order mark" in explained
    assert "note: setup.txt:4: ASSISTANT_NAME: " in explained


def test_a_setting_left_behind_its_comment_mark_is_a_warning_naming_the_line(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "setup.txt"
    seed.write_bytes(
        valid(
            "#WIFI_SSID=Home", f"#WIFI_PASSWORD={SENTINEL}", "#WIFI_COUNTRY=SI", "ASSISTANT_NAME=A"
        )
    )
    result = check(seed)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        "warning: setup.txt:4: line 4 is a comment, so WIFI_SSID is not set: "
        "remove the '#' at its start to use it"
    )
    assert result.stdout.endswith("setup.txt: valid (3 warning(s))\n")
    assert SENTINEL not in result.stdout


def test_a_closed_pipe_is_a_quiet_exit() -> None:
    # `check --json | head`: the reader is gone before check writes (deterministic here: the
    # pipe's read end is closed before the process starts).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "installer.cli", "check", "--json", "seed/demo-setup.txt"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


CODE = "K7QD-M4XP-R9TW-3HNE"
README_ADOPT = "INSTALL_MODE=adopt\nINSTALL_FINGERPRINT=3f2a9c01\nPROFILE=quality\n"


def test_the_readmes_adopt_seed_with_its_code_is_valid_and_without_it_is_told(
    tmp_path: Path,
) -> None:
    """Only the lines an adopt seed changes are needed (the box fills in the rest): no bot
    token, admin or provider key; but the fingerprint and the code."""
    seed = tmp_path / "setup.txt"
    seed.write_text(README_ADOPT + f"ADOPT_CODE={CODE.lower()}\n")
    ok = check(seed)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout == "setup.txt: valid adopt seed (the box it names fills in the rest)\n"
    seed.write_text(README_ADOPT)
    refused = check(seed)
    assert refused.returncode == 1
    assert "ADOPT_CODE: required because INSTALL_MODE=adopt" in refused.stdout
    assert "clawdie-setup adopt-code --new" in refused.stdout
    assert "TELEGRAM_BOT_TOKEN" not in refused.stdout
    assert "setup.txt: 1 problem(s) to fix" in refused.stdout
    # each line still passes its own rule; pairs come together
    seed.write_text(
        README_ADOPT + f"ADOPT_CODE={CODE}\nTIMEZONE=Mars/Base\nOPERATOR_EMAIL=ops@example.com\n"
    )
    bad = check(seed, "--json")
    problems = {(p["line"], p["key"]) for p in json.loads(bad.stdout)["problems"]}
    assert problems == {(5, "TIMEZONE"), (6, "OPERATOR_PASSWORD")}
    seed.write_text(README_ADOPT.replace("3f2a9c01", "3f2a9c0") + "ADOPT_CODE=K7QD-M4XP\n")
    short = check(seed, "--json")
    problems = {(p["line"], p["key"]) for p in json.loads(short.stdout)["problems"]}
    assert problems == {(2, "INSTALL_FINGERPRINT"), (4, "ADOPT_CODE")}
    assert "K7QD" not in short.stdout


def test_a_field_without_a_rule_of_its_own_is_checked_in_an_adopt_seed(tmp_path: Path) -> None:
    """TENANT_ID has no value rule: an adopt seed naming it is told adopt does not set it up,
    not an internal error (found by the check page's corpus)."""
    seed = tmp_path / "setup.txt"
    seed.write_text(README_ADOPT + f"ADOPT_CODE={CODE}\nTENANT_ID=acme\n")
    result = check(seed)
    assert result.returncode == 1
    assert "internal error" not in result.stdout + result.stderr
    assert "TENANT_ID: additional tenants are not set up by adopt" in result.stdout
