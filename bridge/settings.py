"""Configuration: a TOML file, overridden by ``LMSBRIDGE_*`` environment variables and secret files.

Precedence, highest first: environment variables (``LMSBRIDGE_SITES__MAIN__TOKEN``), files in
the secrets directory named the same way (``lmsbridge_sites__main__token``, as Docker and
Kubernetes mount secrets), then the TOML file. Several LMS sites and HR feeds are configured
as named tables (``[sites.main]``, ``[feeds.hr]``); each names its connector ``type`` and the
connector validates the rest of the table with its own model.

Paths in the file are relative to the file's own directory.
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.errors import ConfigError, did_you_mean

DEFAULT_CONFIG = Path("lmsbridge.toml")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Section):
    url: SecretStr = Field(
        default=SecretStr("sqlite:///lmsbridge.db"),
        description="SQLAlchemy URL of the state database. SQLite paths are relative to the config file.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")


class MappingsSettings(_Section):
    dir: Path = Field(default=Path("mappings"), description="Directory of mapping YAML files.")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe level written."
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="json, console, or auto: console on a terminal, JSON otherwise."
    )


MAX_AGE_DAYS = {"recommend": 30, "reminder": 14, "reinforcement": 14, "digest": 7}


class DeliverySettings(_Section):
    batch_size: int = Field(default=100, ge=1, le=1000, description="Actions claimed and sent per batch.")
    max_attempts: int = Field(
        default=8, ge=1, description="Attempts before a failing action is dead-lettered."
    )
    backoff_base_seconds: float = Field(
        default=60.0, gt=0, description="First retry delay; doubles per attempt."
    )
    backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0, description="Longest retry delay.")
    dry_run: bool = Field(default=False, description="Render and record actions but send nothing.")
    cap_per_week: int = Field(
        default=3,
        ge=0,
        description="Most learner messages one person gets in 7 days, across all mappings (0 = no cap).",
    )
    paused: bool = Field(default=False, description="Kill switch: deliver nothing (also `lmsbridge pause`).")
    default_timezone: str = Field(default="UTC", description="Time zone for people whose HR record has none.")
    lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A claimed action older than this is treated as abandoned by a crashed worker.",
    )
    max_age_days: dict[str, int] = Field(
        default_factory=lambda: dict(MAX_AGE_DAYS),
        description=(
            "Per purpose (recommend, reminder, reinforcement, digest): a message still unsent this many "
            "days after it was queued is dropped with the reason instead of arriving late (0 = no limit; "
            "purposes not given keep their default; other messages to managers use the digest limit)."
        ),
    )

    @field_validator("max_age_days")
    @classmethod
    def _known_purposes(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - {"recommend", "reminder", "reinforcement", "digest"})
        if unknown:
            raise ValueError(
                f"unknown purpose(s) {', '.join(unknown)}: use recommend, reminder, reinforcement, digest"
            )
        if any(days < 0 for days in value.values()):
            raise ValueError("days must be 0 (no limit) or more")
        return {**MAX_AGE_DAYS, **value}


class DaemonSettings(_Section):
    """The long-running service: job schedules, the operations endpoint, shutdown."""

    listen: str = Field(
        default="127.0.0.1:8080", description="host:port of /healthz, /readyz, /metrics and the dashboard."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /metrics and the dashboard; required when listening beyond loopback.",
    )
    pull_every_seconds: float = Field(
        default=300, gt=0, description="Default interval between pulls of each source."
    )
    decide_every_seconds: float = Field(
        default=300, gt=0, description="Interval of the decide and follow-up job."
    )
    deliver_every_seconds: float = Field(default=60, gt=0, description="Interval of the delivery job.")
    decide_cron: str | None = Field(
        default=None, description="Cron expression for the decide job instead of the interval."
    )
    deliver_cron: str | None = Field(
        default=None, description="Cron expression for the delivery job instead of the interval."
    )
    reload_check_seconds: float = Field(
        default=15, gt=0, description="How often the mappings directory is checked for changes."
    )
    grace_seconds: float = Field(
        default=30, gt=0, description="On SIGTERM, how long to let the work in flight finish."
    )
    connection_timeout_seconds: float = Field(
        default=10, gt=0, description="The operations endpoint closes a connection idle this long."
    )
    max_connections: int = Field(
        default=64,
        ge=4,
        le=4096,
        description="Open connections the operations endpoint accepts at once; more are closed at once.",
    )
    workers: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Jobs that may run at the same time (PostgreSQL; on SQLite jobs run one at a time).",
    )


class MetricSettings(_Section):
    """A KPI the HR feeds provide: its direction, unit and (optional) target."""

    direction: Literal["higher", "lower"] = Field(
        default="higher", description="Whether higher or lower values are better."
    )
    unit: str = Field(default="", description="Unit shown in reports, e.g. 'score (1-5)' or '%'.")
    target: float | None = Field(
        default=None, description="The target that `below: target` / `above: target` compare with."
    )
    title: str = Field(default="", description="Readable name shown in reports.")


class ConnectorSettings(BaseModel):
    """A named site or feed. ``type`` picks the connector; the connector validates the rest."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="The connector: moodle, totara, csv, sql, json_http, ...")
    enabled: bool = Field(default=True, description="false keeps the entry but never pulls or sends.")
    poll_every_seconds: float | None = Field(
        default=None, gt=0, description="Pull interval (default: daemon.pull_every_seconds)."
    )
    poll_cron: str | None = Field(
        default=None, description="Pull on a cron expression instead, e.g. '*/10 6-20 * * 1-5'."
    )

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


