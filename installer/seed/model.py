"""The setup model: every setup.txt field, its tier, its rule, and the cross-field rules. Pure.

Each field's rule is a plain `check_*` function of `installer.seed.rules`; the pydantic model
applies them, and `validate_field` lets the wizard run the very same rule on one value through
the model. Messages never contain the value: it may be a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from installer.seed import profiles
from installer.seed.maint_rules import (
    check_backup_dir,
    check_backup_recipient,
    check_update_channel,
    check_update_window,
    check_updates,
)
from installer.seed.net_rules import (
    check_net_address,
    check_net_dns,
    check_net_gateway,
    check_wifi_country,
    check_wifi_password,
    check_wifi_ssid,
    gateway_problem,
)
from installer.seed.pydantic_plugins import skip_plugin_discovery
from installer.seed.rules import (
    SeedValueError,
    check_account,
    check_admin_id,
    check_adopt_code,
    check_api_key,
    check_assistant_name,
    check_backup_file,
    check_backup_identity,
    check_bot_token,
    check_cooldown,
    check_domain,
    check_email,
    check_fingerprint,
    check_hostname,
    check_install_mode,
    check_keymap,
    check_locale,
    check_model_name,
    check_openrouter_key,
    check_password,
    check_profile,
    check_provider,
    check_ssh_key,
    check_target_disk,
    check_timezone,
    check_yes_no,
    default_mapping,
    is_better_auth_hash,
    is_sha512_crypt,
)

# Before the model below is built: no importlib.metadata on check's cold start.
skip_plugin_discovery()

Tier = Literal[
    "required",
    "recommended",
    "prefilled",
    "optional",
    "advanced",
    "install",
    "provider",
    "network",
]


def _rule(check: Callable[[str], Any]) -> BeforeValidator:
    def apply(value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return check(value)
        except SeedValueError as err:
            raise PydanticCustomError(
                "seed", "{message}", {"message": err.message, "hint": err.hint or ""}
            ) from None

    return BeforeValidator(apply)


# Validation context: the setup keys whose value may be in the derived form the installer wrote
# in its own seed copy (`installer.seed.sealed`). An operator's seed never has it: there a
# hash where a password belongs is refused.
DERIVED_KEYS_CONTEXT = "derived_keys"


def _password_rule(key: str, is_derived: Callable[[str], bool]) -> BeforeValidator:
    """`check_password`, except that the installer's own copy may hold the password's hash."""
    plain = _rule(check_password).func

    def apply(value: object, info: ValidationInfo) -> object:
        allowed = (info.context or {}).get(DERIVED_KEYS_CONTEXT, ())
        if isinstance(value, str) and key in allowed and is_derived(value):
            return value
        return plain(value)  # type: ignore[call-arg]

    return BeforeValidator(apply)


# How an adopt run treats a key (installer/adopt/plan.py): `safe` to change, `identity` (changed
# only with ALLOW_IDENTITY_CHANGE=yes), `kept` by the box outside its record and filled only
# when blank, `run` an instruction for this run, `fixed` never changed.
AdoptClass = Literal["safe", "identity", "kept", "run", "fixed"]
# Keys that are given together: the Wi-Fi network, the static address, a provider's API key.
Group = Literal["wifi", "static", "provider"]
# A key's part in an adopt seed: `needed` by every adopt seed, `used` only there.
AdoptMode = Literal["needed", "used"]
# A key's part in a restore seed (INSTALL_MODE=restore): `needed` by every one, `used` there.
RestoreMode = Literal["needed", "used"]


@dataclass(frozen=True, kw_only=True)
class KeyFacts:
    """Every fact about one setup key beyond its type and rule, declared once with its field
    (`_field`); the key sets the other rooms use are derived from these (`keys_where`)."""

    adopt: AdoptClass
    # who can reach or control the box, or whose accounts it spends: their own heading in an
    # adopt's receipt and message
    access: bool = False
    platform: bool = True  # reaches the platform's environment (system.env)
    hidden: bool = False  # a secret of which not even a prefix is shown
    group: Group | None = None
    note_normalised: bool = False  # its normalised form gets a repair note when it differs
    # a login password: warned about on the stick, kept as its hash in the installer's seed
    # copy and on the box, never in setup.resolved.json
    login_password: bool = False
    adopt_mode: AdoptMode | None = None
    restore_mode: RestoreMode | None = None
    asked_unfilled: bool = False  # asked on the console when the seed was not filled in
    # False: no resolution has it (the model refuses any value, or only a seed without one, a
    # restore seed, uses it)
    resolves: bool = True
    # only the platform reads it: a setting in the resolution, no attribute of the typed seed
    passed_through: bool = False
    words: str = ""  # the key as a sentence names it ("host name")
    missing_hint: str = ""  # how to get its value, when a rule needs it and it is not set


_DECLARED: dict[str, KeyFacts] = {}


def _field(key: str, tier: Tier, doc: str, **facts: Any) -> Any:
    """A setup key's field and its facts: its one declaration."""
    if key in _DECLARED:
        raise TypeError(f"{key} is declared twice")
    _DECLARED[key] = KeyFacts(**facts)
    return Field(default=None, alias=key, description=doc, json_schema_extra={"tier": tier})


