"""CHECK-SETUP.html in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is taken off a real seed partition image (mkfs.vfat + mtools, as the image build makes
it), opened from file://, and given a bad setup.txt through its file input, as an operator
would. What it shows (the verdict, each problem with its line, key, message and hint, the
warnings) must be what `clawdie-setup check` says; no secret may show; and the page must make no
request at all: every request is recorded and refused, and any but the page's own load fails.

`python -m` on this module with OUT.png takes the screenshot kept in docs/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from installer.commands.check import render_text
from installer.media import seed_image
from installer.media.check_page import PAGE_NAME
from installer.seed.resolve import check_seed_bytes

CHROMIUM = shutil.which("chromium")
TOKEN_SECRET = "AAHdemoDemoDemoDemoDemoDemoDemo1234"
KEY_SECRET = "abc123def456ghi789jkl"
# An operator's first try: a key of another provider, the token with 'bot' in front, a user
# name for the admin id, a note after the time zone, Wi-Fi with its name still behind '#' and
# the UK's common code, half of the dashboard login.
BAD_SEED = f"""# Clawdie setup
OPENROUTER_API_KEY=sk-proj-{KEY_SECRET}
TELEGRAM_BOT_TOKEN=bot7012345678:{TOKEN_SECRET}
TELEGRAM_ADMIN_ID=@ada_lovelace
ASSISTANT_NAME=Ada
PROFILE=balanced
TIMEZONE=Europe/Ljubljana  # Slovenia
#WIFI_SSID=Home Net 5G
WIFI_PASSWORD=correct-horse
WIFI_COUNTRY=UK
OPERATOR_EMAIL=ada@example.com
""".encode()


def page_off_a_seed_image(work: Path) -> Path:
    """CHECK-SETUP.html as the operator's computer finds it: copied off the FAT image."""
    image = work / "seed.img"
    seed_image.write_seed_image(seed_image.make_plan(image, seed_image.MIN_SIZE, None, {}))
    out = work / "stick"
    out.mkdir()
    subprocess.run(
        ["mcopy", "-i", str(image), f"::{PAGE_NAME}", str(out / PAGE_NAME)],
        check=True,
        capture_output=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    return out / PAGE_NAME


def open_with_seed(
    page_file: Path, seed_file: Path, screenshot: Path | None = None
) -> dict[str, Any]:
    """Open the page in headless Chromium, pick `seed_file`, and read what the page shows."""
    from playwright.sync_api import Route, sync_playwright

    if CHROMIUM is None:
        pytest.fail("chromium is missing: .ci/bootstrap installs Debian's chromium")
    requests: list[str] = []

    own = page_file.as_uri()

    def refuse(route: Route) -> None:
        """Only the page's own file loads; anything else is refused (and fails the test)."""
        if route.request.url == own:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 900, "height": 900})
            context.route("**/*", refuse)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(page_file.as_uri())
            page.set_input_files("#file", str(seed_file))
            page.wait_for_selector("#verdict:not(:empty)", timeout=10_000)
            page.evaluate("document.getElementById('explain').open = true")
            shown = page.evaluate(
                """() => ({
                  verdict: document.getElementById('verdict').firstChild.textContent,
                  problems: [...document.querySelectorAll('#problems li')].map((li) => ({
                    where: li.querySelector('.where').textContent,
                    message: li.querySelector('.msg').textContent,
                    hint: li.querySelector('.hint') ? li.querySelector('.hint').textContent : null,
                  })),
                  warnings: [...document.querySelectorAll('#warnings li .msg')].map(
                    (m) => m.textContent),
                  explain: document.getElementById('text').textContent,
                  body: document.body.innerText,
                })"""
            )
            if screenshot is not None:
                page.evaluate("document.getElementById('explain').open = false")
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    shown["requests"] = requests
    shown["errors"] = errors
    return dict(shown)


def test_the_page_off_a_stick_shows_checks_verdict_and_asks_nothing_of_the_network(
    tmp_path: Path,
) -> None:
    page_file = page_off_a_seed_image(tmp_path)
    seed_file = tmp_path / "setup.txt"
    seed_file.write_bytes(BAD_SEED)

    shown = open_with_seed(page_file, seed_file)

    assert shown["errors"] == []
    assert shown["requests"] == [page_file.as_uri()]  # its own load, nothing else
    expected = check_seed_bytes(BAD_SEED)
    assert len(expected.problems) >= 6
    assert shown["verdict"] == f"\u2718 setup.txt: {len(expected.problems)} problem(s) to fix"
    assert shown["problems"] == [
        {"where": _where(p.line, p.key), "message": p.message, "hint": p.hint}
        for p in expected.problems
    ]
    assert shown["warnings"] == [n.message for n in expected.warnings]
    # the Wi-Fi name still behind '#' is named on its own line
    assert any(p["where"] == "Line 8 \u00b7 WIFI_SSID" for p in shown["problems"])
    assert shown["explain"] == render_text(expected, [], explain=True)  # `check --explain`
    for secret in (TOKEN_SECRET, KEY_SECRET, "correct-horse"):
        assert secret not in shown["body"]
        assert secret not in shown["explain"]


def _where(line: int | None, key: str | None) -> str:
    """How the page heads a problem: `Line 7 · KEY`, `Not in the file · KEY`."""
    head = f"Line {line}" if line is not None else "Not in the file" if key else "Whole file"
    return head + (f" \u00b7 {key}" if key else "")


def main() -> None:
    """Write the screenshot of the page on the bad seed to `sys.argv[1]`."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        page_file = page_off_a_seed_image(Path(work))
        seed_file = Path(work) / "setup.txt"
        seed_file.write_bytes(BAD_SEED)
        open_with_seed(page_file, seed_file, screenshot=Path(sys.argv[1]).resolve())


if __name__ == "__main__":
    main()
