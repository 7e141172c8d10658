"""An update channel (DESIGN §9) served over HTTP on loopback, asked by `clawdie-setup update
--channel` on a sandbox box (first boot run against a real PostgreSQL, v1 running): a newer
signed release is downloaded and applied; the same version is left alone; an offer signed by
another key, for another platform, or one the server cannot give changes nothing; no answer is
`not checked`, exit 0. Each check leaves its line in root's state."""

from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.errors import InstallerError
from installer.online.httpclient import NoAnswer, download
from installer.update.channel import ChannelError, channel_url, parse_offer
from tests.helpers.loopback import served
from tests.helpers.pg import PgCluster
from tests.helpers.update import (
    V2_SQL,
    Keys,
    bundle,
    new_keys,
    payload,
    running_box,
    update,
)


def offer(channel: Path, release: Path, *, name: str = "reference-platform", version: str) -> None:
    """`release` and its signature put in `channel`, and latest.json naming it."""
    channel.mkdir(exist_ok=True)
    for path in (release, release.with_name(release.name + ".minisig")):
        shutil.copyfile(path, channel / path.name)
    (channel / "latest.json").write_text(
        json.dumps({"name": name, "version": version, "file": release.name})
    )


def record(box: Path) -> str:
    return (box / "root/var/lib/clawdie-setup/update/channel.txt").read_text()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return new_keys()


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster, keys: Keys) -> Iterator[Path]:
    with running_box(tmp_path / "box", pg, keys) as made:
        yield made


@pytest.mark.root
def test_a_newer_release_on_the_channel_is_applied_and_the_same_one_left_alone(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    offer(
        channel,
        bundle(payload(tmp_path, "2", sql=V2_SQL), tmp_path / "out", keys.publisher),
        version="2",
    )
    with served(channel) as url:
        # the box's own channel setting (the image's default, or install-platform's)
        (box / "root/etc/clawdie/update-channel").write_text(f"{url}/\n")
        result = update(box, pg, "--channel")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "applied: reference-platform 2 (kept 1 for rollback)" in result.stdout
        assert (box / "root/opt/clawdie/releases/2").is_dir()
        assert "applied: reference-platform 2" in record(box)

        again = update(box, pg, "--channel")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "up to date: the channel offers 2, this box runs 2" in again.stdout
        assert record(box).endswith(" up to date: the channel offers 2, this box runs 2\n")


@pytest.mark.root
def test_what_the_channel_cannot_vouch_for_changes_nothing(
    box: Path, pg: PgCluster, keys: Keys, tmp_path: Path
) -> None:
    platform = box / "root/opt/clawdie/platform"
    before = sorted(p.name for p in platform.iterdir())
    stranger = tmp_path / "stranger"
    offer(stranger, bundle(payload(tmp_path, "2"), tmp_path / "out-s", keys.stranger), version="2")
    other = tmp_path / "other"
    offer(
        other,
        bundle(payload(tmp_path, "3"), tmp_path / "out-o", keys.publisher),
        name="someone-else",
        version="3",
    )
    missing = tmp_path / "missing"
    offer(missing, bundle(payload(tmp_path, "4"), tmp_path / "out-m", keys.publisher), version="4")
    (missing / "payload-reference-platform-4.tar").unlink()
    with served(tmp_path) as url:
        signed = update(box, pg, "--channel", f"{url}/stranger")
        assert signed.returncode == 1, signed.stdout + signed.stderr
        assert "refused:" in signed.stdout + signed.stderr
        assert "refused:" in record(box)
        named = update(box, pg, "--channel", f"{url}/other")
        assert named.returncode == 1
        assert (
            "the channel offers 'someone-else', this box runs reference-platform"
            in named.stdout + named.stderr
        )
        gone = update(box, pg, "--channel", f"{url}/missing")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert "not checked: release 4: the server answered HTTP 404" in gone.stdout
    assert sorted(p.name for p in platform.iterdir()) == before
    assert not (box / "root/opt/clawdie/releases").exists() or not any(
        (box / "root/opt/clawdie/releases").iterdir()
    )
    assert "Traceback" not in signed.stderr + named.stderr + gone.stderr


@pytest.mark.root
def test_no_answer_is_not_checked_and_no_channel_is_said(box: Path, pg: PgCluster) -> None:
    with served(box) as url:
        pass  # the server is gone: nothing answers there now
    result = update(box, pg, "--channel", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not checked: the update channel: not reachable (Connection refused)" in result.stdout
    assert "not checked" in record(box)
    none = update(box, pg, "--channel")
    assert none.returncode == 0
    assert "this box has no update channel (give one: update --channel URL)" in none.stdout


@pytest.mark.parametrize(
    ("index", "words"),
    [
        (b"<html>", "is not JSON"),
        (b"[]", "is not an object"),
        (b'{"name": "p", "version": 2, "file": "f.tar"}', "needs name, version and file"),
        (b'{"name": "p", "version": "2; rm", "file": "f.tar"}', "not a version"),
        (b'{"name": "p", "version": "2", "file": "../f.tar"}', "not a plain file name"),
        (b'{"name": "p", "version": "2", "file": "f.tar.minisig"}', "not a plain file name"),
        (b'{"name": "p", "version": "2", "file": ".hidden"}', "not a plain file name"),
    ],
)
def test_an_offer_that_cannot_be_a_release_is_refused(index: bytes, words: str) -> None:
    with pytest.raises(ChannelError, match=words.replace(";", ".")):
        parse_offer(index)


def test_a_download_is_bounded_and_only_http(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 5000)
    with served(tmp_path) as url:
        out = io.BytesIO()
        assert download(f"{url}/big", out, limit=5000, timeout=5) == 5000
        with pytest.raises(NoAnswer, match="5000 bytes, more than the 4999 allowed"):
            download(f"{url}/big", io.BytesIO(), limit=4999, timeout=5)
    with pytest.raises(NoAnswer, match="only http:// and https://"):
        download(f"file://{tmp_path}/big", io.BytesIO(), limit=5000, timeout=5)


def test_the_channel_is_the_given_one_else_the_boxs_own(tmp_path: Path) -> None:
    assert channel_url(tmp_path, None) is None
    (tmp_path / "update-channel").write_text(
        "# the image's default\nhttps://updates.example/stable/\n"
    )
    assert channel_url(tmp_path, None) == "https://updates.example/stable"
    assert channel_url(tmp_path, "http://127.0.0.1:8/x/") == "http://127.0.0.1:8/x"
    link = tmp_path / "linked"
    link.mkdir()
    (link / "update-channel").symlink_to(tmp_path / "update-channel")
    with pytest.raises(InstallerError, match="update-channel"):
        channel_url(link, None)


def test_the_image_takes_a_default_channel_and_refuses_what_is_not_one() -> None:
    from tests.helpers.image import load_build

    build = load_build()
    assert (
        build.read_channel_url(" https://updates.example/stable/ ")
        == "https://updates.example/stable"
    )
    for bad in ("ftp://updates.example/", "updates.example", "https://a b/", "https:///x"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not an https:// address"):
            build.read_channel_url(bad)
