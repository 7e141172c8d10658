"""The value rules of setup.txt: one plain `check_*` function a field (str -> normalised value,
or `SeedValueError`) and the names they reserve. Pure: no pydantic, nothing that touches the
system, so `check`, the wizard and `set-operator` run the very same rule on one value. Messages
never contain the value: it may be a secret. `installer.seed.model` applies these to setup.txt.

Decisions documented here (DESIGN leaves them open):
- Reserved host labels: `system` (the platform namespace), `localhost`, `localdomain`, `local`
  (mDNS would make `local.local`), `broadcasthost` and the `ip6-*` names of Debian's /etc/hosts,
  `wpad` and `isatap` (proxy/tunnel auto-discovery names that other machines trust).
- An all-digit host name is refused (it reads as an address).
- Reserved service accounts: Debian's base system users, `postgres`, `sshd`, `system`.
- Passwords: 12..128 characters after NFKC normalisation (Better Auth normalises with NFKC and
  caps at 128); a value that looks like a password hash is refused.
- Host names in upper case are lowered; locales without a charset get `.UTF-8`.
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata

from installer.seed import profiles


class SeedValueError(ValueError):
    """A rule refused a value: message and hint for the operator, never the value itself."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


RESERVED_HOST_LABELS = frozenset(
    {
        "system",
        "localhost",
        "localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "wpad",
        "isatap",
    }
)
DEFAULT_HOSTNAME = "clawdie"
DEFAULT_ASSISTANT_NAME = "Clawdie"
DEFAULT_SERVICE_ACCOUNT = "clawdie"
RESERVED_ACCOUNTS = frozenset(
    (
        "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list "
        "irc gnats nobody _apt messagebus sshd postgres polkitd avahi tss statd system "
        "systemd-network systemd-resolve systemd-timesync systemd-coredump nogroup "
        "operator admin"
    ).split()
)
_HOST_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PASSWORD_HASH_RE = re.compile(
    r"(\$(1|2[abxy]?|5|6|y|gy|7|argon2(id|i|d)|scrypt|pbkdf2[-_a-z0-9]*)\$.+)"
    r"|([0-9a-f]{32}:[0-9a-f]{128})"  # Better Auth's scrypt "salt:key"
)
SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# The forms a password takes in the installer's own seed copy (never in an operator's seed, where
# `check_password` refuses them): the dashboard's Better Auth scrypt hash and the sha512-crypt
# hash `chpasswd -e` takes for the fallback password.
_BETTER_AUTH_HASH_RE = re.compile(r"[0-9a-f]{32}:[0-9a-f]{128}")
_SHA512_CRYPT_RE = re.compile(r"\$6\$(rounds=[0-9]{4,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}")


def is_better_auth_hash(value: str) -> bool:
    """Whether an OPERATOR_PASSWORD value is already the dashboard's hash (`saltHex:keyHex`)."""
    return bool(_BETTER_AUTH_HASH_RE.fullmatch(value))


def is_sha512_crypt(value: str) -> bool:
    """Whether a CLAWDIE_USER_PASSWORD value is already its sha512-crypt hash (`$6$…`)."""
    return bool(_SHA512_CRYPT_RE.fullmatch(value))


MIN_PASSWORD = 12
MAX_PASSWORD = 128


def _no_spaces(value: str, what: str) -> None:
    if any(c.isspace() for c in value):
        raise SeedValueError(
            f"the {what} contains a space", f"copy the {what} again; it is one word with no spaces"
        )


def check_api_key(value: str, prefix: str = "", label: str = "provider") -> str:
    """A provider API key: one printable ASCII word, with the provider's prefix."""
    _no_spaces(value, f"{label} key")
    if not value.isascii() or not value.isprintable():
        raise SeedValueError(f"the {label} key has characters an API key never has")
    if prefix and not value.startswith(prefix):
        hint = f"{label} keys start with {prefix}; create one on the provider's keys page"
        if prefix == "sk-or-" and value.startswith("sk-"):
            hint = "this looks like a key of another provider; OpenRouter keys start with sk-or-"
        raise SeedValueError(f"this is not a {label} key", hint)
    if len(value) < 20:
        raise SeedValueError(f"the {label} key is too short", "copy the whole key")
    return value