_WHERE_BOT = "talk to @BotFather on Telegram, send /newbot, copy the token it shows"
_WHERE_ADMIN = "send a message to @userinfobot on Telegram: it replies with your id"
_WHERE_OPENROUTER = "create a key at openrouter.ai (Settings, Keys) and paste it here"
_FINGERPRINT_HINT = (
    "copy the 8 characters shown as Fingerprint on the box's login screen, in its install "
    "summary or on its receipt: a stick made for one box cannot change another"
)
_ADOPT_CODE_HINT = (
    "copy ADOPT_CODE= from the box's first-boot report (SETUP-RESULT.txt on the stick it "
    "was installed with, or the Telegram report); its owner makes a new one with "
    "`clawdie-setup adopt-code --new` as root on the box"
)


class SetupModel(BaseModel):
    """setup.txt as validated data. Field aliases are the setup.txt keys."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, str_strip_whitespace=False
    )

    openrouter_api_key: Annotated[SecretStr | None, _rule(check_openrouter_key)] = _field(
        "OPENROUTER_API_KEY",
        "required",
        "OpenRouter API key (sk-or-…), from openrouter.ai/keys",
        adopt="safe",
        access=True,
        group="provider",
        missing_hint=_WHERE_OPENROUTER,
    )
    telegram_bot_token: Annotated[SecretStr | None, _rule(check_bot_token)] = _field(
        "TELEGRAM_BOT_TOKEN",
        "required",
        "bot token from @BotFather on Telegram (/newbot)",
        adopt="identity",
        access=True,
        words="Telegram bot",
        missing_hint=_WHERE_BOT,
    )
    telegram_admin_id: Annotated[int | None, _rule(check_admin_id)] = _field(
        "TELEGRAM_ADMIN_ID",
        "required",
        "your numeric Telegram user id (ask @userinfobot)",
        adopt="identity",
        access=True,
        words="Telegram admin",
        missing_hint=_WHERE_ADMIN,
    )
    assistant_name: Annotated[str | None, _rule(check_assistant_name)] = _field(
        "ASSISTANT_NAME",
        "recommended",
        "the assistant's name as people see it (1-32 characters)",
        adopt="identity",
        words="assistant name",
        asked_unfilled=True,
    )
    profile: Annotated[str | None, _rule(check_profile)] = _field(
        "PROFILE",
        "prefilled",
        "economy, balanced or quality: which AI models answer",
        adopt="safe",
        note_normalised=True,
    )
    timezone: Annotated[str | None, _rule(check_timezone)] = _field(
        "TIMEZONE",
        "optional",
        "time zone, e.g. Europe/Berlin (default UTC)",
        adopt="safe",
        note_normalised=True,
        asked_unfilled=True,
    )
    hostname: Annotated[str | None, _rule(check_hostname)] = _field(
        "HOSTNAME",
        "optional",
        "network name of the box (default: from ASSISTANT_NAME)",
        adopt="identity",
        note_normalised=True,
        words="host name",
    )
    locale: Annotated[str | None, _rule(check_locale)] = _field(
        "LOCALE",
        "optional",
        "system language, e.g. de_DE.UTF-8 (default en_US.UTF-8)",
        adopt="safe",
        note_normalised=True,
        platform=False,
    )
    keymap: Annotated[str | None, _rule(check_keymap)] = _field(
        "KEYMAP",
        "optional",
        "console keyboard layout, e.g. de or fr (default us)",
        adopt="safe",
        note_normalised=True,
        platform=False,
    )
    operator_email: Annotated[str | None, _rule(check_email)] = _field(
        "OPERATOR_EMAIL",
        "optional",
        "dashboard login e-mail (set with OPERATOR_PASSWORD)",
        adopt="kept",
        access=True,
        note_normalised=True,
    )
    operator_password: Annotated[
        SecretStr | None, _password_rule("OPERATOR_PASSWORD", is_better_auth_hash)
    ] = _field(
        "OPERATOR_PASSWORD",
        "optional",
        "dashboard password, at least 12 characters",
        adopt="kept",
        access=True,
        platform=False,
        hidden=True,
        login_password=True,
    )
    ssh_authorized_key: Annotated[str | None, _rule(check_ssh_key)] = _field(
        "SSH_AUTHORIZED_KEY",
        "optional",
        "your SSH public key (one line from a .pub file)",
        adopt="kept",
        access=True,
        platform=False,
    )
    clawdie_user_password: Annotated[
        SecretStr | None, _password_rule("CLAWDIE_USER_PASSWORD", is_sha512_crypt)
    ] = _field(
        "CLAWDIE_USER_PASSWORD",
        "optional",
        "fallback console/SSH password (prefer an SSH key)",
        adopt="kept",
        access=True,
        platform=False,
        hidden=True,
        login_password=True,
    )
    service_account: Annotated[str | None, _rule(check_account)] = _field(
        "SERVICE_ACCOUNT",
        "optional",
        "Linux user that runs the platform (default clawdie)",
        adopt="fixed",
    )
    agent_domain: Annotated[str | None, _rule(check_domain)] = _field(
        "AGENT_DOMAIN",
        "optional",
        "domain of the dashboard (default <hostname>.local)",
        adopt="identity",
        note_normalised=True,
        words="dashboard domain",
    )
    pi_tui_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "PI_TUI_PROVIDER",
        "advanced",
        "provider of the main chat model (overrides the profile)",
        adopt="safe",
        note_normalised=True,
    )
    pi_tui_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "PI_TUI_MODEL", "advanced", "main chat model (overrides the profile)", adopt="safe"
    )
    llm_fallback_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "LLM_FALLBACK_PROVIDER",
        "advanced",
        "provider of the fallback model",
        adopt="safe",
        note_normalised=True,
    )
    llm_fallback_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "LLM_FALLBACK_MODEL", "advanced", "fallback model (never a :free one)", adopt="safe"
    )
    agent_compaction_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "AGENT_COMPACTION_PROVIDER",
        "advanced",
        "provider of the model that summarises history",
        adopt="safe",
        note_normalised=True,
    )
    agent_compaction_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "AGENT_COMPACTION_MODEL",
        "advanced",
        "model that summarises long conversations",
        adopt="safe",
    )
    llm_fallback_default_cooldown_seconds: Annotated[int | None, _rule(check_cooldown)] = _field(
        "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS",
        "advanced",
        "seconds before retrying the primary",
        adopt="safe",
        passed_through=True,
    )
    openai_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-", "OpenAI"))
    ] = _field(
        "OPENAI_API_KEY",
        "provider",
        "OpenAI key, only if a setting uses openai",
        adopt="safe",
        access=True,
        group="provider",
    )
    anthropic_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-ant-", "Anthropic"))
    ] = _field(
        "ANTHROPIC_API_KEY",
        "provider",
        "Anthropic key, only if a setting uses anthropic",
        adopt="safe",
        access=True,
        group="provider",
    )
    zai_api_key: Annotated[SecretStr | None, _rule(lambda v: check_api_key(v, "", "Z.ai"))] = (
        _field(
            "ZAI_API_KEY",
            "provider",
            "Z.ai key, only if a setting uses zai",
            adopt="safe",
            access=True,
            group="provider",
        )
    )
    deepseek_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-", "DeepSeek"))
    ] = _field(
        "DEEPSEEK_API_KEY",
        "provider",
        "DeepSeek key, only if a setting uses deepseek",
        adopt="safe",
        access=True,
        group="provider",
    )
    wifi_ssid: Annotated[str | None, _rule(check_wifi_ssid)] = _field(
        "WIFI_SSID",
        "network",
        "Wi-Fi network name, as phones list it (with WIFI_PASSWORD)",
        adopt="safe",
        access=True,
        platform=False,
        group="wifi",
        asked_unfilled=True,
        missing_hint="the Wi-Fi network's name, as your phone lists it",
    )
    wifi_password: Annotated[SecretStr | None, _rule(check_wifi_password)] = _field(
        "WIFI_PASSWORD",
        "network",
        "Wi-Fi password (WPA), 8-63 characters",
        adopt="safe",
        access=True,
        platform=False,
        hidden=True,
        group="wifi",
        asked_unfilled=True,
        missing_hint="the Wi-Fi password, 8-63 characters (open networks are not supported)",
    )
    wifi_country: Annotated[str | None, _rule(check_wifi_country)] = _field(
        "WIFI_COUNTRY",
        "network",
        "country the box is in, e.g. DE or US (sets the radio rules)",
        adopt="safe",
        access=True,
        platform=False,
        group="wifi",
        note_normalised=True,
        asked_unfilled=True,
        missing_hint="the two-letter code of the country the box is in, e.g. DE or US: it "
        "decides which radio channels the box may use",
    )
    net_address: Annotated[str | None, _rule(check_net_address)] = _field(
        "NET_ADDRESS",
        "network",
        "fixed address for wired links, e.g. 192.168.1.50/24 (default DHCP)",
        adopt="safe",
        access=True,
        platform=False,
        group="static",
        note_normalised=True,
    )
    net_gateway: Annotated[str | None, _rule(check_net_gateway)] = _field(
        "NET_GATEWAY",
        "network",
        "the router's address, e.g. 192.168.1.1 (with NET_ADDRESS)",
        adopt="safe",
        access=True,
        platform=False,
        group="static",
        note_normalised=True,
    )
    net_dns: Annotated[str | None, _rule(check_net_dns)] = _field(
        "NET_DNS",
        "network",
        "DNS servers, e.g. 1.1.1.1, 9.9.9.9 (default: from the network)",
        adopt="safe",
        access=True,
        platform=False,
        note_normalised=True,
    )
    # --- a box that lives for years (DESIGN §9): updates and backups ---------------------------
    # safe: what the box does at night and where its backups go are the owner's settings, not
    # who the box is; the backup's keys decide who can read the box's state: access.
    update_window: Annotated[str | None, _rule(check_update_window)] = _field(
        "UPDATE_WINDOW",
        "optional",
        "when security fixes, their reboot and the daily backup may run, local time "
        "HH:MM-HH:MM (default 04:00-05:00)",
        adopt="safe",
        platform=False,
        note_normalised=True,
    )
    updates: Annotated[str | None, _rule(check_updates)] = _field(
        "UPDATES",
        "optional",
        "on (default): Debian's security fixes are applied in UPDATE_WINDOW; off: never",
        adopt="safe",
        platform=False,
        note_normalised=True,
    )
    update_channel: Annotated[str | None, _rule(check_update_channel)] = _field(
        "UPDATE_CHANNEL",
        "optional",
        "the publisher's address new platform releases come from (default: the image's "
        "channel); off: no channel",
        adopt="safe",
        platform=False,
        note_normalised=True,
    )
    backup_recipient: Annotated[str | None, _rule(check_backup_recipient)] = _field(
        "BACKUP_RECIPIENT",
        "optional",
        "your age public key(s) (age1…): daily encrypted backups only you can open",
        adopt="safe",
        access=True,
        platform=False,
        note_normalised=True,
    )
    backup_dir: Annotated[str | None, _rule(check_backup_dir)] = _field(
        "BACKUP_DIR",
        "optional",
        "directory on the box for the daily backups, e.g. a second disk's /srv/backup",
        adopt="safe",
        platform=False,
        note_normalised=True,
    )
    install_mode: Annotated[str | None, _rule(check_install_mode)] = _field(
        "INSTALL_MODE",
        "install",
        "fresh (default), adopt an existing installation, restore a backup, or reset a box",
        adopt="run",
        platform=False,
        note_normalised=True,
    )
    install_fingerprint: Annotated[str | None, _rule(check_fingerprint)] = _field(
        "INSTALL_FINGERPRINT",
        "install",
        "adopt only: the first 8 characters of the box's fingerprint (its login screen shows it)",
        adopt="run",
        platform=False,
        note_normalised=True,
        adopt_mode="needed",
        missing_hint=_FINGERPRINT_HINT,
    )
    adopt_code: Annotated[SecretStr | None, _rule(check_adopt_code)] = _field(
        "ADOPT_CODE",
        "install",
        "adopt only: the box's adopt code, from its first-boot report (proves the box is yours)",
        adopt="run",
        platform=False,
        hidden=True,
        adopt_mode="needed",
        missing_hint=_ADOPT_CODE_HINT,
    )
    allow_identity_change: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "ALLOW_IDENTITY_CHANGE",
        "install",
        "adopt only: yes = a new host name, assistant name, Telegram bot or admin may replace "
        "the box's",
        adopt="run",
        platform=False,
        adopt_mode="used",
    )
    target_disk: Annotated[str | None, _rule(check_target_disk)] = _field(
        "TARGET_DISK",
        "install",
        "disk to install to: serial:<number on its label> or /dev/disk/by-id/… (asked if unclear)",
        adopt="run",
        platform=False,
    )
    erase_target_disk: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "ERASE_TARGET_DISK",
        "install",
        "yes = erase TARGET_DISK without asking",
        adopt="run",
        platform=False,
    )
    seed_scrub: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "SEED_SCRUB",
        "install",
        "yes = after a successful install, replace the secrets on the stick with a note of "
        "where and when they were used",
        adopt="run",
        platform=False,
    )
    # --- restore (DESIGN §9): a new box that is the backed-up one ------------------------------
    backup_identity: Annotated[SecretStr | None, _rule(check_backup_identity)] = _field(
        "BACKUP_IDENTITY",
        "install",
        "restore only: the owner's age identity (AGE-SECRET-KEY-1…) the backup was made for",
        adopt="run",
        platform=False,
        hidden=True,
        restore_mode="needed",
        resolves=False,
        missing_hint="copy the AGE-SECRET-KEY-1… line of the key file the backups are made "
        "for (BACKUP_RECIPIENT is its public half)",
    )
    backup_file: Annotated[str | None, _rule(check_backup_file)] = _field(
        "BACKUP_FILE",
        "install",
        "restore only: the backup's file name next to setup.txt (default: the one "
        "*.backup.age file there)",
        adopt="run",
        platform=False,
        restore_mode="used",
        resolves=False,
        missing_hint="copy the backup onto the stick next to setup.txt; with several, name "
        "one: BACKUP_FILE=…backup.age",
    )
    tenant_id: str | None = _field(
        "TENANT_ID",
        "advanced",
        "for additional tenants; not used by first boot",
        adopt="fixed",
        resolves=False,
    )

    @model_validator(mode="wrap")
    @classmethod
    def _cross_field(
        cls, data: Any, handler: Callable[[Any], SetupModel], info: ValidationInfo
    ) -> SetupModel:
        """Run the field rules and the cross-field rules, and report all problems together."""
        errors: list[InitErrorDetails] = []
        model: SetupModel | None = None
        try:
            model = handler(data)
        except ValidationError as err:
            errors.extend(_as_details(err))
        if isinstance(data, Mapping):
            present = {k for k, v in data.items() if v not in (None, "")}
            errors.extend(_presence_errors(present, data))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        assert model is not None  # noqa: S101 - handler returned or raised
        return model

    def secret(self, key: str) -> str | None:
        """The plain value of a secret field by setup.txt key (for the steps that need it)."""
        value = getattr(self, FIELD_NAMES[key])
        return value.get_secret_value() if isinstance(value, SecretStr) else None


def _as_details(err: ValidationError) -> list[InitErrorDetails]:
    details: list[InitErrorDetails] = []
    for e in err.errors(include_url=False, include_input=False):
        ctx = e.get("ctx") or {}
        message = str(ctx.get("message") or e["msg"])
        hint = str(ctx.get("hint") or "")
        details.append(
            InitErrorDetails(
                type=PydanticCustomError("seed", "{message}", {"message": message, "hint": hint}),
                loc=e["loc"],
                input=None,
            )
        )
    return details


def _error(key: str, message: str, hint: str = "", because: str = "") -> InitErrorDetails:
    """A problem with `key`; `because`: the key whose line makes `key` needed (its line is named
    when the problem is shown)."""
    context = {"message": message, "hint": hint, "because": because}
    return InitErrorDetails(
        type=PydanticCustomError("seed", "{message}", context),
        loc=(key,),
        input=None,
    )


def _presence_errors(present: set[str], data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """Rules about which keys must be set together; they need no valid values to run."""
    errors = [
        _error(key, "required, but not set", DECLARATIONS[key].missing_hint)
        for key in ALWAYS_REQUIRED
        if key not in present
    ]
    errors.extend(_provider_errors(present, data))
    errors.extend(_network_errors(present, data))
    for have, need in (
        ("OPERATOR_EMAIL", "OPERATOR_PASSWORD"),
        ("OPERATOR_PASSWORD", "OPERATOR_EMAIL"),
    ):
        if have in present and need not in present:
            errors.append(
                _error(
                    need,
                    f"required because {have} is set",
                    "set both, or neither (the dashboard then stays locked until set-operator)",
                    because=have,
                )
            )
    if "ERASE_TARGET_DISK" in present and "TARGET_DISK" not in present:
        value = str(data["ERASE_TARGET_DISK"]).lower()
        if value == "yes":
            errors.append(
                _error(
                    "TARGET_DISK",
                    "required because ERASE_TARGET_DISK=yes",
                    "name the disk to erase, e.g. TARGET_DISK=serial:…",
                    because="ERASE_TARGET_DISK",
                )
            )
    if str(data.get("INSTALL_MODE") or "").strip().lower() == "adopt" and (
        "INSTALL_FINGERPRINT" not in present
    ):
        errors.append(
            _error(
                "INSTALL_FINGERPRINT",
                "required because INSTALL_MODE=adopt",
                _FINGERPRINT_HINT,
                because="INSTALL_MODE",
            )
        )
    if "TENANT_ID" in present:
        errors.append(
            _error(
                "TENANT_ID",
                "additional tenants are not set up by first boot",
                "remove this line; add tenants after the installation",
            )
        )
    return errors


def _provider_errors(present: set[str], data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """Each provider the settings resolve to needs its key line."""
    mapping = default_mapping()
    profile_name = str(data.get("PROFILE") or mapping.default_profile).lower()
    profile = mapping.profiles.get(profile_name, mapping.profiles[mapping.default_profile])
    errors: list[InitErrorDetails] = []
    needed: dict[str, str] = {}
    for role, (provider_key, model_key) in profiles.ROLE_KEYS.items():
        if provider_key in present:
            provider = str(data[provider_key]).lower()
            why = f"{provider_key}={provider}"
            if model_key not in present:
                errors.append(
                    _error(
                        model_key,
                        f"required because {provider_key} is set",
                        "a model name belongs to its provider; set both lines",
                        because=provider_key,
                    )
                )
        else:
            provider = profile.choice(role).provider
            why = f"profile {profile.name} uses it"
        needed.setdefault(provider, why)
    for provider, why in needed.items():
        spec = mapping.providers.get(provider)
        if spec is not None and spec.key not in present:
            declared = DECLARATIONS.get(spec.key)
            hint = (declared.missing_hint if declared else "") or (
                f"add a {spec.key}= line with your {spec.label} key"
            )
            errors.append(_error(spec.key, f"required ({why})", hint))
    return errors


def _network_errors(present: set[str], data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """Wi-Fi's three keys come together; NET_ADDRESS and NET_GATEWAY too, the gateway inside
    the address's network (checked when both values pass their own rules)."""
    errors: list[InitErrorDetails] = []
    wifi_given = [key for key in WIFI_KEYS if key in present]
    if wifi_given:
        errors.extend(
            _error(
                key,
                f"required because {wifi_given[0]} is set",
                DECLARATIONS[key].missing_hint,
                because=wifi_given[0],
            )
            for key in WIFI_KEYS
            if key not in present
        )
    for have, need, hint in (
        ("NET_ADDRESS", "NET_GATEWAY", "the router's address, e.g. 192.168.1.1"),
        ("NET_GATEWAY", "NET_ADDRESS", "this box's address and network size, e.g. 192.168.1.50/24"),
    ):
        if have in present and need not in present:
            errors.append(_error(need, f"required because {have} is set", hint, because=have))
    if "NET_ADDRESS" in present and "NET_GATEWAY" in present:
        try:
            address = check_net_address(str(data["NET_ADDRESS"]))
            gateway = check_net_gateway(str(data["NET_GATEWAY"]))
        except SeedValueError:
            return errors  # the field rules report it
        problem = gateway_problem(address, gateway)
        if problem is not None:
            errors.append(_error("NET_GATEWAY", problem.message, problem.hint or ""))
    return errors