MatchKey = Literal["employee_number", "email", "username"]


class IdentitySettings(_Section):
    """How HR people are matched to LMS users, in order. Never by name."""

    match: list[MatchKey] = Field(
        default_factory=lambda: list[MatchKey](["employee_number", "email"]),
        description="Keys tried in order to link HR people to LMS users: employee_number (to idnumber), email, username.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LMSBRIDGE_",
        env_nested_delimiter="__",
        secrets_nested_delimiter="__",
        extra="forbid",
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    mappings: MappingsSettings = Field(default_factory=MappingsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    metrics: dict[str, MetricSettings] = Field(default_factory=dict)
    sites: dict[str, ConnectorSettings] = Field(default_factory=dict)
    feeds: dict[str, ConnectorSettings] = Field(default_factory=dict)
    channels: dict[str, ConnectorSettings] = Field(
        default_factory=dict,
        description="Delivery channels outside the LMS; `[channels.email]` carries email actions.",
    )

    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("sites", "feeds", "channels")
    @classmethod
    def _names_are_identifiers(cls, value: dict[str, ConnectorSettings]) -> dict[str, ConnectorSettings]:
        for name in value:
            if not NAME_PATTERN.match(name):
                raise ValueError(
                    f"name {name!r} must be lower-case letters, digits and '_' "
                    "(it is also used in environment variable names)"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats secret files beats the TOML file (passed in as init values).
        return (env_settings, NestedSecretsSettingsSource(file_secret_settings), init_settings)

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: Path | str) -> Path:
        """A path from the configuration, relative to the configuration file."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def store_url(self) -> str:
        url = self.store.url.get_secret_value()
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url

    def secrets(self) -> list[str]:
        """Every secret value in the configuration, for the log redactor."""
        found: list[str] = [self.daemon.token.get_secret_value()] if self.daemon.token else []
        store_url = self.store.url.get_secret_value()
        if "@" in store_url and ":" in store_url.split("@", 1)[0].split("//", 1)[-1]:
            found.append(store_url.split("@", 1)[0].split("//", 1)[-1].split(":", 1)[1])
        for entry in [*self.sites.values(), *self.feeds.values(), *self.channels.values()]:
            found.extend(_secret_values(entry.options()))
        return [s for s in found if s]


SECRET_KEY_HINTS = ("token", "secret", "password", "api_key", "apikey")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(hint in lowered for hint in SECRET_KEY_HINTS)


def _secret_values(options: Mapping[str, Any]) -> list[str]:
    values: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            values.extend(_secret_values(value))
        elif isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif is_secret_key(key) and isinstance(value, str):
            values.append(value)
    return values


def load_settings(path: Path | None = None, secrets_dir: Path | None = None) -> Settings:
    """Read the configuration, or raise one ConfigError naming the file and every bad key."""
    explicit = path is not None
    path = path or Path(os.environ.get("LMSBRIDGE_CONFIG", DEFAULT_CONFIG))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}") from None
    elif explicit:
        raise ConfigError(f"{path}: configuration file not found")
    # Keys such as `_secrets_dir` or `_env_prefix` would reach pydantic-settings as its own
    # arguments (changing where secrets and overrides come from): they are no settings.
    hidden = [key for key in data if key.startswith("_")]
    if hidden:
        raise ConfigError("\n".join(f"{path}: {key}: unknown setting" for key in hidden))
    secrets = secrets_dir or os.environ.get("LMSBRIDGE_SECRETS_DIR")
    try:
        settings = Settings(
            _secrets_dir=str(secrets) if secrets else None,
            **data,
        )
    except ValidationError as exc:
        origin = partial(override_origin, secrets_dir=Path(secrets) if secrets else None)
        raise ConfigError(describe_validation_error(path, exc, Settings, origin)) from None
    settings.config_path = path.resolve()
    return settings


# Where the value at a key path came from, when not from the file: "VARIABLE" or "VARIABLE: rest.of.key".
Origin = Callable[[list[str]], str | None]


def override_origin(
    keys: list[str], *, prefix: str = "LMSBRIDGE_", secrets_dir: Path | None = None
) -> str | None:
    """The environment variable (or secret file) that set the value at ``keys``, if one did.

    An override may set the key itself (``LMSBRIDGE_DELIVERY__BATCH_SIZE``) or a table above it
    as JSON (``LMSBRIDGE_DELIVERY='{"batch_size": 0}'``); the environment wins over secret files,
    as in :meth:`Settings.settings_customise_sources`. Names are matched without regard to case,
    as pydantic-settings matches them.
    """
    environment = {name.upper() for name in os.environ}
    for depth in range(len(keys), 0, -1):
        name = prefix + "__".join(keys[:depth]).upper()
        rest = ".".join(keys[depth:])
        where = None
        if name in environment:
            where = name
        elif secrets_dir is not None and (secrets_dir / name.lower()).is_file():
            where = str(secrets_dir / name.lower())
        if where is not None:
            return f"{where}: {rest}" if rest else where
    return None


def describe_validation_error(
    source: Path | str, exc: ValidationError, model: type[BaseModel], origin: Origin | None = None
) -> str:
    """One line per problem: ``file: key.path: what is wrong``, with a suggestion for typos.

    When ``origin`` says an environment variable or secret file set the key, the line names it
    instead of the file (``LMSBRIDGE_DELIVERY__BATCH_SIZE: ...``): that is where to fix it.
    """
    lines = []
    for err in exc.errors():
        keys = [str(p) for p in err["loc"]]
        overridden = origin(keys) if origin is not None else None
        where = overridden or f"{source}: {'.'.join(keys)}"
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, keys[:-1])
            lines.append(f"{where}: unknown setting{did_you_mean(keys[-1], known)}")
        elif err["type"] == "missing":
            lines.append(f"{where}: required setting is missing")
        else:
            lines.append(f"{where}: {err['msg']}")
    return "\n".join(lines)


def _known_keys(model: type[BaseModel], parents: list[str]) -> list[str]:
    current: Any = model
    for part in parents:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def reference() -> list[tuple[str, str, str, str]]:
    """Every setting: (key, environment variable, default, description), for the README.

    Named tables (``[metrics.NAME]``, ``[sites.NAME]``, ``[feeds.NAME]``) are listed with a
    ``<name>`` placeholder; each connector documents its own further options.
    """
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            if name == "config_path":
                continue
            key = f"{prefix}{name}"
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{key}.")
                continue
            value_model = typing.get_args(annotation)[1] if typing.get_origin(annotation) is dict else None
            if isinstance(value_model, type) and issubclass(value_model, BaseModel):
                walk(value_model, f"{key}.<name>.")
                continue
            env = "LMSBRIDGE_" + key.upper().replace(".", "__")
            if info.is_required():
                shown = "(required)"
            else:
                default: Any = info.get_default(call_default_factory=True)
                if isinstance(default, SecretStr):
                    default = default.get_secret_value()
                shown = "" if default is None else _shown(default)
            rows.append((key, env, shown, info.description or ""))

    walk(Settings, "")
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def reference_markdown() -> str:
    lines = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for key, env, default, description in reference():
        shown = f"`{default}`" if default not in ("", "(required)") else default
        lines.append(f"| `{key}` | `{env}` | {shown} | {description.replace('|', '/')} |")
    return "\n".join(lines)
