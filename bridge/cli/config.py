"""``lmsbridge config``: check the configuration, or print the reference of every setting or metric."""

from __future__ import annotations

import typer

from bridge import metrics, registry
from bridge.cli.common import app, console, state
from bridge.settings import reference_markdown

config_app = typer.Typer(help="The configuration file and environment.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(ctx: typer.Context) -> None:
    """Load the configuration and every site and feed; print one line per problem."""
    settings = state(ctx).settings
    for item in registry.configured(settings):
        console.print(
            f"ok  [{item.section}.{item.name}] {item.connector.name}", highlight=False, markup=False
        )
    console.print(f"configuration {settings.config_path or '(defaults)'} is valid", highlight=False)


@config_app.command("reference")
def config_reference() -> None:
    """Every setting with its environment variable and default, as a Markdown table."""
    typer.echo(reference_markdown())


@config_app.command("metrics")
def config_metrics() -> None:
    """Every Prometheus metric on /metrics with its type, labels and meaning, as a Markdown table."""
    typer.echo(metrics.reference_markdown())
