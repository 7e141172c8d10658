"""The setup model: every setup.txt field, its tier, its rule, and the cross-field rules. Pure.

Each field's rule is a plain `check_*` function of `installer.seed.rules`; the pydantic model
applies them, and `validate_field` lets the wizard run the very same rule on one value through
the model. Messages never contain the value: it may be a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

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


def _field(key: str, tier: Tier, doc: str) -> Any:
    return Field(default=None, alias=key, description=doc, json_schema_extra={"tier": tier})


class SetupModel(BaseModel):
    """setup.txt as validated data. Field aliases are the setup.txt keys."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, str_strip_whitespace=False
    )

    openrouter_api_key: Annotated[SecretStr | None, _rule(check_openrouter_key)] = _field(
        "OPENROUTER_API_KEY", "required", "OpenRouter API key (sk-or-…), from openrouter.ai/keys"
    )
    telegram_bot_token: Annotated[SecretStr | None, _rule(check_bot_token)] = _field(
        "TELEGRAM_BOT_TOKEN", "required", "bot token from @BotFather on Telegram (/newbot)"
    )
    telegram_admin_id: Annotated[int | None, _rule(check_admin_id)] = _field(
        "TELEGRAM_ADMIN_ID", "required", "your numeric Telegram user id (ask @userinfobot)"
    )
    assistant_name: Annotated[str | None, _rule(check_assistant_name)] = _field(
        "ASSISTANT_NAME", "recommended", "the assistant's name as people see it (1-32 characters)"
    )
    profile: Annotated[str | None, _rule(check_profile)] = _field(
        "PROFILE", "prefilled", "economy, balanced or quality: which AI models answer"
    )
    timezone: Annotated[str | None, _rule(check_timezone)] = _field(
        "TIMEZONE", "optional", "time zone, e.g. Europe/Berlin (default UTC)"
    )
    hostname: Annotated[str | None, _rule(check_hostname)] = _field(
        "HOSTNAME", "optional", "network name of the box (default: from ASSISTANT_NAME)"
    )
    locale: Annotated[str | None, _rule(check_locale)] = _field(
        "LOCALE", "optional", "system language, e.g. de_DE.UTF-8 (default en_US.UTF-8)"
    )
    keymap: Annotated[str | None, _rule(check_keymap)] = _field(
        "KEYMAP", "optional", "console keyboard layout, e.g. de or fr (default us)"
    )
    operator_email: Annotated[str | None, _rule(check_email)] = _field(
        "OPERATOR_EMAIL", "optional", "dashboard login e-mail (set with OPERATOR_PASSWORD)"
    )
    operator_password: Annotated[
        SecretStr | None, _password_rule("OPERATOR_PASSWORD", is_better_auth_hash)
    ] = _field("OPERATOR_PASSWORD", "optional", "dashboard password, at least 12 characters")
    ssh_authorized_key: Annotated[str | None, _rule(check_ssh_key)] = _field(
        "SSH_AUTHORIZED_KEY", "optional", "your SSH public key (one line from a .pub file)"
    )
    clawdie_user_password: Annotated[
        SecretStr | None, _password_rule("CLAWDIE_USER_PASSWORD", is_sha512_crypt)
    ] = _field(
        "CLAWDIE_USER_PASSWORD", "optional", "fallback console/SSH password (prefer an SSH key)"
    )
    service_account: Annotated[str | None, _rule(check_account)] = _field(
        "SERVICE_ACCOUNT", "optional", "Linux user that runs the platform (default clawdie)"
    )
    agent_domain: Annotated[str | None, _rule(check_domain)] = _field(
        "AGENT_DOMAIN", "optional", "domain of the dashboard (default <hostname>.local)"
    )
    pi_tui_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "PI_TUI_PROVIDER", "advanced", "provider of the main chat model (overrides the profile)"
    )
    pi_tui_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "PI_TUI_MODEL", "advanced", "main chat model (overrides the profile)"
    )
    llm_fallback_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "LLM_FALLBACK_PROVIDER", "advanced", "provider of the fallback model"
    )
    llm_fallback_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "LLM_FALLBACK_MODEL", "advanced", "fallback model (never a :free one)"
    )
    agent_compaction_provider: Annotated[str | None, _rule(check_provider)] = _field(
        "AGENT_COMPACTION_PROVIDER", "advanced", "provider of the model that summarises history"
    )
    agent_compaction_model: Annotated[str | None, _rule(check_model_name)] = _field(
        "AGENT_COMPACTION_MODEL", "advanced", "model that summarises long conversations"
    )
    llm_fallback_default_cooldown_seconds: Annotated[int | None, _rule(check_cooldown)] = _field(
        "LLM_FALLBACK_DEFAULT_COOLDOWN_SECONDS", "advanced", "seconds before retrying the primary"
    )
    openai_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-", "OpenAI"))
    ] = _field("OPENAI_API_KEY", "provider", "OpenAI key, only if a setting uses openai")
    anthropic_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-ant-", "Anthropic"))
    ] = _field("ANTHROPIC_API_KEY", "provider", "Anthropic key, only if a setting uses anthropic")
    zai_api_key: Annotated[SecretStr | None, _rule(lambda v: check_api_key(v, "", "Z.ai"))] = (
        _field("ZAI_API_KEY", "provider", "Z.ai key, only if a setting uses zai")
    )
    deepseek_api_key: Annotated[
        SecretStr | None, _rule(lambda v: check_api_key(v, "sk-", "DeepSeek"))
    ] = _field("DEEPSEEK_API_KEY", "provider", "DeepSeek key, only if a setting uses deepseek")
    wifi_ssid: Annotated[str | None, _rule(check_wifi_ssid)] = _field(
        "WIFI_SSID", "network", "Wi-Fi network name, as phones list it (with WIFI_PASSWORD)"
    )
    wifi_password: Annotated[SecretStr | None, _rule(check_wifi_password)] = _field(
        "WIFI_PASSWORD", "network", "Wi-Fi password (WPA), 8-63 characters"
    )
    wifi_country: Annotated[str | None, _rule(check_wifi_country)] = _field(
        "WIFI_COUNTRY", "network", "country the box is in, e.g. DE or US (sets the radio rules)"
    )
    net_address: Annotated[str | None, _rule(check_net_address)] = _field(
        "NET_ADDRESS",
        "network",
        "fixed address for wired links, e.g. 192.168.1.50/24 (default DHCP)",
    )
    net_gateway: Annotated[str | None, _rule(check_net_gateway)] = _field(
        "NET_GATEWAY", "network", "the router's address, e.g. 192.168.1.1 (with NET_ADDRESS)"
    )
    net_dns: Annotated[str | None, _rule(check_net_dns)] = _field(
        "NET_DNS", "network", "DNS servers, e.g. 1.1.1.1, 9.9.9.9 (default: from the network)"
    )
    install_mode: Annotated[str | None, _rule(check_install_mode)] = _field(
        "INSTALL_MODE", "install", "fresh (default) or adopt an existing installation"
    )
    install_fingerprint: Annotated[str | None, _rule(check_fingerprint)] = _field(
        "INSTALL_FINGERPRINT",
        "install",
        "adopt only: the first 8 characters of the box's fingerprint (its login screen shows it)",
    )
    adopt_code: Annotated[SecretStr | None, _rule(check_adopt_code)] = _field(
        "ADOPT_CODE",
        "install",
        "adopt only: the box's adopt code, from its first-boot report (proves the box is yours)",
    )
    allow_identity_change: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "ALLOW_IDENTITY_CHANGE",
        "install",
        "adopt only: yes = a new host name, assistant name, Telegram bot or admin may replace "
        "the box's",
    )
    target_disk: Annotated[str | None, _rule(check_target_disk)] = _field(
        "TARGET_DISK",
        "install",
        "disk to install to: serial:<number on its label> or /dev/disk/by-id/… (asked if unclear)",
    )
    erase_target_disk: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "ERASE_TARGET_DISK", "install", "yes = erase TARGET_DISK without asking"
    )
    seed_scrub: Annotated[bool | None, _rule(check_yes_no)] = _field(
        "SEED_SCRUB",
        "install",
        "yes = after a successful install, replace the secrets on the stick with a note of "
        "where and when they were used",
    )
    tenant_id: str | None = _field(
        "TENANT_ID", "advanced", "for additional tenants; not used by first boot"
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


_WHERE_TO_GET = {
    "TELEGRAM_BOT_TOKEN": "talk to @BotFather on Telegram, send /newbot, copy the token it shows",
    "TELEGRAM_ADMIN_ID": "send a message to @userinfobot on Telegram: it replies with your id",
    "OPENROUTER_API_KEY": "create a key at openrouter.ai (Settings, Keys) and paste it here",
}


def _presence_errors(present: set[str], data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """Rules about which keys must be set together; they need no valid values to run."""
    errors = [
        _error(key, "required, but not set", _WHERE_TO_GET[key])
        for key in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ADMIN_ID")
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
                "copy the 8 characters shown as Fingerprint on the box's login screen, in its "
                "install summary or on its receipt: a stick made for one box cannot change another",
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
            hint = _WHERE_TO_GET.get(spec.key, f"add a {spec.key}= line with your {spec.label} key")
            errors.append(_error(spec.key, f"required ({why})", hint))
    return errors


WIFI_KEYS = ("WIFI_SSID", "WIFI_PASSWORD", "WIFI_COUNTRY")
_WIFI_HINTS = {
    "WIFI_SSID": "the Wi-Fi network's name, as your phone lists it",
    "WIFI_PASSWORD": "the Wi-Fi password, 8-63 characters (open networks are not supported)",
    "WIFI_COUNTRY": "the two-letter code of the country the box is in, e.g. DE or US: it "
    "decides which radio channels the box may use",
}


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
                _WIFI_HINTS[key],
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


@dataclass(frozen=True)
class FieldSpec:
    """What the wizard and the template need to know about one key."""

    key: str
    tier: Tier
    doc: str
    secret: bool


def field_specs() -> list[FieldSpec]:
    """Every setup.txt key in model order, with its tier, explanation and secrecy."""
    specs = []
    for info in SetupModel.model_fields.values():
        extra = info.json_schema_extra
        tier = extra["tier"] if isinstance(extra, dict) else "optional"
        secret = "SecretStr" in repr(info.annotation)
        specs.append(FieldSpec(str(info.alias), tier, info.description or "", secret))  # type: ignore[arg-type]
    return specs


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
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[(info.annotation, *info.metadata)])  # type: ignore[arg-type]
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        problem = problems_of(err)[0]
        return FieldProblem(key, problem.message, problem.hint)
    return None
