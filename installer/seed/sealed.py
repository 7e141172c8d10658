"""The seed copy without its passwords (issue 27): what first boot needs, derived before the
copy is written, so no plaintext password ever reaches the target's disk.

The copy is the operator's setup.txt with each password line's value replaced by its derived
form, on the same line, in the same encoding, with the same line ends: line numbers, notes and
warnings (the plaintext-password warning in the summary included) read the same as from the
stick. The derived forms:

- `OPERATOR_PASSWORD`: the dashboard's Better Auth scrypt hash (`saltHex:keyHex`), what the
  database step stores;
- `CLAWDIE_USER_PASSWORD`: its sha512-crypt hash (`$6$…`), what `chpasswd -e` takes;
- `WIFI_PASSWORD`: the WPA PSK (64 hex digits), what the supplicant takes.

They travel in the password's own key rather than in keys of their own: the copy then has
exactly the operator's keys and lines, and no new key exists that an operator could write. An
operator's seed still refuses a hash where a password belongs (`rules.check_password`); only
the copy, read with `sealed=True`, takes these forms, and only in these keys. The Wi-Fi PSK is a
form every seed may use (an operator may give the raw PSK).

The console's answers, stored next to the copy, are sealed the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from installer.seed.reader import BOMS, decode_seed, parse_seed
from installer.seed.resolve import SeedCheck
from installer.seed.rules import is_better_auth_hash, is_sha512_crypt

_BOMS = tuple(bom for bom, _, _ in BOMS)


def derive_secrets(check: SeedCheck) -> dict[str, str]:
    """Each password of a valid seed as first boot needs it (key -> derived form). A value
    already derived (a copy sealed before) is kept as it is."""
    from installer.seed.hashes import derive_psk, hash_better_auth_password, hash_system_password

    seed = check.require_resolved()
    derived: dict[str, str] = {}
    operator = seed.accounts.operator
    if operator is not None:
        value = operator.password.get_secret_value()
        derived["OPERATOR_PASSWORD"] = (
            value if is_better_auth_hash(value) else hash_better_auth_password(value)
        )
    if seed.accounts.user_password is not None:
        value = seed.accounts.user_password.get_secret_value()
        derived["CLAWDIE_USER_PASSWORD"] = (
            value if is_sha512_crypt(value) else hash_system_password(value)
        )
    wifi = seed.network.wifi
    if wifi is not None:
        derived["WIFI_PASSWORD"] = derive_psk(wifi.password.get_secret_value(), wifi.ssid)
    return derived


def render_sealed_seed(data: bytes, derived: Mapping[str, str]) -> bytes:
    """`data` (setup.txt bytes) with the value of every key in `derived` replaced by its
    derived form where it stands on its line (quotes, `export` and spaces around it kept, so
    the reader's notes stay); a line of such a key whose value cannot be found is replaced
    whole by `KEY=derived form`. Same line numbers, encoding, byte-order mark and line ends."""
    parsed = parse_seed(data, derived.keys() | _known_keys())
    lines = {e.line: (e.key, e.value) for e in parsed.entries if e.key in derived}
    for p in parsed.problems:
        if p.line and p.key and p.key in derived and p.line not in lines:
            lines[p.line] = (p.key, "")
    if not lines:
        return data
    text, codec, _ = decode_seed(data)
    parts = re.split(r"(\r\n|\r|\n)", text)  # as `reader.split_lines` counts lines
    for number, (key, value) in lines.items():
        raw = parts[2 * (number - 1)]
        equals = raw.find("=")
        at = raw.find(value, equals + 1) if value and equals != -1 else -1
        if at == -1:
            parts[2 * (number - 1)] = f"{key}={derived[key]}"
        else:
            parts[2 * (number - 1)] = raw[:at] + derived[key] + raw[at + len(value) :]
    bom = next((b for b in _BOMS if data.startswith(b)), b"")
    return bom + "".join(parts).encode(codec)


def seal(data: bytes, answers: Mapping[str, str], check: SeedCheck) -> tuple[bytes, dict[str, str]]:
    """The seed copy and the console answers as they are stored on the target: no password
    in clear (see the module's note). `check` is the valid result of `data` with `answers`."""
    derived = derive_secrets(check)
    sealed_answers = {k: derived.get(k, v) for k, v in answers.items()}
    return render_sealed_seed(data, derived), sealed_answers


def _known_keys() -> frozenset[str]:
    from installer.seed.model import KNOWN_KEYS

    return frozenset(KNOWN_KEYS)
