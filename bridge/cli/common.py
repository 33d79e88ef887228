"""What every command shares: the Typer app, the consoles, and lazily loaded settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from bridge import __version__, log, private_files, registry
from bridge.errors import BridgeError
from bridge.settings import Settings, load_settings
from bridge.store.db import make_engine, require_current

# Tracebacks with local variables could print a token: plain exceptions only.
app = typer.Typer(
    help="lmsbridge: connect learning to performance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
console_err = Console(stderr=True, soft_wrap=True)


@dataclass
class CliState:
    config_path: Path | None = None
    log_level: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _connectors_checked: bool = field(default=False, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The configuration, with every site and feed validated before anything runs."""
        settings = self.file_settings
        if not self._connectors_checked:
            registry.configured(settings)
            self._connectors_checked = True
        return settings

    @property
    def file_settings(self) -> Settings:
        """The configuration without validating the sites' and feeds' own options, for commands
        that read files and the store but contact no site (`validate` needs no token)."""
        if self._settings is None:
            settings = load_settings(self.config_path)
            log.register_secrets(settings.secrets())
            log.configure(self.log_level or settings.log.level, settings.log.format)
            private_files.warn_about_secrets(os.environ.get("LMSBRIDGE_SECRETS_DIR"))
            self._settings = settings
        return self._settings

    def engine(self, *, migrated: bool = True) -> Engine:
        if self._engine is None:
            settings = self.file_settings
            self._engine = make_engine(settings.store_url(), echo=settings.store.echo)
        if migrated:
            require_current(self._engine)
        return self._engine

    def current_engine(self) -> Engine | None:
        """The state database if it is migrated to the current revision, otherwise None: for
        commands that report on the store when there is one and work without it."""
        try:
            return self.engine()
        except BridgeError:
            return None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def _version(value: bool) -> None:
    if value:
        console.print(f"lmsbridge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="LMSBRIDGE_CONFIG",
            help="Configuration file (default ./lmsbridge.toml).",
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    ctx.obj = CliState(config_path=config, log_level=log_level)
