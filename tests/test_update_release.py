"""The pure parts of platform releases (issue 23): platform.toml read into a Release, versions
ordered, minisign signatures checked with a key made here, archives unpacked only when plain,
the image's release key checked at build time, and the platform unit resuming an update first."""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from pathlib import Path

import minisign
import pytest

from installer.update import signed
from installer.update.manifest import ManifestError, parse_manifest, version_key
from installer.update.signed import RefusedError, unpack, verify
from tests.helpers.image import load_build

BUILD = load_build()
REPO = Path(__file__).resolve().parents[1]
GOOD = 'name = "p"\nversion = "2.1"\nstart = ["bin/run"]\n'


def test_a_full_manifest_is_read() -> None:
    release = parse_manifest(
        GOOD + 'needs = ["python3"]\nmigrate = ["bin/migrate", "--all"]\nmigrate_timeout_s = 30\n'
        '[ready]\ncommand = ["bin/ready"]\ntimeout_s = 5\n',
        need_ready=True,
    )
    assert (release.name, release.version, release.start) == ("p", "2.1", ("bin/run",))
    assert release.needs == ("python3",)
    assert (release.migrate, release.migrate_timeout_s) == (("bin/migrate", "--all"), 30.0)
    assert (release.ready, release.ready_timeout_s) == (("bin/ready",), 5.0)


def test_the_reference_platform_is_a_release() -> None:
    text = (REPO / "iso/reference_platform/platform.toml").read_text()
    release = parse_manifest(text, need_ready=True)
    assert release.ready == ("bin/clawdie-platform", "--ready")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name = 'p'\nstart = ['x']\n", "version must be numbers separated by dots"),
        (GOOD.replace('"2.1"', '"2.1-beta"'), "version must be numbers"),
        (GOOD.replace('"2.1"', "2"), "version must be numbers"),
        (GOOD.replace('name = "p"\n', ""), "name is missing"),
        (GOOD.replace('["bin/run"]', '["/bin/sh"]'), "inside the release folder"),
        (GOOD.replace('["bin/run"]', '["../up/run"]'), "inside the release folder"),
        (GOOD + 'needs = ["Bad Name"]\n', "needs must be a list of Debian package names"),
        (GOOD + 'migrate = "bin/m"\n', "migrate must be a list of strings"),
        (GOOD + "[ready]\ncommand = ['bin/r']\ntimeout_s = 0\n", "between 1 and 86400"),
        (GOOD, "a release needs a readiness check"),
        ("name = ", "is not valid TOML"),
    ],
)
def test_a_bad_manifest_is_refused_with_its_reason(text: str, words: str) -> None:
    with pytest.raises(ManifestError, match=words):
        parse_manifest(text, need_ready=True)


@pytest.mark.parametrize(
    ("older", "newer"), [("1", "2"), ("2.9", "2.10"), ("1.0.1", "1.1"), ("0.9", "1")]
)
def test_versions_are_ordered_as_numbers(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)


def test_trailing_zeros_do_not_make_a_version_newer() -> None:
    assert version_key("2") == version_key("2.0.0")


@pytest.mark.parametrize("prehash", [True, False])
def test_a_good_signature_passes_and_any_change_fails(tmp_path: Path, prehash: bool) -> None:
    key, other = minisign.KeyPair.generate(), minisign.KeyPair.generate()
    path = tmp_path / "release.tar"
    path.write_bytes(b"payload" * 1000)
    signature = bytes(key.secret_key.sign(path.read_bytes(), prehash=prehash))
    public = bytes(key.public_key)
    verify(path, signature, public)
    with pytest.raises(RefusedError, match="signed by another key"):
        verify(path, signature, bytes(other.public_key))
    path.write_bytes(b"payload" * 999 + b"paylaod")
    with pytest.raises(RefusedError, match="does not match the file"):
        verify(path, signature, public)
    with pytest.raises(RefusedError, match="not a minisign signature"):
        verify(path, b"untrusted comment: x\nnot base64\n", public)


