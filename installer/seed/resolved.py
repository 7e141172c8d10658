"""The resolved seed: one frozen, typed object that first boot, the disk installer and the
reports read, built from a valid `SetupModel` with every default, derivation and profile choice
made. Pure.

Each value keeps its provenance (`source(key)`), and `settings` is the same resolution as text in
a stable order: what `check --explain` shows and what the platform receives. Secrets are
`SecretStr` everywhere, so `repr` and `str` of any part never show one.

Adding a setup.txt field: its declaration in `SetupModel` (`installer.seed.model._field`: type,
rule and every fact about it), its attribute here (taken in `resolve_seed`), and the step that
uses it. A field only the platform reads is declared `passed_through` and needs nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import SecretStr

from installer.seed import profiles
from installer.seed.maint_rules import DEFAULT_WINDOW
from installer.seed.model import FIELD_NAMES, SetupModel, keys_where
from installer.seed.profiles import ModelChoice, Setting, Source
from installer.seed.rules import (
    DEFAULT_ASSISTANT_NAME,
    DEFAULT_HOSTNAME,
    DEFAULT_SERVICE_ACCOUNT,
    default_mapping,
    derive_hostname,
)

# Setup keys the typed object leaves out on purpose: passed to the platform as settings only.
PASSED_THROUGH = keys_where(lambda s: s.passed_through)
# Setup keys that never resolve: the model refuses them (first boot sets up no extra tenant).
REFUSED = keys_where(lambda s: not s.resolves)

DEFAULT = Source("default")
T = TypeVar("T")


@dataclass(frozen=True)
class Host:
    """Who the box is: its names, clock and language."""

    assistant_name: str
    hostname: str
    domain: str
    timezone: str
    locale: str
    keymap: str


@dataclass(frozen=True)
class Operator:
    """The dashboard operator (OPERATOR_EMAIL and OPERATOR_PASSWORD come together)."""

    email: str
    password: SecretStr


@dataclass(frozen=True)
class Accounts:
    """The service account and the ways people get in."""

    service_account: str
    ssh_authorized_key: str | None
    user_password: SecretStr | None
    operator: Operator | None


@dataclass(frozen=True)
class Telegram:
    bot_token: SecretStr
    admin_id: int


@dataclass(frozen=True)
class ProviderKey:
    """The API key of one provider a model setting uses."""

    provider: str
    setup_key: str
    value: SecretStr


@dataclass(frozen=True)
class Models:
    """The profile and the models it resolved to, after the explicit overrides."""

    profile: str
    mapping_version: int
    primary: ModelChoice
    fallback: ModelChoice
    compaction: ModelChoice
    keys: tuple[ProviderKey, ...]

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(k.provider for k in self.keys)


@dataclass(frozen=True)
class InstallOptions:
    """How the disk installer treats the machine and the stick, and how an adopt run treats an
    existing installation."""

    mode: str
    target_disk: str | None
    erase_target_disk: bool
    seed_scrub: bool
    fingerprint: str | None = None  # INSTALL_FINGERPRINT: the box an adopt seed is meant for
    adopt_code: SecretStr | None = None  # ADOPT_CODE: whose box (DESIGN §10)
    allow_identity_change: bool = False


@dataclass(frozen=True)
class Wifi:
    """The Wi-Fi network to join (WPA-personal): the password is a passphrase or the raw PSK
    (64 hex digits, `net_rules.is_raw_psk`); the country sets the regulatory domain."""

    ssid: str
    password: SecretStr
    country: str


@dataclass(frozen=True)
class StaticAddress:
    """A fixed address for the wired links instead of DHCP: CIDR address and its router."""

    address: str
    gateway: str


@dataclass(frozen=True)
class Network:
    """How the box gets online (DESIGN §7): DHCP on every link unless a static address is given;
    Wi-Fi when its three keys are; DNS servers that replace the network's (empty: the
    network's own)."""

    wifi: Wifi | None = None
    static: StaticAddress | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Maintenance:
    """What the box does on its own, inside the update window (DESIGN §9): Debian's security
    fixes (unless `updates` is off), the reboot they may need, and the daily backup to the
    owner's keys (none: no backup) in `backup_dir` and on a CLAWDIE-BACKUP stick; the update
    channel setup.txt gives (`off`: none; None: the box keeps the one it has)."""

    update_window: str = "04:00-05:00"
    updates: bool = True
    update_channel: str | None = None
    backup_recipients: tuple[str, ...] = ()
    backup_dir: str | None = None


