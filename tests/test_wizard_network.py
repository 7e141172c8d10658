"""The wizard and the network fields: Wi-Fi is asked only when a Wi-Fi line is there, the Wi-Fi
password is masked on the form and in the review, and the answers resolve."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from installer.seed.resolve import apply_answers, check_seed_bytes
from installer.wizard import WizardOutcome
from installer.wizard.app import WizardApp
from tests.helpers.seeds import valid
from tests.helpers.sentinels import SENTINEL, WIFI_PASSWORD
from tests.helpers.wizard import error_text, run_wizard, screen_text, type_into


def test_a_wifi_name_alone_asks_for_the_password_masked_and_the_country() -> None:
    check = check_seed_bytes(valid("WIFI_SSID=HomeNet"))
    seen: list[str | None] = []

    async def scenario(pilot: Pilot[WizardOutcome], app: WizardApp) -> None:
        seen.extend(widget.id for widget in app.screen.query(Input))
        assert app.screen.query_one("#input-WIFI_PASSWORD", Input).password
        assert not app.screen.query_one("#input-WIFI_COUNTRY", Input).password
        assert "required because WIFI_SSID is set" in error_text(app, "WIFI_COUNTRY")
        await type_into(pilot, "WIFI_COUNTRY", "UK")
        assert "write GB" in error_text(app, "WIFI_COUNTRY")
        await type_into(pilot, "WIFI_COUNTRY", "gb")
        await type_into(pilot, "WIFI_PASSWORD", WIFI_PASSWORD)
        assert error_text(app, "WIFI_PASSWORD") == ""
        assert SENTINEL not in screen_text(app)
        await pilot.press("f10")
        await pilot.pause()
        assert SENTINEL not in screen_text(app)  # the review masks it
        await pilot.press("enter")

    outcome = run_wizard(check, scenario)
    assert seen == ["input-WIFI_PASSWORD", "input-WIFI_COUNTRY"]
    assert outcome == WizardOutcome("done", {"WIFI_PASSWORD": WIFI_PASSWORD, "WIFI_COUNTRY": "gb"})
    answered = apply_answers(check, outcome.answers)
    wifi = answered.require_resolved().network.wifi
    assert wifi is not None
    assert (wifi.ssid, wifi.country) == ("HomeNet", "GB")
    assert wifi.password.get_secret_value() == WIFI_PASSWORD
