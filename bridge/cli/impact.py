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
from bridge.impact import COHORT_MEANINGS, COHORTS, MappingImpact, measure
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


def _interval(estimate: Estimate | None) -> str:
    return "" if estimate is None else f"[{estimate.low:+.2f}, {estimate.high:+.2f}]"


def as_json(result: MappingImpact) -> dict[str, Any]:
    """The JSON form: every field of the report, the reach with its rates, and what cohorts mean."""
    data = dataclasses.asdict(result)
    data["reach"]["completion_rate"] = result.reach.completion_rate
    data["reach"]["contacted_completion_rate"] = result.reach.contacted_completion_rate
    data["reach"]["holdout_completion_rate"] = result.reach.holdout_completion_rate
    data["cohort_meanings"] = dict(COHORT_MEANINGS)
    data["comparisons"] = {
        "treated_vs_holdout": "intention to treat: everyone recommended (contacted or not) vs the holdout",
        "contacted_vs_holdout": "secondary, delivered only: contacted people vs the holdout",
        "completers_vs_non": "contacted people who completed vs contacted people who did not",
    }
    return data


def _csv_row(result: MappingImpact) -> tuple[Any, ...]:
    estimate = result.headline_estimate
    survival = result.time_to_competency
    effort = result.effort
    reach = result.reach
    delivered = result.contacted_vs_holdout
    return (
        result.mapping_id,
        result.metric,
        result.direction,
        reach.recommended,
        reach.contacted,
        reach.not_contacted,
        reach.holdout,
        *(result.cohorts[name].n for name in COHORTS),
        result.headline,
        estimate.effect if estimate else None,
        estimate.low if estimate else None,
        estimate.high if estimate else None,
        result.mde,
        result.verdict,
        delivered.effect if delivered else None,
        delivered.low if delivered else None,
        delivered.high if delivered else None,
        effort.recommendations,
        effort.completions,
        effort.completion_rate,
        effort.median_days_to_complete,
        survival.median if survival else None,
        effort.messages_sent,
        effort.contacted_completions,
        effort.messages_per_completion,
    )


@app.command()
def impact(
    ctx: typer.Context,
    mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
) -> None:
    """Each measured mapping's reach (contacted = a message was delivered), KPI change by cohort,
    effect (recommended vs holdout, intention to treat) and verdict."""
    st = state(ctx)
    settings = st.settings
    results = measure(st.engine(), load_mappings(settings), settings, clock.now(), mapping_id=mapping)
    if fmt is Format.json:
        sys.stdout.write(json.dumps([as_json(r) for r in results], indent=2) + "\n")
        return
    if fmt is Format.csv:
        emit(
            "Impact",
            [
                "mapping",
                "metric",
                "direction",
                "recommended",
                "contacted",
                "not_contacted",
                "holdout",
                *(f"n_{name}" for name in COHORTS),
                "headline",
                "effect",
                "low",
                "high",
                "mde",
                "verdict",
                "contacted_vs_holdout_effect",
                "contacted_vs_holdout_low",
                "contacted_vs_holdout_high",
                "recommendations",
                "completions",
                "completion_rate",
                "median_days_to_complete",
                "km_median_days",
                "messages_sent",
                "contacted_completions",
                "messages_per_completion",
            ],
            [_csv_row(r) for r in results],
            fmt,
        )
        return
    table = Table(
        title="Impact (positive = the KPI improved; 95% intervals)", title_justify="left", expand=False
    )
    columns = (
        "Mapping",
        "KPI",
        "Recommended",
        "Contacted",
        "Not contacted",
        "Holdout",
        "KPI people: done / not / not contacted / holdout",
        "Compared",
        "Effect [95% CI]",
        "Delivered only",
        "MDE",
        "Verdict",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    table.add_column("Completion", overflow="fold", justify="right")
    table.add_column("Msgs / completion", overflow="fold", justify="right")
    for r in results:
        table.add_row(
            r.mapping_id,
            f"{r.metric} {'↑' if r.direction == 'higher' else '↓'}",
            str(r.reach.recommended),
            str(r.reach.contacted),
            str(r.reach.not_contacted),
            str(r.reach.holdout),
            " / ".join(str(r.cohorts[name].n) for name in COHORTS),
            "recommended vs holdout (ITT)"
            if r.headline == "treated_vs_holdout"
            else "done vs not (contacted)",
            _effect(r),
            _interval(r.contacted_vs_holdout),
            _number(r.mde),
            r.verdict,
            _percent(r.effort.completion_rate),
            _number(r.effort.messages_per_completion, 1),
        )
    console.print(table)
    console.print(
        "Contacted: a message was delivered (a recommendation or reminder actually sent). Not contacted: "
        "recommended, but nothing reached them. Recommended vs holdout is intention to treat (everyone "
        "recommended, contacted or not); Delivered only is contacted vs holdout, a secondary figure. "
        "Msgs / completion: messages sent per completion by a contacted person.",
        highlight=False,
        markup=False,
    )
    for r in results:
        console.print(f"\n[bold]{r.mapping_id}[/]: {r.title}", highlight=False)
        for note in r.notes:
            console.print(f"  - {note}", highlight=False, markup=False)
    if not results:
        console.print("No mapping has a measure section, so there is nothing to measure.")