FIELD_NAMES: dict[str, str] = {
    str(info.alias): name for name, info in SetupModel.model_fields.items()
}
KNOWN_KEYS = frozenset(FIELD_NAMES)


@dataclass(frozen=True, kw_only=True)
class FieldSpec(KeyFacts):
    """One setup key as declared: its tier, its explanation (the wizard's question, the
    template's and `--explain`'s words), whether it is a secret (its type) and its facts."""

    key: str
    tier: Tier
    doc: str
    secret: bool


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _declarations() -> dict[str, FieldSpec]:
    specs = {}
    for info in SetupModel.model_fields.values():
        key = str(info.alias)
        extra = info.json_schema_extra
        tier: Tier = extra["tier"] if isinstance(extra, dict) else "optional"  # type: ignore[assignment]
        facts = {f.name: getattr(_DECLARED[key], f.name) for f in fields(KeyFacts)}
        specs[key] = FieldSpec(
            key=key,
            tier=tier,
            doc=info.description or "",
            secret=_is_secret(info.annotation),
            **facts,
        )
    if specs.keys() != _DECLARED.keys():
        raise TypeError(f"declared but not fields: {sorted(_DECLARED.keys() - specs.keys())}")
    return specs


# Every setup key's declaration, in model (setup.txt) order: the one source of its facts.
DECLARATIONS: dict[str, FieldSpec] = _declarations()