def check_openrouter_key(value: str) -> str:
    """OpenRouter key: `sk-or-…` (create at openrouter.ai, Settings → Keys)."""
    check_api_key(value, "sk-or-", "OpenRouter")
    if not re.fullmatch(r"sk-or-[A-Za-z0-9_-]+", value):
        raise SeedValueError("the OpenRouter key has characters a key never has")
    return value


def check_bot_token(value: str) -> str:
    """Telegram bot token: `<bot id digits>:<35 of A-Z a-z 0-9 _ ->`."""
    _no_spaces(value, "bot token")
    if re.fullmatch(r"bot\d+:.*", value, re.IGNORECASE):
        raise SeedValueError("the token starts with 'bot'", "remove 'bot' in front of the digits")
    bot_id = value.split(":", 1)[0]
    if ":" not in value or not bot_id.isdigit() or not bot_id.isascii():
        raise SeedValueError(
            "this is not a Telegram bot token",
            "BotFather shows it as digits, a colon, then 35 letters, digits, _ or -",
        )
    secret = value.split(":", 1)[1]
    if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
        raise SeedValueError("the part after ':' has characters a bot token never has")
    if len(secret) != 35:
        raise SeedValueError(
            f"the part after ':' has {len(secret)} characters; a bot token has 35",
            "copy the whole token from BotFather again",
        )
    return value


def _refuse_other_digits(value: str, what: str) -> None:
    """Numbers are written with 0-9. int() also reads Arabic-Indic and full-width digits, and
    fails on superscripts with its own message that quotes the value."""
    if any(not c.isascii() and unicodedata.category(c)[0] == "N" for c in value):
        raise SeedValueError(
            f"the {what} has digits other than 0-9 (full-width, superscript or of another script)",
            "use the digits 0-9",
        )


def check_admin_id(value: str) -> int:
    """Telegram admin id: the admin's numeric user id."""
    if value.startswith("@"):
        raise SeedValueError(
            "this is a user name; the admin id is a number",
            "send a message to @userinfobot on Telegram: it replies with your numeric id",
        )
    if value.startswith("-"):
        raise SeedValueError(
            "negative ids belong to groups and channels; use your own user id",
            "send a message to @userinfobot on Telegram: it replies with your numeric id",
        )
    _refuse_other_digits(value, "admin id")
    if not value.isdigit() or not value.isascii():
        raise SeedValueError(
            "the admin id must be a number (digits only)",
            "send a message to @userinfobot on Telegram: it replies with your numeric id",
        )
    if len(value.lstrip("0")) > 16 or not 0 < int(value) < 2**53:
        raise SeedValueError("the admin id is out of range for a Telegram user id")
    return int(value)


# Unicode's Bidi_Control characters: an override shows "Helper<U+202E>gnp.exe" as
# "Helperexe.png" on the console, in Telegram and in the dashboard. Text in any script,
# right-to-left ones included, displays correctly without them.
_DIRECTION_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Letters that draw nothing: the Hangul fillers (default-ignorable, yet category Lo) and the
# blank braille pattern (So).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _refuse_direction_controls(value: str, what: str, hint: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in value if c in _DIRECTION_CONTROLS})
    if found:
        raise SeedValueError(
            f"the {what} contains a right-to-left override or other direction control "
            f"({', '.join(found)}): it can make text show in another order than typed",
            hint,
        )


