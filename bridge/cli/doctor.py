"""``lmsbridge doctor``: check every configured site and feed against what the mappings need."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bridge import registry
from bridge.cli.common import app, console, state
from bridge.cli.mappings import load_mappings
from bridge.mapping.loader import MappingSet
from bridge.mapping.refs import uses_competencies


def needs_of(site: str, mapping_set: MappingSet) -> list[str]:
    """What the enabled mappings ask of one site, in connector-neutral words."""
    needs = {"read"}
    for mapping in mapping_set.enabled:
        for rec in mapping.recommend:
            if rec.site == site:
                needs.update(c for c in rec.channels if c != "email")
                if rec.kind in ("program", "certification"):
                    needs.add("programs")
                    if "enrol" in rec.channels:
                        needs.add("assign")
    if uses_competencies(mapping_set.enabled, site):
        needs.add("competencies")
    return sorted(needs)


@app.command()
def doctor(
    ctx: typer.Context,
    mappings: Annotated[Path | None, typer.Option("--mappings", help="Mappings directory.")] = None,
) -> None:
    """Connect to each site and list what works and what is missing, with the steps to fix it. Exit 1 if something needed is missing."""
    settings = state(ctx).settings
    mapping_set = load_mappings(settings, mappings)
    failed = False
    for item in registry.configured(settings):
        console.print(f"\n[bold]{item.section[:-1]} {item.name}[/] ({item.connector.name})")
        if item.connector.doctor is None:
            console.print("  (no checks for this connector)")
            continue
        for check in item.connector.doctor(
            item.name, item.options, settings, needs_of(item.name, mapping_set)
        ):
            mark = (
                "[green]ok[/]     "
                if check.ok
                else ("[red]MISSING[/]" if check.required else "[yellow]note[/]   ")
            )
            console.print(
                f"  {mark} {check.name}" + (f" - {check.detail}" if check.detail else ""), highlight=False
            )
            if not check.ok and check.fix:
                console.print(f"           fix: {check.fix}", highlight=False, markup=False)
            failed |= check.required and not check.ok
    if failed:
        raise typer.Exit(1)
