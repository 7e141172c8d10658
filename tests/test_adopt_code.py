"""The adopt code (issue 21, DESIGN §10) in a sandbox root against a real PostgreSQL: a stick made
from what the box shows (its fingerprint) is refused and changes nothing, whatever access it
asks for; the owner's code applies it with each access change listed; five wrong codes close
adopt until a reboot; `adopt-code --new` ends the old code; every attempt is told to the admin
(queued offline); and the code is only ever on the owner's receipt and in the Telegram report."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest

from installer.firstboot.adopt_code import MAX_WRONG, REFUSED
from installer.online.telegram_queue import Retrier
from installer.paths import TargetPaths
from tests.helpers.adopt import (
    MACHINE_ID,
    SEED,
    adopt_seed,
    code_on_receipt,
    env_of,
    fingerprint,
    installed_box,
    owner_code,
    receipt,
    restarts,
)
from tests.helpers.firstboot import db_state, firstboot, snapshot
from tests.helpers.pg import PgCluster, db_cli_args
from tests.helpers.provider_stub import Reply, provider_stub
from tests.helpers.seeds import ED25519, RSA_2048, firstboot_box

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_API = "https://api.telegram.invalid"  # the sandbox root has no route: queued at once
NEW_OPENROUTER = "sk-or-v1-" + "9" * 16 + "visitor0123456789"
PASSWORD = "visitor fallback pass"
ACCESS = (
    f"SSH_AUTHORIZED_KEY={RSA_2048}",
    f"CLAWDIE_USER_PASSWORD={PASSWORD}",
    f"OPENROUTER_API_KEY={NEW_OPENROUTER}",
)
QUEUE = "root/var/lib/clawdie-setup/telegram-queue"

pytestmark = pytest.mark.root


@pytest.fixture
def box(tmp_path: Path, pg: PgCluster) -> Path:
    return installed_box(tmp_path, pg)


def adopt(box: Path, pg: PgCluster, seed: Path) -> subprocess.CompletedProcess[str]:
    """`clawdie-setup adopt` with a Telegram that cannot be reached: the message is queued."""
    argv = [
        sys.executable, "-m", "installer.cli", "adopt",
        "--root", str(box / "root"), "--seed", str(seed), *db_cli_args(pg),
        "--platform-start", f"sh -c 'echo restarted >> {box}/restarts'",
        "--receipt-dir", str(box / "stick"), "--telegram-api", OFFLINE_API,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDIE_")}
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=120
    )


def new_code(box: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "installer.cli", "adopt-code", "--new",
        "--root", str(box / "root"), "--telegram-api", OFFLINE_API,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)


def messages(box: Path) -> list[dict[str, object]]:
    """The admin's queued adopt messages, oldest first."""
    queue = box / QUEUE
    files = sorted(queue.glob("adopt-2*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [json.loads(p.read_text()) for p in files]


def access_state(box: Path, pg: PgCluster) -> dict[str, object]:
    """What a visitor would be after: the keys, the password, sshd's drop-ins, system.env (the
    provider keys), the dashboard's operators."""
    root = box / "root"
    dropins = root / "etc/ssh/sshd_config.d"
    with psycopg.connect(pg.admin_conninfo("system_ops")) as conn:
        users = conn.execute('SELECT email FROM "user" ORDER BY 1').fetchall()
    return {
        "keys": (root / "var/lib/clawdie/.ssh/authorized_keys").read_bytes(),
        "shadow": (root / "etc/shadow").read_bytes(),
        "dropins": {p.name: p.read_bytes() for p in sorted(dropins.iterdir())},
        "env": (root / "etc/clawdie/system.env").read_bytes(),
        "operators": users,
    }


def without_queue(tree: dict[str, tuple[str, int, str]]) -> dict[str, tuple[str, int, str]]:
    """A snapshot without the admin's queued messages (each attempt adds one) and /run (the
    wrong codes' count; the sandbox root has no /run of its own)."""
    skip = ("var/lib/clawdie-setup/telegram-queue", "run/clawdie-setup")
    return {k: v for k, v in tree.items() if not k.startswith(skip) and k != "run"}


def assert_refused_and_unchanged(
    box: Path,
    pg: PgCluster,
    result: subprocess.CompletedProcess[str],
    before: tuple[object, ...],
    reason: str = REFUSED,
) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (without_queue(snapshot(box / "root", pg)), db_state(pg), access_state(box, pg)) == (
        before
    )
    assert restarts(box) == 0
    text = receipt(box)
    assert text.startswith(f"Clawdie adopt: failed (adopt.txt)\nReason: {reason}"), text
    if reason == REFUSED:  # the refusal's very words, no more
        assert text.splitlines()[1] == f"Reason: {REFUSED}"
    # nothing about the box: not its name, its keys or settings, not its fingerprint
    for word in ("OPENROUTER", "SSH_AUTHORIZED_KEY", "PASSWORD", "ada", fingerprint(box)):
        assert word not in text, word
    assert reason in result.stderr  # the console
    told = messages(box)[-1]
    assert str(told["text"]).startswith("Clawdie adopt on ada: refused, from ")
    assert f"Reason: {reason}" in str(told["text"])
    assert "Telegram message to the admin: not sent: no network" in result.stderr


def state(box: Path, pg: PgCluster) -> tuple[object, ...]:
    return without_queue(snapshot(box / "root", pg)), db_state(pg), access_state(box, pg)


def test_a_stick_made_from_what_the_box_shows_is_refused_and_changes_nothing(
    box: Path, pg: PgCluster
) -> None:
    """The visitor of issue 21: the fingerprint off the login screen, an SSH key, a fallback
    password and a provider key; without the code, with a guessed one, with another box's
    fingerprint: refused, every file, row, key and drop-in as it was, the admin told."""
    before = state(box, pg)
    missing = adopt(box, pg, adopt_seed(box, *ACCESS, code_line=""))
    assert_refused_and_unchanged(box, pg, missing, before)
    guessed = adopt(box, pg, adopt_seed(box, *ACCESS, code_line="ADOPT_CODE=K7QD-M4XP-R9TW-3HNE"))
    assert_refused_and_unchanged(box, pg, guessed, before)
    # a wrong fingerprint is refused before anything is compared: its receipt says no more
    wrong = "0" * 8 if not fingerprint(box).startswith("0") else "f" * 8
    other = adopt_seed(box, *ACCESS, fingerprint_line=f"INSTALL_FINGERPRINT={wrong}")
    refused = adopt(box, pg, other)
    reason = f"adopt.txt:2: INSTALL_FINGERPRINT={wrong} is not this box's fingerprint"
    assert_refused_and_unchanged(box, pg, refused, before, reason)
    assert len(messages(box)) == 3  # every attempt told
    for message in messages(box):
        assert message["chat_id"] == "123456789"
        assert f"from {box / 'adopt.txt'}" in str(message["text"])
        assert message["holds_secret"] is False


def test_the_owners_code_applies_and_lists_each_access_change(box: Path, pg: PgCluster) -> None:
    result = adopt(box, pg, adopt_seed(box, *ACCESS, "PROFILE=economy", "NET_DNS=9.9.9.9"))
    assert result.returncode == 0, result.stdout + result.stderr
    text = receipt(box)
    access = text[text.index("Access changes:\n") : text.index("Settings:\n")]
    for line in (
        "  - CLAWDIE_USER_PASSWORD: applied (the service account had no fallback password)",
        "  - SSH_AUTHORIZED_KEY: applied (1 key(s) → 2 key(s); added; the 1 key(s) already "
        "there stay)",
        "  - OPENROUTER_API_KEY: applied (changed (not shown))",
        "  - NET_DNS: applied (not set → 9.9.9.9)",
    ):
        assert line in access, (line, text)
    settings = text[text.index("Settings:\n") :]
    assert "  - PROFILE: applied (balanced → economy)" in settings
    assert "  - ADOPT_CODE: kept (an instruction for this run, not a setting of the box)" in (
        settings
    )
    assert "OPENROUTER" not in settings
    keys = (box / "root/var/lib/clawdie/.ssh/authorized_keys").read_text()
    assert keys == f"{ED25519}\n{RSA_2048}\n"
    assert env_of(box)["OPENROUTER_API_KEY"] == NEW_OPENROUTER
    assert restarts(box) == 1
    # the admin is told what changed, the access changes under their own heading
    (told,) = messages(box)
    assert str(told["text"]).startswith("Clawdie adopt on ada: applied, from ")
    assert access in str(told["text"])
    assert "Clawdie adopt on ada: applied" in result.stderr  # and the console
    assert owner_code(box) not in result.stdout + result.stderr + text + str(told["text"])
    # nor in the installation's record, system.env or anything else the run wrote
    assert not [p for p, t in texts_under(box / "root").items() if owner_code(box) in t]
    assert NEW_OPENROUTER not in json.dumps(told) + text


def test_five_wrong_codes_close_adopt_until_the_next_reboot(box: Path, pg: PgCluster) -> None:
    runtime = TargetPaths(box / "root").runtime_dir
    before = state(box, pg)
    for attempt in range(1, MAX_WRONG + 1):
        wrong = adopt(
            box,
            pg,
            adopt_seed(box, *ACCESS, code_line=f"ADOPT_CODE=2222-3333-4444-{attempt + 4}ABC"),
        )
        assert_refused_and_unchanged(box, pg, wrong, before)
        assert (runtime / "adopt-failures").read_text() == f"{attempt}\n"
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE((runtime / "adopt-failures").stat().st_mode) == 0o600
    closed = "refused: 5 wrong ADOPT_CODE attempts since the box started; adopt refuses every "
    right = adopt(box, pg, adopt_seed(box, *ACCESS))  # the owner's own code, too late
    assert_refused_and_unchanged(box, pg, right, before, closed)
    assert "until the next reboot" in receipt(box)
    assert "until the next reboot" in str(messages(box)[-1]["text"])
    assert (runtime / "adopt-failures").read_text() == f"{MAX_WRONG}\n"  # not counted again

    shutil.rmtree(runtime)  # a reboot: /run is a tmpfs
    opened = adopt(box, pg, adopt_seed(box, *ACCESS))
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert env_of(box)["OPENROUTER_API_KEY"] == NEW_OPENROUTER


def test_a_new_code_ends_the_old_one(box: Path, pg: PgCluster) -> None:
    old = owner_code(box)
    made = new_code(box)
    assert made.returncode == 0, made.stderr
    new = code_on_receipt(made.stdout)
    assert new != old
    assert "The old code is refused from now on." in made.stdout
    assert new not in made.stderr  # the log (the journal) never has it
    queued = json.loads((box / QUEUE / "adopt-code.json").read_text())
    assert queued["holds_secret"] is True
    assert f"ADOPT_CODE={new}" in queued["text"]

    before = state(box, pg)
    refused = adopt(box, pg, adopt_seed(box, "PROFILE=economy", code_line=f"ADOPT_CODE={old}"))
    assert_refused_and_unchanged(box, pg, refused, before)
    typed = new.lower().replace("-", " ")  # typed in any case, with spaces
    applied = adopt(box, pg, adopt_seed(box, "PROFILE=economy", code_line=f"ADOPT_CODE={typed}"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert env_of(box)["PROFILE"] == "economy"


def texts_under(directory: Path) -> dict[Path, str]:
    """Every file's text under `directory`, a tar.gz bundle's members' too."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as bundle:
                for member in bundle.getmembers():
                    handle = bundle.extractfile(member)
                    if handle is not None:
                        out[path / member.name] = handle.read().decode(errors="replace")
            continue
        out[path] = path.read_bytes().decode(errors="replace")
    return out


def test_the_code_is_only_on_the_owners_receipt_and_in_the_telegram_report(
    tmp_path: Path, pg: PgCluster
) -> None:
    """First boot with a Telegram that refuses (the report waits in the queue) and a platform
    that does not start (a log bundle on the disk and the stick): the code is in the receipt
    and the queued report, and nowhere else: not the console, the log, the login screen, the
    bundle or any other file. Sent, its queue file goes and the code with it."""
    box = firstboot_box(tmp_path, SEED)
    (box / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
    with provider_stub() as stub:
        forbidden = {"ok": False, "description": "Forbidden: bot can't initiate conversation"}
        stub.script("/sendMessage", Reply(403, forbidden))
        result = firstboot(
            box,
            pg,
            "--verbose",
            "--platform-start",
            "sh -c 'exit 3'",
            telegram_api=stub.url,
            openrouter_api=stub.url,
        )
        assert result.returncode == 4, result.stdout + result.stderr
        code = code_on_receipt(receipt(box))
        queued = box / QUEUE / "first-boot.json"
        allowed = {box / "stick/SETUP-RESULT.txt", queued}
        assert code in queued.read_text()
        assert json.loads(queued.read_text())["holds_secret"] is True
        assert code not in result.stdout + result.stderr  # the console and the log
        issue = box / "root/etc/issue.d/clawdie.issue"
        assert "Installation fingerprint" in issue.read_text()  # the login screen
        files = {**texts_under(box / "root"), **texts_under(box / "stick")}
        assert any(".tar.gz" in str(p) for p in files)  # the bundle was read too
        assert {p for p, text in files.items() if code in text} == allowed
        assert code not in (box / "root/var/lib/clawdie-setup/install-summary.txt").read_text()

        # the retry timer sends it: the file goes, and the code with it
        stub.script("/sendMessage", Reply(200, {"ok": True, "result": {"message_id": 2}}))
        outcomes = Retrier(TargetPaths(box / "root"), now=lambda: time.time() + 600).run()
        assert "first-boot: delivered" in outcomes[0], outcomes
        assert code in stub.sent_texts()[-1]
    assert not queued.exists()
    assert not [p for p, text in texts_under(box / "root").items() if code in text]
    # the box keeps only the hash of it
    stored = (box / "root/var/lib/clawdie-setup/adopt-code.hash").read_text()
    assert stored.startswith("$scrypt$ln=15,r=8,p=1$")
    assert stat.S_IMODE((box / "root/var/lib/clawdie-setup/adopt-code.hash").stat().st_mode) == (
        0o600
    )


def test_an_offline_report_given_up_keeps_no_code(tmp_path: Path, pg: PgCluster) -> None:
    """A report with the code that waits a day is given up without its text."""
    box = firstboot_box(tmp_path, SEED)
    (box / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
    result = firstboot(box, pg, telegram_api=OFFLINE_API)
    assert result.returncode == 0, result.stderr
    code = code_on_receipt(receipt(box))
    paths = TargetPaths(box / "root")
    assert code in (paths.telegram_queue_dir / "first-boot.json").read_text()
    Retrier(paths, now=lambda: time.time() + 2 * 86400).run()
    kept = paths.telegram_given_up_dir / "first-boot.json"
    assert "not kept: the message held the adopt code" in kept.read_text()
    assert not [p for p, text in texts_under(box / "root").items() if code in text]


def test_a_run_cut_after_its_report_keeps_the_code_it_showed(tmp_path: Path, pg: PgCluster) -> None:
    """A power cut after the report (the code on the receipt, its hash kept) and before the
    complete stamp: the next run does not make another code; its receipt says where the code
    was shown, and the code shown first still opens the box."""
    from installer.firstboot.adopt_code import code_matches

    box = firstboot_box(tmp_path, SEED)
    (box / "root/etc/machine-id").write_text(f"{MACHINE_ID}\n")
    killed = firstboot(box, pg, fault="before:complete")
    assert killed.returncode == -9, killed.stderr
    code = code_on_receipt(receipt(box))
    paths = TargetPaths(box / "root")
    stored = paths.adopt_code_hash.read_bytes()
    finished = firstboot(box, pg)
    assert finished.returncode == 0, finished.stderr
    assert "Adopt code: made by an earlier run of first boot" in receipt(box)
    assert code not in receipt(box)
    assert paths.adopt_code_hash.read_bytes() == stored
    assert code_matches(paths, code)


def test_codes_are_typeable_and_carry_at_least_60_bits() -> None:
    import math

    from installer.firstboot.adopt_code import make_code
    from installer.seed.rules import ADOPT_CODE_ALPHABET, normalise_adopt_code

    assert not set("0O1IL") & set(ADOPT_CODE_ALPHABET)
    codes = {make_code().get_secret_value() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}(-[2-9A-HJKMNP-Z]{4}){3}", code), code
        assert normalise_adopt_code(code.lower().replace("-", " ")) == code
    bits = 16 * math.log2(len(ADOPT_CODE_ALPHABET))
    assert bits >= 60, bits
    assert repr(make_code()) == "SecretStr('**********')"