def keys_where(test: Callable[[FieldSpec], bool]) -> frozenset[str]:
    """The setup keys whose declaration passes `test`."""
    return frozenset(key for key, spec in DECLARATIONS.items() if test(spec))


def ordered_keys_where(test: Callable[[FieldSpec], bool]) -> tuple[str, ...]:
    """`keys_where`, in model order."""
    return tuple(key for key, spec in DECLARATIONS.items() if test(spec))


SECRET_KEYS = keys_where(lambda s: s.secret)
WIFI_KEYS = ordered_keys_where(lambda s: s.group == "wifi")
# Required whatever else the seed says (a provider's key only when a model uses the provider).
ALWAYS_REQUIRED = ordered_keys_where(lambda s: s.tier == "required" and s.group != "provider")


def field_specs() -> list[FieldSpec]:
    """Every setup.txt key in model order, with its tier, explanation, secrecy and facts."""
    return list(DECLARATIONS.values())


@dataclass(frozen=True)
class FieldProblem:
    key: str | None
    message: str
    hint: str
    because: str | None = None  # the key whose line makes this one needed


def problems_of(err: ValidationError) -> list[FieldProblem]:
    """The problems of a failed validation as (key, message, hint), without any value."""
    out = []
    for e in err.errors(include_url=False, include_input=False):
        ctx = e.get("ctx") or {}
        key = str(e["loc"][0]) if e["loc"] else None
        out.append(
            FieldProblem(
                key,
                str(ctx.get("message") or e["msg"]),
                str(ctx.get("hint") or ""),
                str(ctx.get("because") or "") or None,
            )
        )
    return out


def validate_field(key: str, value: str) -> FieldProblem | None:
    """Run the model's own rule for one key on one value (the wizard validates as you type)."""
    info = SetupModel.model_fields[FIELD_NAMES[key]]
    # a field with no rule of its own (TENANT_ID) has no metadata: Annotated needs at least one
    annotated: Any = info.annotation
    if info.metadata:
        annotated = Annotated[(info.annotation, *info.metadata)]
    adapter: TypeAdapter[Any] = TypeAdapter(annotated)
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        problem = problems_of(err)[0]
        return FieldProblem(key, problem.message, problem.hint)
    return None
