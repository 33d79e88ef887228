"""``lmsbridge impact``: did each mapping's learning move its KPI, and what did it take?"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from bridge import clock
from bridge.cli.common import app, console, state
from bridge.cli.mappings import load_mappings
from bridge.cli.output import Format, emit
from bridge.impact import COHORTS, MappingImpact, measure
from bridge.impact_stats import Estimate


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _effect(result: MappingImpact) -> str:
    """The headline effect; its point estimate only when the interval excludes 0 (else just the interval)."""
    estimate: Estimate | None = result.headline_estimate
    if estimate is None:
        return ""
    interval = f"[{estimate.low:+.2f}, {estimate.high:+.2f}]"
    if result.verdict in ("works", "harmful"):
        return f"{estimate.effect:+.2f} {interval}"
    return interval


def _csv_row(result: MappingImpact) -> tuple[Any, ...]:
    estimate = result.headline_estimate
    survival = result.time_to_competency
    effort = result.effort
    return (
        result.mapping_id,
        result.metric,
        result.direction,
        *(result.cohorts[name].n for name in COHORTS),
        result.headline,
        estimate.effect if estimate else None,
        estimate.low if estimate else None,
        estimate.high if estimate else None,
        result.mde,
        result.verdict,
        effort.recommendations,
        effort.completions,
        effort.completion_rate,
        effort.median_days_to_complete,
        survival.median if survival else None,
        effort.messages_sent,
        effort.messages_per_completion,
    )


@app.command()
def impact(
    ctx: typer.Context,
    mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
) -> None:
    """Each measured mapping's KPI change: completers, non-completers and holdout, effect and verdict."""
    st = state(ctx)
    settings = st.settings
    results = measure(st.engine(), load_mappings(settings), settings, clock.now(), mapping_id=mapping)
    if fmt is Format.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in results], indent=2) + "\n")
        return
    if fmt is Format.csv:
        emit(
            "Impact",
            [
                "mapping",
                "metric",
                "direction",
                *(f"n_{name}" for name in COHORTS),
                "headline",
                "effect",
                "low",
                "high",
                "mde",
                "verdict",
                "recommendations",
                "completions",
                "completion_rate",
                "median_days_to_complete",
                "km_median_days",
                "messages_sent",
                "messages_per_completion",
            ],
            [_csv_row(r) for r in results],
            fmt,
        )
        return
    table = Table(
        title="Impact (positive = the KPI improved; 95% intervals)", title_justify="left", expand=False
    )
    for column in ("Mapping", "KPI", "Done / not / holdout", "Compared", "Effect [95% CI]", "MDE", "Verdict"):
        table.add_column(column, overflow="fold")
    table.add_column("Completion", overflow="fold", justify="right")
    for r in results:
        table.add_row(
            r.mapping_id,
            f"{r.metric} {'↑' if r.direction == 'higher' else '↓'}",
            " / ".join(str(r.cohorts[name].n) for name in COHORTS),
            "contacted vs holdout" if r.headline == "treated_vs_holdout" else "done vs not",
            _effect(r),
            _number(r.mde),
            r.verdict,
            _percent(r.effort.completion_rate),
        )
    console.print(table)
    for r in results:
        console.print(f"\n[bold]{r.mapping_id}[/]: {r.title}", highlight=False)
        for note in r.notes:
            console.print(f"  - {note}", highlight=False, markup=False)
    if not results:
        console.print("No mapping has a measure section, so there is nothing to measure.")
