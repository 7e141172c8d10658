"""CHECK-SETUP.html: the seed partition's offline check page, generated from the key declarations.

The page gives in a browser the verdict `clawdie-setup check` gives (problems with their lines
and hints, warnings, the `--explain` view with secrets masked), with nothing sent anywhere. Its
facts are not written twice: every key, tier, secrecy, reserved name, profile, list of time
zones, locales and countries, and the wording kept as data is read here from the checker's own
modules and embedded as JSON; the rules that are code are the page's script
(`check_page.js`), kept equal to the Python checker by `tests/test_check_page.py`, which runs
both on the test corpus.

The output is reproducible: the same sources give the same bytes.
"""

from __future__ import annotations

import codecs
import functools
import json
from pathlib import Path
from typing import Any

from installer.seed import maint_rules, model, net_rules, profiles, reader, resolve, resolved, rules
from installer.seed.countries import CODES
from installer.seed.locales import NAMES as LOCALE_NAMES

PAGE_NAME = "CHECK-SETUP.html"
_HERE = Path(__file__).resolve().parent
_TEMPLATE = _HERE / "check_page.html"
_SCRIPT = _HERE / "check_page.js"
_DATA_MARK = "/*@DATA@*/"
_SCRIPT_MARK = "/*@SCRIPT@*/"
# The code points anyascii transliterates (to 0x323AF: CJK extension H), as `derive_hostname`
# does for a display name; the page carries them all (its largest part, about 480 KB).
_TRANSLIT_RANGES = ((0x00A0, 0xD7FF), (0xF900, 0x323AF))
# A run of this many code points without a transliteration ends a segment of the table.
_TRANSLIT_GAP = 32


def _cp1252_table() -> list[int | None]:
    """Byte -> code point as Python's cp1252 codec reads it (None: the codec refuses it)."""
    table: list[int | None] = []
    for byte in range(256):
        try:
            table.append(ord(bytes([byte]).decode("cp1252")))
        except UnicodeDecodeError:
            table.append(None)
    return table


_LENGTH_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _transliterations() -> list[tuple[int, str, str]]:
    """anyascii's ASCII for each code point of `_TRANSLIT_RANGES`, as segments: (first code
    point, one digit of `_LENGTH_DIGITS` a code point giving the length of its text, the texts
    one after the other). Long runs of code points anyascii leaves empty are left out (a code
    point in no segment gives nothing). Compact: every printable character occurs in some text,
    so no separator is free."""
    from anyascii import anyascii

    segments: list[tuple[int, str, str]] = []
    for low, high in _TRANSLIT_RANGES:
        start: int | None = None
        texts: list[str] = []
        empty = 0
        for point in range(low, high + 2):
            text = anyascii(chr(point)) if point <= high else ""
            if text:
                if start is None:
                    start, texts = point, []
                texts.extend([""] * empty)
                texts.append(text)
                empty = 0
            elif start is not None:
                empty += 1
                if empty >= _TRANSLIT_GAP or point > high:
                    lengths = "".join(_LENGTH_DIGITS[len(x)] for x in texts)
                    segments.append((start, lengths, "".join(texts)))
                    start, empty = None, 0
    return segments


def _script_runs() -> list[tuple[int, int, str]]:
    """Runs of letters by the first word of their Unicode name, as the reader names a key's
    other scripts (`reader._other_scripts`): (first, last, name); gaps hold no letter."""
    runs: list[list[Any]] = []
    for point in range(0x80, 0x30000):
        char = chr(point)
        if not char.isalpha():
            continue
        name = reader._other_scripts(char)[0]
        if runs and runs[-1][2] == name:
            runs[-1][1] = point
        else:
            runs.append([point, point, name])
    return [(a, b, n) for a, b, n in runs]


def _mapping() -> dict[str, Any]:
    mapping = rules.default_mapping()
    return {
        "version": mapping.version,
        "default_profile": mapping.default_profile,
        "providers": [
            {"name": p.name, "key": p.key, "label": p.label} for p in mapping.providers.values()
        ],
        "profiles": [
            {
                "name": name,
                "primary": [p.primary.provider, p.primary.model],
                "fallback": [p.fallback.provider, p.fallback.model],
                "compaction": [p.compaction.provider, p.compaction.model],
                "cooldown": p.fallback_cooldown_seconds,
            }
            for name, p in mapping.profiles.items()
        ],
    }