def shows_something(text: str) -> bool:
    """Whether `text` draws anything: it has a letter, digit, punctuation or symbol (Unicode
    categories L*, N*, P*, S*) other than a blank one. Spaces (Z*), format characters such as
    zero-width spaces and joiners (Cf), controls (Cc) and combining marks on nothing (M*) do not
    count."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK_LETTERS for c in text)


def check_assistant_name(value: str) -> str:
    """Display name: 1-32 characters, any script; nothing that hides or reorders text."""
    name = unicodedata.normalize("NFC", value)
    if len(name) > 32:
        raise SeedValueError(f"the name has {len(name)} characters; at most 32")
    _refuse_direction_controls(
        name,
        "name",
        "type the name again instead of pasting it; names in right-to-left scripts need no "
        "control characters",
    )
    if not shows_something(name):
        raise SeedValueError(
            "the name looks empty: it is made only of spaces or invisible characters",
            "type a name people can read, e.g. Ada",
        )
    return name


def check_profile(value: str) -> str:
    """A profile of the shipped mapping."""
    name = value.lower()
    names = list(default_mapping().profiles)
    if name not in names:
        raise SeedValueError("unknown profile", f"use one of: {', '.join(names)}")
    return name


@functools.cache
def default_mapping() -> profiles.ProfileMapping:
    """The shipped profile mapping, read once."""
    return profiles.load_mapping()


@functools.cache
def _time_zones() -> dict[str, str]:
    import pkgutil  # not importlib.resources: that costs ~9 ms of check's cold start

    data = pkgutil.get_data("tzdata", "zones")
    if data is None:  # only a loader that cannot read package data returns None
        raise FileNotFoundError("tzdata/zones")
    names = data.decode("utf-8").split()
    return {n.lower(): n for n in names if n != "Factory"}


def check_timezone(value: str) -> str:
    """IANA time zone name (Europe/Berlin, America/New_York, UTC)."""
    zones = _time_zones()
    canonical = zones.get(value.lower().replace(" ", "_"))
    if canonical:
        return canonical
    before_comment = re.split(r"[ \t]+#", value, maxsplit=1)[0].strip()
    if before_comment != value and before_comment.lower().replace(" ", "_") in zones:
        zone = zones[before_comment.lower().replace(" ", "_")]
        raise SeedValueError(
            "unknown time zone: setup.txt has no comments after a value",
            f"write TIMEZONE={zone} alone on the line (a note goes on a line of its own, "
            "starting with #)",
        )
    city = "/" + value.lower().replace(" ", "_")
    in_city = sorted(zones[z] for z in zones if z.endswith(city))
    if in_city:  # a bare city: `Ljubljana` is Europe/Ljubljana
        raise SeedValueError("unknown time zone", f"did you mean {' or '.join(in_city[:3])}?")
    import difflib

    close = difflib.get_close_matches(value.lower(), list(zones), n=1, cutoff=0.75)
    hint = f"did you mean {zones[close[0]]}?" if close else "use an IANA name like Europe/Berlin"
    raise SeedValueError("unknown time zone", hint)


def check_hostname(value: str) -> str:
    """RFC 1123 host label: a-z, 0-9 and '-', at most 63, not a reserved name."""
    name = value.lower()
    if "." in name:
        raise SeedValueError(
            "a host name is one label without dots", "put a domain in AGENT_DOMAIN instead"
        )
    if len(name) > 63:
        raise SeedValueError(f"the host name has {len(name)} characters; at most 63")
    if "_" in name:
        raise SeedValueError("a host name cannot contain '_'", "use '-' instead of '_'")
    if not _HOST_LABEL_RE.fullmatch(name):
        raise SeedValueError(
            "a host name uses only a-z, 0-9 and '-', and does not start or end with '-'"
        )
    if name.isdigit():
        raise SeedValueError("a host name cannot be only digits", "add a letter")
    if name in RESERVED_HOST_LABELS:
        raise SeedValueError(f"'{name}' is a reserved name", "choose another host name")
    return name


def derive_hostname(assistant_name: str) -> str:
    """The default host name from the display name: ASCII, lower case, others to '-'."""
    if assistant_name.isascii():
        ascii_name = assistant_name
    else:
        from anyascii import anyascii

        ascii_name = anyascii(assistant_name)
    label = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    if not label or label.isdigit() or label in RESERVED_HOST_LABELS:
        return DEFAULT_HOSTNAME
    return label


# Domains that name the loopback or nothing (RFC 6761: localhost, invalid; Debian's
# /etc/hosts: localhost.localdomain). AGENT_DOMAIN goes on /etc/hosts' 127.0.1.1 line, where
# `localhost` would make `127.0.1.1 localhost <host>`.
_RESERVED_DOMAINS = RESERVED_HOST_LABELS | {"localhost.localdomain"}
_RESERVED_TOP_LABELS = frozenset({"localhost", "invalid"})


def check_domain(value: str) -> str:
    """DNS name: labels of a-z, 0-9 and '-', at most 253 characters, not a reserved name."""
    name = value.lower().rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels):
        raise SeedValueError(
            "not a valid domain name", "use labels of a-z, 0-9 and '-' joined by dots"
        )
    if name in _RESERVED_DOMAINS or labels[-1] in _RESERVED_TOP_LABELS:
        raise SeedValueError(
            f"'{name}' is a reserved name, not a domain for the dashboard",
            "remove the line to use <hostname>.local, or use a domain you own",
        )
    return name


@functools.cache
def _locales() -> dict[str, str]:
    """Debian's UTF-8 locales, lower case -> as written (`sr_rs@latin` -> `sr_RS@latin`)."""
    from installer.seed.locales import NAMES  # only when LOCALE is given

    return {name.lower(): name for name in NAMES}


