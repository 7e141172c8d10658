"""Shared test data and fakes (moved out of test_corpus.py, which other tests use too)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from tests.helpers.seeds import (
    ADMIN,
    ED25519,
    OPENROUTER,
    PASSWORD,
    REQUIRED,
    RSA_1024,
    RSA_2048,
    TOKEN,
    seed,
    valid,
)
from tests.helpers.sentinels import WIFI_PASSWORD

Problems = set[tuple[int | None, str | None]]


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    problems: Problems = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)  # resolved values (valid seeds)
    given: dict[str, str] = field(default_factory=dict)  # what the reader read (any seed)
    repairs: tuple[tuple[int | None, str], ...] = ()
    warnings: tuple[tuple[int | None, str], ...] = ()
    absent: tuple[str, ...] = ()  # keys the reader must not have taken
    hints: tuple[tuple[int | None, str], ...] = ()  # (line, words) in that line's problem hint
    hidden: tuple[str, ...] = ()  # text (any case) that no problem, warning or repair may echo


# Owners' age public keys (age-keygen), for BACKUP_RECIPIENT.
OWNER_KEY = "age1wzwm0vyd2wqnj2t0ya6s0akcs6t2k0rr4nc98jl2xrljtc57qdpqfe8nsa"
OWNER_KEY_2 = "age16lna44mr8ppth4x5fzak96el3ddf00du9a7suhaz875ghyxp64tq74wagq"

MISSING_ALL: Problems = {
    (None, "TELEGRAM_BOT_TOKEN"),
    (None, "TELEGRAM_ADMIN_ID"),
    (None, "OPENROUTER_API_KEY"),
}


CASES = [
    # --- encodings and line ends -----------------------------------------------------------
    Case(
        "minimal valid, LF",
        valid("ASSISTANT_NAME=Ada"),
        values={"TELEGRAM_BOT_TOKEN": TOKEN, "ASSISTANT_NAME": "Ada", "HOSTNAME": "ada"},
    ),
    Case(
        "Windows CRLF",
        valid("ASSISTANT_NAME=Ada", eol="\r\n"),
        values={"ASSISTANT_NAME": "Ada", "TELEGRAM_ADMIN_ID": ADMIN},
        repairs=((None, "Windows (CRLF) line ends"),),
    ),
    Case(
        "old Mac CR only",
        valid("ASSISTANT_NAME=Ada", eol="\r"),
        values={"ASSISTANT_NAME": "Ada", "OPENROUTER_API_KEY": OPENROUTER},
        repairs=((None, "old Mac (CR) line ends"),),
    ),
    Case(
        "mixed line ends",
        (f"{REQUIRED[0]}\r\n{REQUIRED[1]}\n{REQUIRED[2]}\r").encode(),
        values={"TELEGRAM_ADMIN_ID": ADMIN},
        repairs=((None, "mixed line ends"),),
    ),
    Case(
        "PowerShell UTF-8 with BOM",
        valid("ASSISTANT_NAME=Zoë", bom=codecs.BOM_UTF8, eol="\r\n"),
        values={"ASSISTANT_NAME": "Zoë", "TELEGRAM_BOT_TOKEN": TOKEN},
        repairs=((1, "byte-order mark was removed"),),
    ),
    Case(
        "Notepad UTF-16 LE with BOM",
        valid("ASSISTANT_NAME=Zoë", eol="\r\n", encoding="utf-16-le", bom=codecs.BOM_UTF16_LE),
        values={"ASSISTANT_NAME": "Zoë", "HOSTNAME": "zoe"},
        repairs=((1, "UTF-16"),),
    ),
    Case(
        "UTF-16 BE with BOM",
        valid("ASSISTANT_NAME=Ada", encoding="utf-16-be", bom=codecs.BOM_UTF16_BE),
        values={"ASSISTANT_NAME": "Ada"},
        repairs=((1, "UTF-16 big-endian"),),
    ),
    Case(
        "cp1252 (ANSI) accented name",
        valid("ASSISTANT_NAME=Zoë Müller", encoding="cp1252"),
        values={"ASSISTANT_NAME": "Zoë Müller", "HOSTNAME": "zoe-muller"},
        warnings=((4, "Windows-1252"),),
    ),
    Case(
        "empty (0-byte) file",
        b"",
        problems=MISSING_ALL,
        warnings=((None, "is empty"),),
    ),
    Case(
        "only comments and blank lines",
        seed("# nothing here", "", "   ", "#TELEGRAM_BOT_TOKEN=x"),
        problems={
            (4, "TELEGRAM_BOT_TOKEN"),
            (None, "TELEGRAM_ADMIN_ID"),
            (None, "OPENROUTER_API_KEY"),
        },
        warnings=((4, "line 4 is a comment, so TELEGRAM_BOT_TOKEN is not set"),),
        hints=((4, "line 4 is a comment: remove the '#' at its start to use TELEGRAM_BOT_TOKEN"),),
    ),
    # --- filled lines still behind '#' ---------------------------------------------------------
    Case(
        "Wi-Fi filled in but all three lines still comments",
        valid("#WIFI_SSID=Home Net 5G", f"#WIFI_PASSWORD={WIFI_PASSWORD}", "# WIFI_COUNTRY=SI"),
        warnings=(
            (4, "line 4 is a comment, so WIFI_SSID is not set: remove the '#'"),
            (5, "so WIFI_PASSWORD is not set"),
            (6, "so WIFI_COUNTRY is not set"),
        ),
        hidden=(WIFI_PASSWORD, "Home Net"),
    ),
    Case(
        "only the SSID still a comment: the problem is on its line and names the password's",
        valid("#WIFI_SSID=Home Net 5G", "WIFI_PASSWORD=correct horse", "WIFI_COUNTRY=SI"),
        problems={(4, "WIFI_SSID")},
        hints=((4, "line 4 is a comment: remove the '#' at its start to use WIFI_SSID"),),
    ),
    Case(
        "a note after a time zone",
        valid("TIMEZONE=Europe/Ljubljana  # Slovenia"),
        problems={(4, "TIMEZONE")},
        hints=((4, "write TIMEZONE=Europe/Ljubljana alone on the line"),),
    ),
    Case(
        "a bare city as the time zone",
        valid("TIMEZONE=Ljubljana"),
        problems={(4, "TIMEZONE")},
        hints=((4, "did you mean Europe/Ljubljana?"),),
    ),
    Case(
        "a key both commented out and set: no warning",
        valid("#TIMEZONE=Europe/Paris", "TIMEZONE=Europe/Berlin"),
        values={"TIMEZONE": "Europe/Berlin"},
    ),
    Case(
        "the template's empty comment lines and prose with KEY=: no warning",
        valid(
            "#TIMEZONE=", "# installer's console lists it. With ERASE_TARGET_DISK=yes it is erased"
        ),
    ),
    # --- quotes, spaces, invisible characters ------------------------------------------------
    Case(
        "TextEdit curly double quotes",
        valid("ASSISTANT_NAME=\u201cAda Lovelace\u201d"),
        values={"ASSISTANT_NAME": "Ada Lovelace"},
        repairs=((4, "curly quotes"),),
    ),
    Case(
        "curly single quotes",
        valid("ASSISTANT_NAME=\u2018Ada\u2019"),
        values={"ASSISTANT_NAME": "Ada"},
        repairs=((4, "curly quotes"),),
    ),
    Case(
        "straight double and single quotes",
        seed(f'TELEGRAM_BOT_TOKEN="{TOKEN}"', f"TELEGRAM_ADMIN_ID='{ADMIN}'", REQUIRED[2]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_ID": ADMIN},
        repairs=((1, "quotes around the value removed"), (2, "quotes around the value")),
    ),
    Case(
        "quote kept inside quotes",
        valid(f'OPERATOR_PASSWORD="\'{PASSWORD}"', "OPERATOR_EMAIL=a@example.com"),
        given={"OPERATOR_PASSWORD": f"'{PASSWORD}"},
    ),
    Case(
        "mismatched quotes",
        valid("ASSISTANT_NAME=\"Ada'"),
        problems={(4, "ASSISTANT_NAME")},
        absent=("ASSISTANT_NAME",),
    ),
    Case(
        "opening quote only",
        valid('ASSISTANT_NAME="Ada'),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "trailing apostrophe is part of a name",
        valid("ASSISTANT_NAME=James'"),
        values={"ASSISTANT_NAME": "James'", "HOSTNAME": "james"},
    ),
    Case(
        "trailing spaces and tabs",
        seed(f"TELEGRAM_BOT_TOKEN={TOKEN}   \t", f"  TELEGRAM_ADMIN_ID={ADMIN}", REQUIRED[2]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_ID": ADMIN},
    ),
    Case(
        "KEY = value with spaces around =",
        seed(f"TELEGRAM_BOT_TOKEN = {TOKEN}", f"TELEGRAM_ADMIN_ID =  {ADMIN}", REQUIRED[2]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_ADMIN_ID": ADMIN},
    ),
    Case(
        "tabs around =",
        seed(f"TELEGRAM_BOT_TOKEN\t=\t{TOKEN}", *REQUIRED[1:]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN},
    ),
    Case(
        "optional value of spaces only is not set",
        valid("ASSISTANT_NAME=     "),
        values={"ASSISTANT_NAME": "Clawdie", "HOSTNAME": "clawdie"},
        warnings=((None, "ASSISTANT_NAME is not set"),),
    ),
    Case(
        "required value of spaces only is missing, at its line",
        seed("TELEGRAM_BOT_TOKEN=    ", *REQUIRED[1:]),
        problems={(1, "TELEGRAM_BOT_TOKEN")},
    ),
    Case(
        "non-breaking space pasted after the token",
        seed(f"TELEGRAM_BOT_TOKEN={TOKEN}\u00a0", *REQUIRED[1:]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN},
        repairs=((1, "non-breaking space"),),
    ),
    Case(
        "zero-width space before the key (from a chat app)",
        seed(f"\u200bTELEGRAM_BOT_TOKEN={TOKEN}", *REQUIRED[1:]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN},
        repairs=((1, "zero-width space"),),
    ),
    Case(
        "stray BOM in the middle of the file",
        valid("\ufeffASSISTANT_NAME=Ada"),
        values={"ASSISTANT_NAME": "Ada"},
        repairs=((4, "byte-order mark"),),
    ),
    Case(
        "U+2028 and NEL at the edges are removed, not split on",
        valid("ASSISTANT_NAME=Ada\u2028", "TIMEZONE=\u0085UTC"),
        values={"ASSISTANT_NAME": "Ada", "TIMEZONE": "UTC"},
        repairs=((4, "line separator"), (5, "next-line control")),
    ),
    Case(
        "U+2028 inside a value is refused",
        valid("ASSISTANT_NAME=Ada\u2028Lovelace"),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "form feed inside a line does not split it",
        valid("ASSISTANT_NAME=Ada\fLovelace", "TIMEZONE=UTC"),
        problems={(4, "ASSISTANT_NAME")},
        given={"TIMEZONE": "UTC"},
    ),
    # --- keys -------------------------------------------------------------------------------
    Case(
        "export prefix",
        seed(f"export TELEGRAM_BOT_TOKEN={TOKEN}", *REQUIRED[1:]),
        values={"TELEGRAM_BOT_TOKEN": TOKEN},
        repairs=((1, "'export '"),),
    ),
    Case(
        "lower-case keys",
        seed(
            f"telegram_bot_token={TOKEN}",
            f"telegram_admin_id={ADMIN}",
            f"openrouter_api_key={OPENROUTER}",
            "profile=economy",
        ),
        values={"PROFILE": "economy", "PI_TUI_MODEL": "deepseek/deepseek-chat"},
    ),
    Case(
        "mixed-case key and value",
        valid("Profile=Quality"),
        values={"PROFILE": "quality", "PI_TUI_MODEL": "anthropic/claude-opus-4"},
        repairs=((4, "PROFILE: read as quality"),),
    ),
    Case(
        "duplicate key: refused, naming both lines",
        valid("ASSISTANT_NAME=Ada", "ASSISTANT_NAME=Bob"),
        problems={(5, "ASSISTANT_NAME")},
    ),
    Case(
        "duplicate key, second one empty: still refused",
        valid("PROFILE=balanced", "PROFILE="),
        problems={(5, "PROFILE")},
    ),
    Case(
        "unknown key typo with did-you-mean (no second 'required' problem)",
        seed(f"TELEGRAM_BOT_TOKN={TOKEN}", *REQUIRED[1:]),
        problems={(1, "TELEGRAM_BOT_TOKN")},
    ),
    Case(
        "unknown key unrelated",
        valid("FAVOURITE_COLOUR=blue"),
        problems={(4, "FAVOURITE_COLOUR")},
    ),
    Case(
        "a line with no =",
        seed(f"TELEGRAM_BOT_TOKEN {TOKEN}", *REQUIRED[1:]),
        problems={(1, "TELEGRAM_BOT_TOKEN")},
    ),
    Case(
        "colon instead of =",
        seed(f"TELEGRAM_ADMIN_ID: {ADMIN}", REQUIRED[0], REQUIRED[2]),
        problems={(1, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "a pasted token on its own line",
        valid(TOKEN),
        problems={(4, None)},
    ),
    Case(
        "no key before =",
        valid("=value"),
        problems={(4, None)},
    ),
    Case(
        "'=' forgotten after the key: the password fragment is not echoed",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD Zq9frag=rest-of-it"),
        problems={(5, None)},
        hints=((5, "did you mean OPERATOR_PASSWORD? write OPERATOR_PASSWORD=value"),),
        hidden=("Zq9frag", "rest-of-it"),
    ),
    Case(
        "':' instead of '=' before a value holding '='",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD:Zq9frag=rest"),
        problems={(5, None)},
        hints=((5, "did you mean OPERATOR_PASSWORD?"),),
        hidden=("Zq9frag",),
    ),
    Case(
        "a key written with spaces is not echoed; the words spell the key",
        valid("Operator Password=Zq9frag-long-enough"),
        problems={(4, None)},
        hints=((4, "did you mean OPERATOR_PASSWORD?"),),
        hidden=("Zq9frag",),
    ),
    Case(
        "a key-shaped typo is still echoed",
        valid("OPERATOR_PASWORD=Zq9frag-long-enough"),
        problems={(4, "OPERATOR_PASWORD")},
        hints=((4, "did you mean OPERATOR_PASSWORD?"),),
        hidden=("Zq9frag",),
    ),
    Case(
        "a key with a Cyrillic letter: not echoed, did-you-mean, names the script",
        seed(*REQUIRED[:2], f"\u041ePENROUTER_API_KEY={OPENROUTER}"),
        problems={(3, None)},
        hints=((3, "did you mean OPENROUTER_API_KEY?"), (3, "another script (Cyrillic)")),
        hidden=("\u041ePENROUTER",),
    ),
    Case(
        "a key with Greek letters and no '='",
        seed(REQUIRED[0], f"\u03a4\u0395LEGRAM_ADMIN_ID {ADMIN}", REQUIRED[2]),
        problems={(2, None)},
        hints=((2, "did you mean TELEGRAM_ADMIN_ID?"), (2, "another script (Greek)")),
    ),
    Case(
        "a key in full-width letters",
        valid("\uff34\uff29\uff2d\uff25\uff3a\uff2f\uff2e\uff25=UTC"),
        problems={(4, None)},
        hints=((4, "did you mean TIMEZONE?"),),
    ),
    # --- comments and # ----------------------------------------------------------------------
    Case(
        "'KEY= # comment' is not a comment",
        seed(REQUIRED[0], "TELEGRAM_ADMIN_ID= # fill in later", REQUIRED[2]),
        problems={(2, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "# inside a password is kept",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD=abc#def#ghi#123"),
        values={"OPERATOR_PASSWORD": "abc#def#ghi#123"},
        warnings=((5, "plaintext password"),),
    ),
    Case(
        "password with backslash, quotes, $, & and a leading -",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD=-p\\a\"s's$w&rd-ö"),
        values={"OPERATOR_PASSWORD": "-p\\a\"s's$w&rd-ö"},
    ),
    Case(
        "full-width password is NFKC-normalised like the verifier does",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD=ｐａｓｓｗｏｒｄ１２３４"),
        values={"OPERATOR_PASSWORD": "password1234"},
    ),
    Case(
        "sha512-crypt hash pasted as a password",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD=$6$saltsalt$" + "a" * 86),
        problems={(5, "OPERATOR_PASSWORD")},
    ),
    Case(
        "yescrypt hash pasted as the fallback password",
        valid("CLAWDIE_USER_PASSWORD=$y$j9T$abcdefghijklmnop$" + "B" * 43),
        problems={(4, "CLAWDIE_USER_PASSWORD")},
    ),
    Case(
        "password too short",
        valid("OPERATOR_EMAIL=me@example.com", "OPERATOR_PASSWORD=short"),
        problems={(5, "OPERATOR_PASSWORD")},
    ),
    Case(
        "e-mail without password",
        valid("OPERATOR_EMAIL=me@example.com"),
        problems={(None, "OPERATOR_PASSWORD")},
    ),
    # --- SSH keys ----------------------------------------------------------------------------
    Case(
        "SSH key with CRLF",
        valid(f"SSH_AUTHORIZED_KEY={ED25519}", eol="\r\n"),
        values={"SSH_AUTHORIZED_KEY": ED25519},
    ),
    Case(
        "SSH key hard-wrapped over two lines",
        valid(f"SSH_AUTHORIZED_KEY={ED25519[:50]}", ED25519[50:]),
        problems={(4, "SSH_AUTHORIZED_KEY"), (5, "SSH_AUTHORIZED_KEY")},
    ),
    Case(
        "two SSH keys on one line",
        valid(f"SSH_AUTHORIZED_KEY={ED25519} {ED25519}"),
        problems={(4, "SSH_AUTHORIZED_KEY")},
    ),
    Case(
        "1024-bit RSA key",
        valid(f"SSH_AUTHORIZED_KEY={RSA_1024}"),
        problems={(4, "SSH_AUTHORIZED_KEY")},
    ),
    Case(
        "2048-bit RSA key",
        valid(f"SSH_AUTHORIZED_KEY={RSA_2048}"),
        values={"SSH_AUTHORIZED_KEY": RSA_2048},
    ),
    Case(
        "private key pasted: refused, nothing of it read",
        valid(
            "SSH_AUTHORIZED_KEY=-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "QyNTUxOQAAACBlongbase64/with+slashes==",
            "-----END OPENSSH PRIVATE KEY-----",
            "ASSISTANT_NAME=Ada",
        ),
        problems={(4, "SSH_AUTHORIZED_KEY")},
        given={"ASSISTANT_NAME": "Ada"},
        absent=("SSH_AUTHORIZED_KEY",),
    ),
    # --- field rules -------------------------------------------------------------------------
    Case(
        "hostname with _",
        valid("HOSTNAME=my_box"),
        problems={(4, "HOSTNAME")},
    ),
    Case(
        "hostname over 63 characters",
        valid("HOSTNAME=" + "a" * 64),
        problems={(4, "HOSTNAME")},
    ),
    Case(
        "hostname in upper case is lowered",
        valid("HOSTNAME=MyBox"),
        values={"HOSTNAME": "mybox", "AGENT_DOMAIN": "mybox.local"},
        repairs=((4, "HOSTNAME: read as mybox"),),
    ),
    Case(
        "reserved hostnames",
        valid("HOSTNAME=system"),
        problems={(4, "HOSTNAME")},
    ),
    Case(
        "assistant name that derives a reserved hostname",
        valid("ASSISTANT_NAME=Localhost"),
        values={"HOSTNAME": "clawdie"},
        warnings=((4, "no usable host name"),),
    ),
    Case(
        "non-Latin assistant name is transliterated for the hostname",
        valid("ASSISTANT_NAME=Мария"),
        values={"ASSISTANT_NAME": "Мария", "HOSTNAME": "mariya"},
    ),
    Case(
        "right-to-left override in the name",
        valid("ASSISTANT_NAME=Helper\u202egnp.exe"),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "directional isolates around the name",
        valid("ASSISTANT_NAME=\u2067Ada\u2069"),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "a name of Hangul fillers only",
        valid("ASSISTANT_NAME=\u3164\u3164"),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "a name of zero-width characters around a filler",
        valid("ASSISTANT_NAME=\u200b\u3164\u2060\u115f\u200b"),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "a name in a right-to-left script is fine",
        valid("ASSISTANT_NAME=\u05e2\u05d5\u05d6\u05e8"),
        values={"ASSISTANT_NAME": "\u05e2\u05d5\u05d6\u05e8"},
    ),
    Case(
        "assistant name of 33 characters",
        valid("ASSISTANT_NAME=" + "x" * 33),
        problems={(4, "ASSISTANT_NAME")},
    ),
    Case(
        "timezone Foo/Bar",
        valid("TIMEZONE=Foo/Bar"),
        problems={(4, "TIMEZONE")},
    ),
    Case(
        "timezone in the wrong case",
        valid("TIMEZONE=europe/berlin"),
        values={"TIMEZONE": "Europe/Berlin"},
        repairs=((4, "TIMEZONE: read as Europe/Berlin"),),
    ),
    Case(
        "locale without charset gets UTF-8; keymap",
        valid("LOCALE=de_DE", "KEYMAP=de"),
        values={"LOCALE": "de_DE.UTF-8", "KEYMAP": "de"},
    ),
    Case(
        "a locale Debian cannot generate",
        valid("LOCALE=en_XX.UTF-8"),
        problems={(4, "LOCALE")},
    ),
    Case(
        "a locale in the wrong case is read as Debian writes it",
        valid("LOCALE=de_de.utf8"),
        values={"LOCALE": "de_DE.UTF-8"},
        repairs=((4, "LOCALE: read as de_DE.UTF-8"),),
    ),
    Case(
        "AGENT_DOMAIN=localhost",
        valid("AGENT_DOMAIN=localhost"),
        problems={(4, "AGENT_DOMAIN")},
    ),
    Case(
        "AGENT_DOMAIN under .localhost",
        valid("AGENT_DOMAIN=ada.localhost", "HOSTNAME=box"),
        problems={(4, "AGENT_DOMAIN")},
    ),
    Case(
        "AGENT_DOMAIN written as the default <hostname>.local",
        valid("HOSTNAME=ada", "AGENT_DOMAIN=ada.local"),
        values={"AGENT_DOMAIN": "ada.local"},
    ),
    Case(
        "admin id in full-width digits",
        seed(REQUIRED[0], "TELEGRAM_ADMIN_ID=\uff11\uff12\uff13", REQUIRED[2]),
        problems={(2, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "admin id in Arabic-Indic digits",
        seed(REQUIRED[0], "TELEGRAM_ADMIN_ID=\u0661\u0662\u0663", REQUIRED[2]),
        problems={(2, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "cooldown written as a superscript",
        valid("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS=6\u00b2"),
        problems={(4, "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS")},
    ),
    Case(
        "cooldown in Arabic-Indic digits",
        valid("LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS=\u0666\u0660"),
        problems={(4, "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS")},
    ),
    Case(
        "non-UTF-8 locale",
        valid("LOCALE=de_DE.ISO-8859-1"),
        problems={(4, "LOCALE")},
    ),
    Case(
        "defaults are never country-specific",
        valid(),
        values={"LOCALE": "en_US.UTF-8", "KEYMAP": "us", "TIMEZONE": "UTC", "PROFILE": "balanced"},
    ),
    Case(
        "admin id given as @username",
        seed(REQUIRED[0], "TELEGRAM_ADMIN_ID=@ada", REQUIRED[2]),
        problems={(2, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "admin id of a group (negative)",
        seed(REQUIRED[0], "TELEGRAM_ADMIN_ID=-100123", REQUIRED[2]),
        problems={(2, "TELEGRAM_ADMIN_ID")},
    ),
    Case(
        "token copied with 'bot' in front (from a URL)",
        seed(f"TELEGRAM_BOT_TOKEN=bot{TOKEN}", *REQUIRED[1:]),
        problems={(1, "TELEGRAM_BOT_TOKEN")},
    ),
    Case(
        "an OpenAI key where the OpenRouter key goes",
        seed(*REQUIRED[:2], "OPENROUTER_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz"),
        problems={(3, "OPENROUTER_API_KEY")},
    ),
    Case(
        "system account name as service account",
        valid("SERVICE_ACCOUNT=root"),
        problems={(4, "SERVICE_ACCOUNT")},
    ),
    Case(
        "unknown profile",
        valid("PROFILE=fast"),
        problems={(4, "PROFILE")},
    ),
    Case(
        "TENANT_ID is not part of first boot",
        valid("TENANT_ID=acme"),
        problems={(4, "TENANT_ID")},
    ),
    Case(
        "ERASE_TARGET_DISK=yes needs TARGET_DISK",
        valid("ERASE_TARGET_DISK=yes"),
        problems={(None, "TARGET_DISK")},
    ),
    Case(
        "unattended erase of a kernel name: valid, with a warning that it will not happen",
        valid("TARGET_DISK=sda", "ERASE_TARGET_DISK=YES"),
        values={"TARGET_DISK": "/dev/sda", "ERASE_TARGET_DISK": "yes"},
        warnings=((4, "TARGET_DISK: a kernel name like /dev/sda can be another disk"),),
    ),
    Case(
        "unattended erase by serial number",
        valid("TARGET_DISK=serial:S3Z1NB0K123456X", "ERASE_TARGET_DISK=yes"),
        values={"TARGET_DISK": "serial:S3Z1NB0K123456X", "ERASE_TARGET_DISK": "yes"},
    ),
    Case(
        "unattended erase by /dev/disk/by-id name",
        valid("TARGET_DISK=/dev/disk/by-id/ata-Samsung_SSD_860-S3Z1", "ERASE_TARGET_DISK=yes"),
        values={"TARGET_DISK": "/dev/disk/by-id/ata-Samsung_SSD_860-S3Z1"},
    ),
    Case(
        "a serial number with a space",
        valid("TARGET_DISK=serial:S3Z1 NB0K", "ERASE_TARGET_DISK=yes"),
        problems={(4, "TARGET_DISK")},
    ),
    # --- adopt: a seed for an existing installation -------------------------------------------
    Case(
        "adopt needs the box's fingerprint",
        valid("INSTALL_MODE=adopt"),
        problems={(None, "INSTALL_FINGERPRINT")},
    ),
    Case(
        "adopt with a fingerprint typed in capitals with a dash",
        valid("INSTALL_MODE=Adopt", "INSTALL_FINGERPRINT=3F2A-9C01"),
        values={
            "INSTALL_MODE": "adopt",
            "INSTALL_FINGERPRINT": "3f2a9c01",
            "ALLOW_IDENTITY_CHANGE": "no",
        },
        repairs=((5, "INSTALL_FINGERPRINT: read as 3f2a9c01"),),
    ),
    Case(
        "adopt with the whole id systemd-id128 prints, and identity changes allowed",
        valid(
            "INSTALL_MODE=adopt",
            "INSTALL_FINGERPRINT=3f2a9c01-5b7e-4d2a-8c11-0f9e8d7c6b5a",
            "ALLOW_IDENTITY_CHANGE=yes",
        ),
        values={"INSTALL_FINGERPRINT": "3f2a9c01", "ALLOW_IDENTITY_CHANGE": "yes"},
    ),
    Case(
        "a fingerprint one digit short",
        valid("INSTALL_MODE=adopt", "INSTALL_FINGERPRINT=3f2a9c0"),
        problems={(5, "INSTALL_FINGERPRINT")},
        hints=((5, "the box's login screen"),),
    ),
    Case(
        "adopt lines in a fresh seed: valid, each with a warning that it has no effect",
        valid("INSTALL_FINGERPRINT=3f2a9c01", "ALLOW_IDENTITY_CHANGE=yes"),
        values={"INSTALL_MODE": "fresh", "ALLOW_IDENTITY_CHANGE": "yes"},
        warnings=(
            (4, "INSTALL_FINGERPRINT: only used with INSTALL_MODE=adopt"),
            (5, "ALLOW_IDENTITY_CHANGE: only used with INSTALL_MODE=adopt"),
        ),
    ),
    Case(
        "SEED_SCRUB defaults to no",
        valid(),
        values={"SEED_SCRUB": "no"},
    ),
    Case(
        "SEED_SCRUB=yes, and the plaintext password warning says so",
        valid("SEED_SCRUB=Yes", "OPERATOR_EMAIL=me@example.com", f"OPERATOR_PASSWORD={PASSWORD}"),
        values={"SEED_SCRUB": "yes"},
        warnings=((6, "SEED_SCRUB=yes replaces it after a successful install"),),
    ),
    Case(
        "plaintext password without SEED_SCRUB: the warning suggests it",
        valid("OPERATOR_EMAIL=me@example.com", f"OPERATOR_PASSWORD={PASSWORD}"),
        warnings=((5, "or set SEED_SCRUB=yes"),),
    ),
    # --- network (DESIGN §3, §7) --------------------------------------------------------------
    Case(
        "Wi-Fi: the three lines, country in lower case",
        valid("WIFI_SSID=Café Wi-Fi", "WIFI_PASSWORD=Hunter2-Horse!", "WIFI_COUNTRY=de"),
        values={"WIFI_SSID": "Café Wi-Fi", "WIFI_PASSWORD": "Hunter2-Horse!", "WIFI_COUNTRY": "DE"},
        repairs=((6, "WIFI_COUNTRY: read as DE"),),
        hidden=("Hunter2-Horse!",),
    ),
    Case(
        "Wi-Fi name alone: password and country asked for",
        valid("WIFI_SSID=HomeNet"),
        problems={(None, "WIFI_PASSWORD"), (None, "WIFI_COUNTRY")},
        hints=((None, "open networks are not supported"),),
    ),
    Case(
        "Wi-Fi password without a name: the secret is never echoed",
        valid(f"WIFI_PASSWORD={WIFI_PASSWORD}", "WIFI_COUNTRY=FR"),
        problems={(None, "WIFI_SSID")},
        hidden=(WIFI_PASSWORD,),
    ),
    Case(
        "Wi-Fi password too short, on its line",
        valid("WIFI_SSID=HomeNet", "WIFI_PASSWORD=Short7", "WIFI_COUNTRY=US"),
        problems={(5, "WIFI_PASSWORD")},
        hidden=("Short7",),
    ),
    Case(
        "Wi-Fi password with a letter WPA cannot carry",
        valid("WIFI_SSID=HomeNet", "WIFI_PASSWORD=Straße-Passwort", "WIFI_COUNTRY=DE"),
        problems={(5, "WIFI_PASSWORD")},
        hints=((5, "letters such as é or ß are not allowed"),),
        hidden=("Straße-Passwort",),
    ),
    Case(
        "Wi-Fi raw key of 64 hex digits",
        valid("WIFI_SSID=HomeNet", "WIFI_PASSWORD=" + "AB" * 32, "WIFI_COUNTRY=GB"),
        values={"WIFI_PASSWORD": "ab" * 32},
    ),
    Case(
        "Wi-Fi name longer than 32 bytes in UTF-8",
        valid("WIFI_SSID=" + "é" * 17, "WIFI_PASSWORD=long enough", "WIFI_COUNTRY=FR"),
        problems={(4, "WIFI_SSID")},
    ),
    Case(
        "Wi-Fi country UK: the ISO code is GB",
        valid("WIFI_SSID=HomeNet", "WIFI_PASSWORD=long enough", "WIFI_COUNTRY=UK"),
        problems={(6, "WIFI_COUNTRY")},
        hints=((6, "write GB"),),
    ),
    Case(
        "Wi-Fi country written out",
        valid("WIFI_SSID=HomeNet", "WIFI_PASSWORD=long enough", "WIFI_COUNTRY=Germany"),
        problems={(6, "WIFI_COUNTRY")},
        hints=((6, "DE for Germany"),),
    ),
    Case(
        "static address with a dotted netmask, gateway and DNS",
        valid(
            "NET_ADDRESS=192.168.1.50/255.255.255.0",
            "NET_GATEWAY=192.168.1.1",
            "NET_DNS=1.1.1.1, 9.9.9.9",
        ),
        values={
            "NET_ADDRESS": "192.168.1.50/24",
            "NET_GATEWAY": "192.168.1.1",
            "NET_DNS": "1.1.1.1 9.9.9.9",
        },
        repairs=((4, "NET_ADDRESS: read as 192.168.1.50/24"), (6, "NET_DNS: read as")),
    ),
    Case(
        "static IPv6 address with a link-local gateway",
        valid("NET_ADDRESS=2001:db8::50/64", "NET_GATEWAY=fe80::1"),
        values={"NET_ADDRESS": "2001:db8::50/64", "NET_GATEWAY": "fe80::1"},
    ),
    Case(
        "static address without its gateway",
        valid("NET_ADDRESS=192.168.1.50/24"),
        problems={(None, "NET_GATEWAY")},
    ),
    Case(
        "gateway outside the address's network",
        valid("NET_ADDRESS=192.168.1.50/24", "NET_GATEWAY=192.168.2.1"),
        problems={(5, "NET_GATEWAY")},
        hints=((5, "share all but the last number"),),
    ),
    Case(
        "address without a network size",
        valid("NET_ADDRESS=192.168.1.50", "NET_GATEWAY=192.168.1.1"),
        problems={(4, "NET_ADDRESS")},
        hints=((4, "192.168.1.50/24"),),
    ),
    Case(
        "DNS given as a name",
        valid("NET_DNS=dns.google"),
        problems={(4, "NET_DNS")},
    ),
    Case(
        "DNS alone, with DHCP",
        valid("NET_DNS=2606:4700:4700::1111 1.1.1.1"),
        values={"NET_DNS": "2606:4700:4700::1111 1.1.1.1"},
    ),
    # --- providers and profile overrides -----------------------------------------------------
    Case(
        "all roles moved to another provider: OpenRouter no longer required",
        seed(
            *REQUIRED[:2],
            "PI_TUI_PROVIDER=zai",
            "PI_TUI_MODEL=glm-4.6",
            "LLM_FALLBACK_PROVIDER=zai",
            "LLM_FALLBACK_MODEL=glm-4.5-air",
            "AGENT_COMPACTION_PROVIDER=zai",
            "AGENT_COMPACTION_MODEL=glm-4.5-air",
            "ZAI_API_KEY=zai-key-0123456789abcdef",
        ),
        values={"LLM_PROVIDERS": "zai", "PI_TUI_MODEL": "glm-4.6"},
    ),
    Case(
        "provider override without its key",
        valid("PI_TUI_PROVIDER=zai", "PI_TUI_MODEL=glm-4.6"),
        problems={(None, "ZAI_API_KEY")},
    ),
    Case(
        "provider override without a model",
        valid("PI_TUI_PROVIDER=zai", "ZAI_API_KEY=zai-key-0123456789abcdef"),
        problems={(None, "PI_TUI_MODEL")},
    ),
    Case(
        "free fallback model: a warning, not an error",
        valid("LLM_FALLBACK_MODEL=meta-llama/llama-3.3-70b-instruct:free"),
        values={"LLM_FALLBACK_MODEL": "meta-llama/llama-3.3-70b-instruct:free"},
        warnings=((4, "free tier"),),
    ),
    Case(
        "fallback equal to the primary",
        valid("LLM_FALLBACK_MODEL=openai/o3"),
        warnings=((4, "same as the primary"),),
    ),
    Case(
        "one model overridden, the rest from the profile",
        valid("PROFILE=economy", "PI_TUI_MODEL=openai/gpt-4.1"),
        values={"PI_TUI_MODEL": "openai/gpt-4.1", "LLM_FALLBACK_MODEL": "openai/gpt-4o-mini"},
    ),
    # --- updates and backups (DESIGN §9) ----------------------------------------------------
    Case(
        "update window and backups by default: 04:00-05:00, updates on, no backup",
        valid(),
        values={"UPDATE_WINDOW": "04:00-05:00", "UPDATES": "on"},
        absent=("UPDATE_CHANNEL", "BACKUP_RECIPIENT", "BACKUP_DIR"),
    ),
    Case(
        "an overnight window, updates off, two backup keys, a second disk",
        valid(
            "UPDATE_WINDOW=23:30 - 0:30",
            "UPDATES=OFF",
            f"BACKUP_RECIPIENT={OWNER_KEY.upper()},{OWNER_KEY_2}",
            "BACKUP_DIR=/mnt//backup-disk/./clawdie/",
        ),
        values={
            "UPDATE_WINDOW": "23:30-00:30",
            "UPDATES": "off",
            "BACKUP_RECIPIENT": f"{OWNER_KEY} {OWNER_KEY_2}",
            "BACKUP_DIR": "/mnt/backup-disk/clawdie",
        },
        repairs=((4, "read as 23:30-00:30"), (7, "read as /mnt/backup-disk/clawdie")),
    ),
    Case("updates: security is on", valid("UPDATES=security"), values={"UPDATES": "on"}),
    Case(
        "a window too short across midnight",
        valid("UPDATE_WINDOW=23:50-00:10"),
        problems={(4, "UPDATE_WINDOW")},
        hints=((4, "23:30-00:30"),),
    ),
    Case("a window at 24:00", valid("UPDATE_WINDOW=23:00-24:00"), problems={(4, "UPDATE_WINDOW")}),
    Case("a window of hours only", valid("UPDATE_WINDOW=4-5"), problems={(4, "UPDATE_WINDOW")}),
    Case("updates maybe", valid("UPDATES=maybe"), problems={(4, "UPDATES")}),
    Case(
        "an update channel, written with capitals and a slash at the end",
        valid("UPDATE_CHANNEL=HTTPS://updates.example.org/clawdie/stable/"),
        values={"UPDATE_CHANNEL": "https://updates.example.org/clawdie/stable"},
        repairs=((4, "read as https://updates.example.org/clawdie/stable"),),
    ),
    Case(
        "an update channel on a port, over http",
        valid("UPDATE_CHANNEL=http://192.168.1.9:8080/releases"),
        values={"UPDATE_CHANNEL": "http://192.168.1.9:8080/releases"},
    ),
    Case(
        "no update channel",
        valid("UPDATE_CHANNEL=Off"),
        values={"UPDATE_CHANNEL": "off"},
        repairs=((4, "read as off"),),
    ),
    Case(
        "an update channel over ftp",
        valid("UPDATE_CHANNEL=ftp://updates.example.org/clawdie"),
        problems={(4, "UPDATE_CHANNEL")},
        hints=((4, "beginning with https"), (4, "write off")),
    ),
    Case(
        "an update channel with a password in it",
        valid("UPDATE_CHANNEL=https://owner:Hunter2pw@updates.example.org/clawdie"),
        problems={(4, "UPDATE_CHANNEL")},
        hidden=("Hunter2pw",),
    ),
    Case(
        "an update channel with a query",
        valid("UPDATE_CHANNEL=https://updates.example.org/latest?key=Zx9secret"),
        problems={(4, "UPDATE_CHANNEL")},
        hidden=("Zx9secret",),
    ),
    Case(
        "an update channel with a space",
        valid("UPDATE_CHANNEL=https://updates.example.org/my releases"),
        problems={(4, "UPDATE_CHANNEL")},
    ),
    Case(
        "an update channel without a host",
        valid("UPDATE_CHANNEL=https:///clawdie"),
        problems={(4, "UPDATE_CHANNEL")},
    ),
    Case(
        "an update channel that is only a host name",
        valid("UPDATE_CHANNEL=updates.example.org"),
        problems={(4, "UPDATE_CHANNEL")},
    ),
    Case(
        "an update channel in another script",
        valid("UPDATE_CHANNEL=https://обновления.example/"),
        problems={(4, "UPDATE_CHANNEL")},
    ),
    Case(
        "a secret age key where the public one belongs",
        valid("BACKUP_RECIPIENT=AGE-SECRET-KEY-1" + "Q" * 58),
        problems={(4, "BACKUP_RECIPIENT")},
        hidden=("QQQQQQQQQQQQ",),
    ),
    Case(
        "an age key with a wrong checksum",
        valid(f"BACKUP_RECIPIENT={OWNER_KEY[:-1]}q"),
        problems={(4, "BACKUP_RECIPIENT")},
    ),
    Case(
        "an SSH key where the age key belongs",
        valid("BACKUP_RECIPIENT=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG"),
        problems={(4, "BACKUP_RECIPIENT")},
    ),
    Case("a relative backup directory", valid("BACKUP_DIR=backup"), problems={(4, "BACKUP_DIR")}),
    Case("the root as backup directory", valid("BACKUP_DIR=//"), problems={(4, "BACKUP_DIR")}),
    Case("a backup directory in /tmp", valid("BACKUP_DIR=/tmp/b"), problems={(4, "BACKUP_DIR")}),
    Case("a backup directory in /run", valid("BACKUP_DIR=/run"), problems={(4, "BACKUP_DIR")}),
    Case(
        "a backup directory climbing up",
        valid("BACKUP_DIR=/srv/../tmp"),
        problems={(4, "BACKUP_DIR")},
    ),
    Case(
        "a backup directory beside /dev is fine",
        valid("BACKUP_DIR=/devices/backup"),
        values={"BACKUP_DIR": "/devices/backup"},
    ),
]