def page_data() -> dict[str, Any]:
    """Every fact the page's checker needs, read from the checker's modules."""
    return {
        "seed_name": reader.SEED_NAME,
        "max_seed_bytes": reader.MAX_SEED_BYTES,
        "fields": [
            {"key": s.key, "tier": s.tier, "doc": s.doc, "secret": s.secret}
            for s in model.field_specs()
        ],
        "invisible_edge": reader._INVISIBLE_EDGE,
        "lookalikes": {chr(k): chr(v) for k, v in sorted(reader._LOOKALIKES.items())},
        "cp1252": _cp1252_table(),
        "boms": [
            [list(codecs.BOM_UTF32_LE), "utf-32-le", "UTF-32"],
            [list(codecs.BOM_UTF32_BE), "utf-32-be", "UTF-32"],
            [list(codecs.BOM_UTF8), "utf-8", "UTF-8 with byte-order mark (Notepad/PowerShell)"],
            [list(codecs.BOM_UTF16_LE), "utf-16-le", 'UTF-16 (Notepad "Unicode" or PowerShell)'],
            [list(codecs.BOM_UTF16_BE), "utf-16-be", "UTF-16 big-endian"],
        ],
        "reserved_host_labels": sorted(rules.RESERVED_HOST_LABELS),
        "reserved_accounts": sorted(rules.RESERVED_ACCOUNTS),
        "ssh_key_types": sorted(rules.SSH_KEY_TYPES),
        "min_password": rules.MIN_PASSWORD,
        "max_password": rules.MAX_PASSWORD,
        "min_rsa_bits": rules.MIN_RSA_BITS,
        "max_rsa_bits": rules.MAX_RSA_BITS,
        "default_hostname": rules.DEFAULT_HOSTNAME,
        "default_assistant_name": rules.DEFAULT_ASSISTANT_NAME,
        "default_service_account": rules.DEFAULT_SERVICE_ACCOUNT,
        "adopt_code_alphabet": rules.ADOPT_CODE_ALPHABET,
        "adopt_code_groups": rules.ADOPT_CODE_GROUPS,
        "adopt_code_group_len": rules.ADOPT_CODE_GROUP_LEN,
        "fingerprint_digits": rules.FINGERPRINT_DIGITS,
        "time_zones": sorted(rules._time_zones().values()),
        "locales": list(LOCALE_NAMES),
        "countries": sorted(CODES),
        "country_aliases": net_rules._COUNTRY_ALIASES,
        "max_ssid_bytes": net_rules.MAX_SSID_BYTES,
        "min_wifi_password": net_rules.MIN_WIFI_PASSWORD,
        "max_wifi_password": net_rules.MAX_WIFI_PASSWORD,
        "max_dns_servers": net_rules.MAX_DNS_SERVERS,
        "window_minimum": maint_rules.WINDOW_MINIMUM_MIN,
        "default_window": maint_rules.DEFAULT_WINDOW,
        "max_recipients": maint_rules.MAX_RECIPIENTS,
        "backup_dir_refused": list(maint_rules.BACKUP_DIR_REFUSED),
        "max_path": maint_rules.MAX_PATH,
        "mapping": _mapping(),
        "role_keys": [[role, *keys] for role, keys in profiles.ROLE_KEYS.items()],
        "cooldown_key": profiles.COOLDOWN_KEY,
        "where_to_get": {
            k: s.missing_hint
            for k, s in model.DECLARATIONS.items()
            if s.missing_hint and s.group != "wifi"
        },
        "wifi_keys": list(model.WIFI_KEYS),
        "wifi_hints": {
            k: s.missing_hint for k, s in model.DECLARATIONS.items() if s.group == "wifi"
        },
        "plaintext_password_keys": list(resolve.PLAINTEXT_PASSWORD_KEYS),
        "fully_hidden_keys": sorted(resolve.FULLY_HIDDEN_KEYS),
        "note_normalised": sorted(resolve._NOTE_NORMALISED),
        "adopt_needs": resolve._ADOPT_NEEDS,
        "install_modes": list(rules.INSTALL_MODES),
        "backup_suffix": rules.BACKUP_SUFFIX,
        "restore_keys": list(resolve._RESTORE_KEYS),
        "restore_install_keys": list(resolve._RESTORE_INSTALL_KEYS),
        "restore_needs": {
            k: s.missing_hint for k, s in model.DECLARATIONS.items() if s.restore_mode == "needed"
        },
        "refused": sorted(resolved.REFUSED),
        "translit": _transliterations(),
        "translit_digits": _LENGTH_DIGITS,
        "scripts": _script_runs(),
    }


@functools.cache
def render_check_page() -> bytes:
    """The page: the template with the script and the data embedded (same input, same bytes);
    made once a process (a second of work)."""
    data = json.dumps(page_data(), ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    data = data.replace("</", "<\\/")  # never a closing tag inside the script element
    script = _SCRIPT.read_text(encoding="utf-8").replace(_DATA_MARK, data)
    template = _TEMPLATE.read_text(encoding="utf-8")
    return template.replace(_SCRIPT_MARK, script).encode("utf-8")


def main() -> None:
    """`python -m installer.media.check_page OUT`: write the page (for a look in a browser)."""
    import sys

    Path(sys.argv[1]).write_bytes(render_check_page())


if __name__ == "__main__":
    main()