def _utf8_locale(name: str) -> str:
    """`sr_RS@latin` -> `sr_RS.UTF-8@latin`."""
    base, at, modifier = name.partition("@")
    return f"{base}.UTF-8{at}{modifier}"


def check_locale(value: str) -> str:
    """A UTF-8 locale Debian can generate, such as en_US.UTF-8 (no charset means UTF-8)."""
    match = re.fullmatch(
        r"([A-Za-z]{1,3}(?:_[A-Za-z]{2})?)(?:\.([A-Za-z0-9-]+))?(@[A-Za-z]+)?", value
    )
    if not match:
        raise SeedValueError("not a locale name", "write it like en_US.UTF-8 or de_DE.UTF-8")
    base, charset, modifier = match.group(1), match.group(2), match.group(3) or ""
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise SeedValueError("only UTF-8 locales are supported", f"write {base}.UTF-8{modifier}")
    locales = _locales()
    known = locales.get(f"{base}{modifier}".lower())
    if known is None:
        wanted = _utf8_locale(f"{base}{modifier}")
        raise SeedValueError(
            f"{wanted} is not a locale Debian can generate", _locale_hint(base, modifier)
        )
    return _utf8_locale(known)


def _locale_hint(base: str, modifier: str) -> str:
    """The same language's countries, else the closest name, else an example."""
    locales = _locales()
    language = base.split("_")[0].lower()
    same_language = sorted(
        name for key, name in locales.items() if key.split("@")[0].split("_")[0] == language
    )
    countries = sorted({n.split("@")[0].split("_")[1] for n in same_language if "_" in n})
    if countries:
        typed = base.partition("_")[2].upper()
        preferred = (typed, language.upper(), "US", countries[0])
        main = next(c for c in preferred if c in countries)
        return (
            f"Debian has {language} for {', '.join(countries)}: write e.g. {language}_{main}.UTF-8"
        )
    if same_language:  # a language without countries (eo)
        return f"did you mean {_utf8_locale(same_language[0])}?"
    import difflib

    close = difflib.get_close_matches(f"{base}{modifier}".lower(), list(locales), n=1, cutoff=0.75)
    if close:
        return f"did you mean {_utf8_locale(locales[close[0]])}?"
    return "write it like en_US.UTF-8 or de_DE.UTF-8"


def check_keymap(value: str) -> str:
    """Console keyboard layout such as us, de, fr, uk, de-latin1."""
    keymap = value.lower()
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", keymap):
        raise SeedValueError("not a keyboard layout name", "write it like us, de, fr or uk")
    return keymap


def check_email(value: str) -> str:
    """E-mail address of the dashboard operator (shown in the dashboard: no invisible text)."""
    if not re.fullmatch(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+", value):
        raise SeedValueError("not an e-mail address", "write it like name@example.com")
    _refuse_direction_controls(value, "e-mail address", "type the address again")
    hidden = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) == "Cf"})
    if hidden:
        raise SeedValueError(
            f"the e-mail address contains invisible characters ({', '.join(hidden)})",
            "type the address again instead of pasting it",
        )
    return value.lower()


