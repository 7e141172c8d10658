"""The image build's commands run on `installer.run`: bounded, a missing program worded, a
failure shown with its command line, exit code and what the command printed."""

from __future__ import annotations

import pytest

from installer.errors import InstallerError, ProgramMissingError
from tests.helpers.image import load_build

BUILD = load_build()


def test_a_build_command_that_fails_shows_its_line_its_code_and_its_output() -> None:
    with pytest.raises(InstallerError) as caught:
        BUILD.sh(["sh", "-c", "echo why it failed; exit 3"])
    assert "command failed (exit 3): sh -c 'echo why it failed; exit 3'" in caught.value.message
    assert "why it failed" in caught.value.message  # a build tool often says why on stdout


def test_a_missing_build_program_is_worded() -> None:
    with pytest.raises(ProgramMissingError) as caught:
        BUILD.sh(["clawdie-no-such-build-tool"])
    assert "clawdie-no-such-build-tool is not installed" in caught.value.message


def test_a_build_command_gets_its_environment_less_what_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704067200")
    shown = BUILD.sh(["env"], env={"CLAWDIE_BUILD_X": "1"}, unset=("SOURCE_DATE_EPOCH",))
    assert "CLAWDIE_BUILD_X=1" in shown.splitlines()
    assert not [line for line in shown.splitlines() if line.startswith("SOURCE_DATE_EPOCH=")]
    assert "SOURCE_DATE_EPOCH=1704067200" in BUILD.sh(["env"]).splitlines()


def test_a_build_command_is_bounded() -> None:
    with pytest.raises(InstallerError) as caught:
        BUILD.sh(["sleep", "5"], timeout=0.2)
    assert "sleep 5" in caught.value.message