@dataclass(frozen=True)
class ResolvedSeed:
    host: Host
    accounts: Accounts
    telegram: Telegram
    models: Models
    install: InstallOptions
    settings: tuple[Setting, ...]
    network: Network = Network()
    maintenance: Maintenance = Maintenance()

    def source(self, key: str) -> Source | None:
        """Where the value of setup key `key` came from (None when it has no value)."""
        return next((s.source for s in self.settings if s.key == key), None)


def as_setting_text(value: object) -> str | SecretStr:
    """A typed value as the platform receives it: yes/no, digits, the text; secrets kept."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class _Resolution:
    """Takes values from the model (or their defaults) and records each as a setting, in the
    order taken."""

    def __init__(self, model: SetupModel, given: Mapping[str, Source]) -> None:
        self.model = model
        self.given = given
        self.settings: list[Setting] = []

    def record(self, key: str, value: object, source: Source) -> None:
        self.settings.append(Setting(key, as_setting_text(value), source))

    def take(
        self, key: str, kind: type[T], default: T | None = None, source: Source = DEFAULT
    ) -> T | None:
        """The model's value of `key`, else `default` (recorded with `source`), else None."""
        value: Any = getattr(self.model, FIELD_NAMES[key])
        if value is None:
            if default is not None:
                self.record(key, default, source)
            return default
        if not isinstance(value, kind):
            raise TypeError(f"{key}: the model holds a {type(value).__name__}, not {kind.__name__}")
        self.record(key, value, self.given[key])
        return value

    def need(
        self, key: str, kind: type[T], default: T | None = None, source: Source = DEFAULT
    ) -> T:
        """Like `take`, for a value a valid model always has (or that has a default)."""
        value = self.take(key, kind, default, source)
        if value is None:
            raise ValueError(f"{key}: a valid model has a value")
        return value


def resolve_seed(model: SetupModel, given: Mapping[str, Source]) -> ResolvedSeed:
    """The typed resolution of a valid model; `given` holds the source of each set key."""
    r = _Resolution(model, given)
    host = _resolve_host(r)
    service_account = r.need("SERVICE_ACCOUNT", str, DEFAULT_SERVICE_ACCOUNT)
    telegram = Telegram(r.need("TELEGRAM_BOT_TOKEN", SecretStr), r.need("TELEGRAM_ADMIN_ID", int))
    models = _resolve_models(r)
    network = _resolve_network(r)
    maintenance = _resolve_maintenance(r)
    email = r.take("OPERATOR_EMAIL", str)
    password = r.take("OPERATOR_PASSWORD", SecretStr)
    accounts = Accounts(
        service_account=service_account,
        ssh_authorized_key=r.take("SSH_AUTHORIZED_KEY", str),
        user_password=r.take("CLAWDIE_USER_PASSWORD", SecretStr),
        operator=Operator(email, password) if email and password else None,
    )
    mode = r.need("INSTALL_MODE", str, "fresh")
    adopt = mode == "adopt"
    install = InstallOptions(
        mode=mode,
        target_disk=r.take("TARGET_DISK", str),
        erase_target_disk=r.need("ERASE_TARGET_DISK", bool, False),
        seed_scrub=r.need("SEED_SCRUB", bool, False),
        fingerprint=r.take("INSTALL_FINGERPRINT", str),
        adopt_code=r.take("ADOPT_CODE", SecretStr),
        # its default is a setting only where it means something: in adopt mode
        allow_identity_change=bool(r.take("ALLOW_IDENTITY_CHANGE", bool, False if adopt else None)),
    )
    taken = {s.key for s in r.settings}
    for key in sorted(PASSED_THROUGH - taken, key=list(FIELD_NAMES).index):
        r.take(key, object)
    return ResolvedSeed(
        host, accounts, telegram, models, install, tuple(r.settings), network, maintenance
    )