def check_password(value: str) -> str:
    """A password: 12-128 characters (NFKC-normalised, as the dashboard's verifier does)."""
    password = unicodedata.normalize("NFKC", value)
    if _PASSWORD_HASH_RE.fullmatch(password):
        raise SeedValueError(
            "this looks like a password hash, not a password",
            "write the password itself; the installer hashes it",
        )
    if len(password) < MIN_PASSWORD:
        raise SeedValueError(f"the password is shorter than {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise SeedValueError(f"the password is longer than {MAX_PASSWORD} characters")
    return password


def check_ssh_key(value: str) -> str:
    """One OpenSSH public key line: `type base64 [comment]`, of a type and size sshd takes."""
    if "PRIVATE KEY" in value:
        raise SeedValueError(
            "this is a PRIVATE key; it must never be on the stick",
            "delete it from setup.txt now and put the one-line .pub file's content here",
        )
    parts = value.split(None, 2)
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise SeedValueError(
            "not an OpenSSH public key",
            "paste the whole line of your .pub file, e.g. id_ed25519.pub (ssh-ed25519 AAAA…)",
        )
    key_type, blob = parts[0], parts[1]
    comment = parts[2] if len(parts) > 2 else ""
    if any(t in comment.split() for t in SSH_KEY_TYPES):
        raise SeedValueError(
            "two keys on one line; only one key is supported", "keep one of the two keys"
        )
    _refuse_direction_controls(
        comment, "key's comment", "remove the comment after the key, or type it again"
    )
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        raise SeedValueError("the key is damaged (not valid base64)", "copy it again") from None
    fields = _ssh_wire_strings(raw)
    if fields is None or len(fields) < 2 or fields[0] != key_type.encode():
        raise SeedValueError(
            "the key is damaged or cut short", "copy the whole line of the .pub file again"
        )
    _check_ssh_key_fields(key_type, fields[1:])
    return " ".join(p for p in (key_type, blob, comment) if p)


MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384  # OpenSSH refuses larger moduli
# ecdsa-sha2-<curve>: the curve's name, then the point uncompressed (0x04, x, y).
_ECDSA_POINT_BYTES = {b"nistp256": 65, b"nistp384": 97, b"nistp521": 133}


def _check_ssh_key_fields(key_type: str, fields: list[bytes]) -> None:
    """The fields after the type in an OpenSSH key blob: their number and shape per type
    (RFC 4253 6.6, RFC 5656 3.1, RFC 8709 4, OpenSSH PROTOCOL.u2f), and the RSA modulus size."""
    if key_type == "ssh-rsa":
        if len(fields) != 2:
            raise _damaged_key()
        exponent, modulus = (int.from_bytes(f, "big") for f in fields)
        if exponent < 3 or exponent % 2 == 0 or modulus % 2 == 0:
            raise _damaged_key()
        bits = modulus.bit_length()
        if bits < MIN_RSA_BITS:
            raise SeedValueError(
                f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed "
                "(shorter keys can be broken)",
                "make a new key with ssh-keygen -t ed25519 and paste its .pub file",
            )
        if bits > MAX_RSA_BITS:
            raise SeedValueError(
                f"this RSA key has {bits} bits; OpenSSH refuses more than {MAX_RSA_BITS}",
                "make a new key with ssh-keygen -t ed25519 and paste its .pub file",
            )
        return
    if key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        # The 32-byte key; a security key's also names its application (e.g. "ssh:").
        count = 1 if key_type == "ssh-ed25519" else 2
        if len(fields) != count or len(fields[0]) != 32:
            raise _damaged_key()
        return
    # ecdsa-sha2-nistpNNN and sk-ecdsa-sha2-nistp256@openssh.com (which adds an application).
    curve = key_type.removeprefix("sk-").split("@")[0].rsplit("-", 1)[1].encode()
    count = 3 if key_type.startswith("sk-") else 2
    if (
        len(fields) != count
        or fields[0] != curve
        or len(fields[1]) != _ECDSA_POINT_BYTES[curve]
        or fields[1][:1] != b"\x04"
    ):
        raise _damaged_key()


def _damaged_key() -> SeedValueError:
    return SeedValueError(
        "the key is damaged or cut short", "copy the whole line of the .pub file again"
    )


def _ssh_wire_strings(blob: bytes) -> list[bytes] | None:
    """Split an SSH key blob into its length-prefixed strings; None if they do not fill it."""
    fields = []
    pos = 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            return None
        length = int.from_bytes(blob[pos : pos + 4], "big")
        pos += 4
        if pos + length > len(blob):
            return None
        fields.append(blob[pos : pos + length])
        pos += length
    return fields


def check_account(value: str) -> str:
    """A Linux user name (a-z, 0-9, '-', '_', at most 32), not a system account."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", value):
        raise SeedValueError(
            "not a valid user name",
            "use lower-case letters, digits, '-' and '_', starting with a letter, at most 32",
        )
    if value in RESERVED_ACCOUNTS or value.startswith("systemd-"):
        raise SeedValueError(f"'{value}' is a system account name", "choose another name")
    return value


def check_provider(value: str) -> str:
    """A provider of the mapping (openrouter, openai, anthropic, zai, deepseek)."""
    name = value.lower()
    known = list(default_mapping().providers)
    if name not in known:
        raise SeedValueError("unknown provider", f"use one of: {', '.join(known)}")
    return name


def check_model_name(value: str) -> str:
    """A model id as the provider names it (OpenRouter: vendor/model)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}", value):
        raise SeedValueError("not a model id", "write it as the provider lists it, e.g. openai/o3")
    return value


