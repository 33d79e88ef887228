"""Finds connectors through the ``lmsbridge.connectors`` entry-point group.

A third party ships a connector as its own distribution by registering a
:class:`bridge.ports.Connector` under that group; nothing here names a concrete connector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from bridge.errors import ConfigError
from bridge.ports import Connector, Sink, Source
from bridge.settings import ConnectorSettings, Settings, describe_validation_error, override_origin

GROUP = "lmsbridge.connectors"


@cache
def connectors() -> dict[str, Connector]:
    found: dict[str, Connector] = {}
    for ep in entry_points(group=GROUP):
        connector = ep.load()
        if not isinstance(connector, Connector):
            raise ConfigError(f"entry point {ep.name!r} in {GROUP} is not a Connector")
        found[ep.name] = connector
    return found


@dataclass(frozen=True)
class Configured:
    """A configured site or feed with its connector and validated options."""

    name: str
    section: str
    connector: Connector
    options: BaseModel


def _configured(settings: Settings, section: str, entry_name: str, entry: ConnectorSettings) -> Configured:
    where = f"{section}.{entry_name}"
    available = connectors()
    connector = available.get(entry.type)
    if connector is None:
        known = ", ".join(sorted(available)) or "none installed"
        raise ConfigError(
            f"{settings.config_path}: {where}.type: unknown connector {entry.type!r} (known: {known})"
        )
    expected = {"sites": "lms", "feeds": "hris", "channels": "email"}[section]
    if connector.kind != expected and not (section == "feeds" and connector.kind == "lms"):
        raise ConfigError(
            f"{settings.config_path}: {where}.type: {entry.type!r} is a {connector.kind} connector, "
            f"not allowed under [{section}]"
        )
    try:
        options = connector.options_model.model_validate(entry.options())
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(
                f"{settings.config_path}: {where}",
                exc,
                connector.options_model,
                lambda keys: override_origin([section, entry_name, *keys]),
            )
        ) from None
    return Configured(entry_name, section, connector, options)


def configured(settings: Settings) -> list[Configured]:
    """Every enabled site and feed, validated. Raises ConfigError naming the key at fault."""
    result = []
    for section in ("sites", "feeds", "channels"):
        entries: dict[str, ConnectorSettings] = getattr(settings, section)
        for name, entry in entries.items():
            if entry.enabled:
                result.append(_configured(settings, section, name, entry))
    return result


Refusal = Callable[[str, str, str], str | None]


def refusal(settings: Settings) -> Refusal:
    """Why a site cannot take a channel for a kind of item, by site name (None: it can)."""
    sites = {item.name: item for item in configured(settings) if item.section == "sites"}

    def refuses(site: str, channel: str, item_kind: str) -> str | None:
        item = sites.get(site)
        if item is None or item.connector.refuses is None:
            return None
        return item.connector.refuses(item.options, channel, item_kind)

    return refuses


def sources(settings: Settings) -> list[Source]:
    out: list[Source] = []
    for item in configured(settings):
        if item.connector.build_source is not None:
            out.append(item.connector.build_source(item.name, item.options, settings))
    return out


def sinks(settings: Settings) -> dict[str, Sink]:
    out: dict[str, Sink] = {}
    for item in configured(settings):
        if item.section in ("sites", "channels") and item.connector.build_sink is not None:
            out[item.name] = item.connector.build_sink(item.name, item.options, settings)
    return out


def options_of(settings: Settings, name: str) -> Any:
    for item in configured(settings):
        if item.name == name:
            return item.options
    raise ConfigError(f"no site or feed named {name!r} is configured")