def archive(tmp_path: Path, add: str) -> Path:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        manifest = (GOOD + '[ready]\ncommand = ["bin/run"]\n').encode()
        info = tarfile.TarInfo("./platform.toml")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        extra = tarfile.TarInfo(add.split("=")[0])
        if add.endswith("=link"):
            extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/shadow"
        elif add.endswith("=fifo"):
            extra.type = tarfile.FIFOTYPE
        tar.addfile(extra, io.BytesIO(b""))
    path = tmp_path / "a.tar"
    path.write_bytes(data.getvalue())
    return path


@pytest.fixture(params=[True, False], ids=["filters", "python-3.11.2"])
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With tarfile's extraction filters, and without them as on the box (Debian 12's Python
    3.11.2 has none: a Python that old cannot be made here, so the switch is turned off)."""
    monkeypatch.setattr(signed, "_HAS_FILTERS", request.param)


@pytest.mark.parametrize("add", ["x=link", "x=fifo", "../up", "/etc/evil", "a/../../up"])
@pytest.mark.usefixtures("filters")
def test_an_archive_with_anything_but_plain_files_inside_is_refused(
    tmp_path: Path, add: str
) -> None:
    with pytest.raises(RefusedError, match="not a plain file or folder inside it"):
        unpack(archive(tmp_path, add), tmp_path / "out")
    assert not (tmp_path / "up").exists()


@pytest.mark.usefixtures("filters")
def test_a_plain_archive_unpacks(tmp_path: Path) -> None:
    release = unpack(archive(tmp_path, "bin/run"), tmp_path / "out")
    assert release.version == "2.1"
    assert (tmp_path / "out/bin/run").is_file()


def test_the_image_takes_a_public_key_and_refuses_a_secret_one(tmp_path: Path) -> None:
    key = minisign.KeyPair.generate()
    public = tmp_path / "release.pub"
    public.write_bytes(bytes(key.public_key))
    assert BUILD.read_release_key(public) == bytes(key.public_key) + b"\n"
    secret = tmp_path / "release.key"
    secret.write_bytes(bytes(key.secret_key))
    with pytest.raises(BUILD.UsageError, match="not a minisign public key"):
        BUILD.read_release_key(secret)


def test_the_platform_unit_resumes_an_update_as_root_before_the_platform_starts() -> None:
    unit = (REPO / "iso/overlay/etc/systemd/system/clawdie.service").read_text().splitlines()
    wait = unit.index("ExecStartPre=/usr/local/bin/clawdie-setup wait-db")
    resume = next(i for i, line in enumerate(unit) if "clawdie-setup update --resume" in line)
    start = next(i for i, line in enumerate(unit) if line.startswith("ExecStart="))
    assert wait < resume < start
    assert unit[resume].startswith("ExecStartPre=+")  # as root


def test_the_resume_runs_only_on_a_box_that_began_an_update(tmp_path: Path) -> None:
    """The unit's guard, run by sh with the state folder and the command swapped for the test's:
    no folder, no command (first boot and every start of a box never updated); a folder, the
    command."""
    unit = (REPO / "iso/overlay/etc/systemd/system/clawdie.service").read_text().splitlines()
    line = next(x for x in unit if "clawdie-setup update --resume" in x)
    script = shlex.split(line.removeprefix("ExecStartPre=+"))[2]
    folder = tmp_path / "update"
    script = script.replace("/var/lib/clawdie-setup/update", str(folder))
    script = script.replace("/usr/local/bin/clawdie-setup update --resume", "echo resumed")
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == ""
    folder.mkdir()
    ran = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert ran.stdout == "resumed\n"


@pytest.mark.parametrize(
    "argv", [["update"], ["update", "x.tar", "--resume"], ["rollback", "--nope"]]
)
def test_wrong_use_of_update_and_rollback_is_a_usage_error(argv: list[str]) -> None:
    from installer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