def check_cooldown(value: str) -> int:
    """Seconds before retrying the primary after a fallback (0-86400)."""
    _refuse_other_digits(value, "number of seconds")
    if (
        not value.isascii()
        or not value.isdigit()
        or len(value.lstrip("0")) > 5
        or not 0 <= int(value) <= 86400
    ):
        raise SeedValueError("must be a whole number of seconds from 0 to 86400")
    return int(value)


INSTALL_MODES = ("fresh", "adopt", "restore", "reset")


def check_install_mode(value: str) -> str:
    """fresh (new installation), adopt (fill blanks of an existing one), restore (a new box
    from a backup) or reset (factory reset of an installed box)."""
    mode = value.lower()
    if mode not in INSTALL_MODES:
        raise SeedValueError("unknown install mode", "use fresh, adopt, restore or reset")
    return mode


# age's identity: "AGE-SECRET-KEY-1" and 58 bech32 characters (upper case as age writes it).
_AGE_IDENTITY_RE = re.compile(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}")
BACKUP_SUFFIX = ".backup.age"


def check_backup_identity(value: str) -> str:
    """The owner's age identity a backup was encrypted to (AGE-SECRET-KEY-1…, one line)."""
    identity = value.strip().upper()
    if not _AGE_IDENTITY_RE.fullmatch(identity):
        raise SeedValueError(
            "not an age identity",
            "copy the line that starts with AGE-SECRET-KEY-1 from the owner's key file",
        )
    return identity


def check_backup_file(value: str) -> str:
    """The backup's file name on the stick, next to setup.txt: a name, not a path."""
    name = value.strip()
    if not name or "/" in name or "\\" in name or name in {".", ".."} or len(name) > 255:
        raise SeedValueError(
            "must be the name of a file next to setup.txt, not a path",
            f"copy the backup (…{BACKUP_SUFFIX}) next to setup.txt and give its name",
        )
    if not name.lower().endswith(BACKUP_SUFFIX):
        raise SeedValueError(
            f"not a backup's name (it ends in {BACKUP_SUFFIX})",
            "give the name clawdie-setup backup wrote, e.g. my-box-2026-01-31.backup.age",
        )
    return name


