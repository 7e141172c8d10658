"""setup.txt.example stays in sync with the model and stays readable in Notepad."""

from __future__ import annotations

import re
from pathlib import Path

from installer.seed.model import field_specs
from installer.seed.resolve import check_seed_bytes
from tests.helpers.seeds import ADMIN, OPENROUTER, TOKEN

EXAMPLE = Path(__file__).resolve().parents[1] / "setup.txt.example"
# Keys deliberately left out of the operator's template, with the reason.
NOT_IN_TEMPLATE = {"TENANT_ID": "additional tenants are not part of first boot v1"}


def example_lines() -> list[str]:
    return EXAMPLE.read_text(encoding="utf-8").splitlines()


def test_every_field_is_documented_in_the_template() -> None:
    listed = {m.group(1) for line in example_lines() if (m := re.match(r"#?([A-Z_]+)=", line))}
    expected = {s.key for s in field_specs()} - NOT_IN_TEMPLATE.keys()
    assert listed == expected


def test_every_key_line_has_an_explanation_above_it() -> None:
    lines = example_lines()
    for number, line in enumerate(lines):
        if re.match(r"#?[A-Z_]+=", line):
            above = lines[number - 1]
            assert above.startswith("# ") or re.match(r"#?[A-Z_]+=", above), line


def test_the_four_lines_and_profile_come_first_uncommented() -> None:
    keys = [m.group(1) for line in example_lines() if (m := re.match(r"([A-Z_]+)=", line))]
    assert keys == [
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_ID",
        "OPENROUTER_API_KEY",
        "ASSISTANT_NAME",
        "PROFILE",
    ]
    assert "PROFILE=balanced" in example_lines()


def test_the_install_section_lists_the_install_keys_commented_out() -> None:
    lines = example_lines()
    section = lines[lines.index("# ---- Installing ----") :]
    keys = [m.group(1) for line in section if (m := re.match(r"#([A-Z_]+)=$", line))]
    assert keys == [
        "INSTALL_MODE",
        "INSTALL_FINGERPRINT",
        "ADOPT_CODE",
        "ALLOW_IDENTITY_CHANGE",
        "TARGET_DISK",
        "ERASE_TARGET_DISK",
        "SEED_SCRUB",
        "BACKUP_IDENTITY",
        "BACKUP_FILE",
    ]
    text = "\n".join(section)
    assert "serial:" in text
    assert "/dev/disk/by-id/" in text
    assert "/dev/sda" not in text  # a kernel name is not what an unattended erase takes


def test_template_is_plain_ascii_with_short_lines() -> None:
    data = EXAMPLE.read_bytes()
    assert data.isascii()
    assert all(len(line) <= 100 for line in data.decode().splitlines())


def fill(text: str) -> str:
    values = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_ADMIN_ID": ADMIN,
        "OPENROUTER_API_KEY": OPENROUTER,
        "ASSISTANT_NAME": "Ada",
    }
    for key, value in values.items():
        text = text.replace(f"\n{key}=\n", f"\n{key}={value}\n")
    return text


def test_filled_template_validates_cleanly() -> None:
    result = check_seed_bytes(fill(EXAMPLE.read_text()).encode())
    assert result.valid, result.problems
    assert result.warnings == ()
    assert result.require_resolved().host.hostname == "ada"


def test_filled_template_saved_by_notepad_validates() -> None:
    data = b"\xff\xfe" + fill(EXAMPLE.read_text()).replace("\n", "\r\n").encode("utf-16-le")
    assert check_seed_bytes(data).valid