def _resolve_host(r: _Resolution) -> Host:
    named = "ASSISTANT_NAME" in r.given
    name = r.need("ASSISTANT_NAME", str, DEFAULT_ASSISTANT_NAME)
    hostname = r.need(
        "HOSTNAME",
        str,
        derive_hostname(name) if named else DEFAULT_HOSTNAME,
        Source("derived", "ASSISTANT_NAME") if named else DEFAULT,
    )
    return Host(
        assistant_name=name,
        hostname=hostname,
        domain=r.need("AGENT_DOMAIN", str, f"{hostname}.local", Source("derived", "HOSTNAME")),
        timezone=r.need("TIMEZONE", str, "UTC"),
        locale=r.need("LOCALE", str, "en_US.UTF-8"),
        keymap=r.need("KEYMAP", str, "us"),
    )


def _resolve_models(r: _Resolution) -> Models:
    """The profile's models, each replaced by an explicit line, and the keys of the providers
    they use (in provider order)."""
    mapping = default_mapping()
    profile = r.need("PROFILE", str, mapping.default_profile)
    overrides = {
        key: (str(value), r.given[key])
        for key in profiles.MODEL_KEYS
        if (value := getattr(r.model, FIELD_NAMES[key])) is not None
    }
    chosen = profiles.resolve_models(mapping.profiles[profile], overrides, mapping.version)
    r.settings.extend(chosen.settings)
    roles = chosen.roles
    used = sorted({choice.provider for choice in roles.values()})
    r.record("LLM_PROVIDERS", ",".join(used), Source("derived", "the model settings"))
    keys = tuple(
        ProviderKey(name, key, r.need(key, SecretStr))
        for name in used
        for key in (mapping.providers[name].key,)
    )
    r.record("PROFILE_MAPPING_VERSION", mapping.version, Source("derived", "profiles.toml"))
    return Models(
        profile=profile,
        mapping_version=mapping.version,
        primary=roles["primary"],
        fallback=roles["fallback"],
        compaction=roles["compaction"],
        keys=keys,
    )


def _resolve_maintenance(r: _Resolution) -> Maintenance:
    """The update window and whether updates run (each with its default), the backup's keys and
    directory (no default: no backup until the owner gives a key)."""
    window = r.need("UPDATE_WINDOW", str, DEFAULT_WINDOW)
    updates = r.need("UPDATES", str, "on") == "on"
    channel = r.take("UPDATE_CHANNEL", str)
    recipients = r.take("BACKUP_RECIPIENT", str)
    return Maintenance(
        update_window=window,
        updates=updates,
        update_channel=channel,
        backup_recipients=tuple(recipients.split()) if recipients else (),
        backup_dir=r.take("BACKUP_DIR", str),
    )


def _resolve_network(r: _Resolution) -> Network:
    """Wi-Fi when its keys are set (the model demands all three), the static address with its
    gateway (both or neither), the DNS servers."""
    ssid = r.take("WIFI_SSID", str)
    password = r.take("WIFI_PASSWORD", SecretStr)
    country = r.take("WIFI_COUNTRY", str)
    address = r.take("NET_ADDRESS", str)
    gateway = r.take("NET_GATEWAY", str)
    dns = r.take("NET_DNS", str)
    return Network(
        wifi=Wifi(ssid, password, country) if ssid and password and country else None,
        static=StaticAddress(address, gateway) if address and gateway else None,
        dns=tuple(dns.split()) if dns else (),
    )