FINGERPRINT_DIGITS = 8
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{8,32}")


def check_fingerprint(value: str) -> str:
    """The installation fingerprint an adopt seed is meant for: its first 8 hex digits, any
    case, dashes allowed (the whole id as `systemd-id128` prints it is taken too)."""
    digits = value.strip().lower().replace("-", "")
    if not _FINGERPRINT_RE.fullmatch(digits):
        raise SeedValueError(
            "not an installation fingerprint",
            "copy the 8 characters shown as Fingerprint on the box's login screen, in its "
            "install summary or on its receipt, e.g. INSTALL_FINGERPRINT=3f2a9c01",
        )
    return digits[:FINGERPRINT_DIGITS]


# The adopt code's alphabet: letters and digits without look-alikes (no 0/O, 1/I/L).
ADOPT_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ADOPT_CODE_GROUPS = 4
ADOPT_CODE_GROUP_LEN = 4


def normalise_adopt_code(value: str) -> str | None:
    """An adopt code as typed (any case, dashes or spaces anywhere) in its grouped form
    (`K7QD-M4XP-R9TW-3HNE`), or None when it cannot be one."""
    chars = "".join(value.split()).replace("-", "").upper()
    size = ADOPT_CODE_GROUPS * ADOPT_CODE_GROUP_LEN
    if len(chars) != size or any(c not in ADOPT_CODE_ALPHABET for c in chars):
        return None
    step = ADOPT_CODE_GROUP_LEN
    return "-".join(chars[i : i + step] for i in range(0, size, step))


def check_adopt_code(value: str) -> str:
    """The box's adopt code (DESIGN §10): 16 letters and digits in four groups."""
    code = normalise_adopt_code(value)
    if code is None:
        raise SeedValueError(
            "not an adopt code",
            "copy ADOPT_CODE= from the box's first-boot report (SETUP-RESULT.txt on the stick "
            "it was installed with, or the Telegram report): 16 letters and digits in four "
            "groups of four",
        )
    return code


BY_ID_PREFIX = "/dev/disk/by-id/"
SERIAL_PREFIX = "serial:"
_SERIAL_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_target_disk(value: str) -> str:
    """The disk to install to: `serial:<the serial on its label>`, `/dev/disk/by-id/<name>`
    (both returned as given), or a kernel name (`sda`, `/dev/nvme0n1`) made a /dev path."""
    if value[: len(SERIAL_PREFIX)].lower() == SERIAL_PREFIX:
        serial = value[len(SERIAL_PREFIX) :]
        if not _SERIAL_RE.fullmatch(serial):
            raise SeedValueError(
                "not a disk serial number",
                "write the serial as printed on the disk's label, e.g. "
                "TARGET_DISK=serial:S3Z1NB0K123456X (letters, digits, '.', '_', '-', ':')",
            )
        return SERIAL_PREFIX + serial
    path = value if value.startswith("/dev/") else f"/dev/{value}"
    if ".." in path or not re.fullmatch(r"/dev/[A-Za-z0-9._:/@+-]+", path):
        raise SeedValueError(
            "not a disk name", "write it like serial:S3Z1NB0K123456X, /dev/disk/by-id/… or sda"
        )
    by_id_name = path.removeprefix(BY_ID_PREFIX) if path.startswith(BY_ID_PREFIX) else None
    if by_id_name is not None and (not by_id_name or "/" in by_id_name):
        raise SeedValueError(
            "not a disk name",
            "a /dev/disk/by-id/ name is one entry of that folder, as the installer's console "
            "lists it",
        )
    return path


def is_stable_disk_name(target_disk: str) -> bool:
    """Whether a checked TARGET_DISK names the same disk on any machine (serial or by-id), as
    unattended erase needs; a kernel name like /dev/sda can be another disk elsewhere."""
    return target_disk.startswith((SERIAL_PREFIX, BY_ID_PREFIX))


def check_yes_no(value: str) -> bool:
    """yes or no."""
    answer = value.lower()
    if answer not in {"yes", "no"}:
        raise SeedValueError("write yes or no")
    return answer == "yes"
