"""Commands for the administrators who write mappings: validate, schema, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from bridge import clock
from bridge.cli.common import CliState, app, console, console_err, state
from bridge.decide import assess, latest_recommendations
from bridge.facts import iter_facts, person_id_of
from bridge.mapping.checks import Finding, check_against_store, check_configuration
from bridge.mapping.context import build_context
from bridge.mapping.loader import MappingSet, load_dir
from bridge.mapping.model import json_schema
from bridge.settings import Settings
from bridge.store.db import sqlite_file_missing


def mappings_dir(settings: Settings, given: Path | None) -> Path:
    return given if given is not None else settings.resolve(settings.mappings.dir)


def load_mappings(settings: Settings, given: Path | None = None) -> MappingSet:
    return load_dir(mappings_dir(settings, given), display_root=Path.cwd())


@app.command()
def validate(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Argument(help="Mappings directory (default: from the configuration).")
    ] = None,
) -> None:
    """Check every mapping file and its references. Problems name file:line:column and field; exit 1 on errors.

    It reads the files, the configuration and the state database, and contacts no site: no
    token is needed. A reference that cannot be checked yet (nothing pulled from its site) is
    reported as not checked, never as an error.
    """
    st = state(ctx)
    settings = st.file_settings
    loaded = load_mappings(settings, directory)
    findings: list[Finding] = check_configuration(loaded, settings)
    engine = _set_up_store(st)
    if engine is None:
        console.print(
            "not checked: courses, competencies and metrics the mappings name: the state database "
            "is not set up yet (`lmsbridge db upgrade`, then `lmsbridge sync`)",
            highlight=False,
        )
    else:
        findings.extend(check_against_store(loaded, settings, engine))
    for item in loaded.items:
        flag = "" if item.mapping.enabled else " (disabled)"
        console.print(f"ok  {item.path.name}: {item.mapping.id}{flag}", highlight=False)
    for finding in findings:
        (console_err if finding.severity == "error" else console).print(
            str(finding), highlight=False, markup=False
        )
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise typer.Exit(1)
    console.print(f"{len(loaded.items)} mapping(s) valid", highlight=False)


def _set_up_store(st: CliState) -> Engine | None:
    """The state database if it exists and is migrated; checking files creates none."""
    if sqlite_file_missing(st.file_settings.store_url()):
        return None
    return st.current_engine()


@app.command()
def schema() -> None:
    """Print the JSON Schema of mapping files (shipped as mappings/schema.json for editors)."""
    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@app.command()
def explain(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="HR id (or employee number) of the person.")],
    mappings: Annotated[Path | None, typer.Option("--mappings", help="Mappings directory.")] = None,
) -> None:
    """Every mapping's verdict for one person, true or false, with the facts used."""
    st = state(ctx)
    settings = st.settings
    mapping_set = load_mappings(settings, mappings)
    engine = st.engine()
    now = clock.now()
    with engine.connect() as conn:
        context = build_context(conn, mapping_set.mappings, settings, now)
        person_id = person_id_of(conn, person)
        (facts,) = iter_facts(conn, [person_id])
        latest = latest_recommendations(conn, [person_id])
    p = facts.person
    console.print(
        f"[bold]{p.full_name}[/] ({p.person_id}, employee {p.employee_number or '-'}), "
        f"{p.job_title or 'no job title'}, {p.department or 'no department'}"
        + ("" if p.active else " [red](left the organisation)[/]")
    )
    accounts = ", ".join(
        f"{site}: user {a.user_id}{'' if a.usable else ' (suspended)'}" for site, a in facts.accounts.items()
    )
    console.print(f"LMS accounts: {accounts or 'none linked'}", highlight=False)
    for mapping in sorted(mapping_set.mappings, key=lambda m: m.id):
        a = assess(mapping, facts, context)
        verdict = "[green]MATCHES[/]" if a.matches else "[dim]does not match[/]"
        disabled = " (disabled)" if not mapping.enabled else ""
        console.print(f"\n[bold]{mapping.id}[/]{disabled}: {verdict}")
        console.print(
            f"  audience: {'yes' if a.audience.ok else 'no'} - {'; '.join(a.audience.facts)}", highlight=False
        )
        console.print(
            f"  trigger:  {'yes' if a.trigger.ok else 'no'} - {'; '.join(a.trigger.facts)}", highlight=False
        )
        if a.completed:
            console.print(
                f"  already completed {a.completed[0].name} on {a.completed[1].date().isoformat()}",
                highlight=False,
            )
        for missing in a.missing_targets:
            console.print(f"  [yellow]not found:[/] {missing}", highlight=False)
        rec = latest.get((mapping.id, p.person_id))
        if rec is not None:
            console.print(
                f"  recommendation: episode {rec.episode}, {rec.state} since {rec.opened_at:%Y-%m-%d}",
                highlight=False,
            )
