"""``lmsbridge sync`` (one real cycle) and ``lmsbridge plan`` (the same decisions, nothing sent)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn
from sqlalchemy import Engine, func, select

from bridge import clock
from bridge.cli.common import app, console, state
from bridge.cli.mappings import load_mappings
from bridge.cli.output import Format, emit
from bridge.cycle import CycleReport, pull, run_cycle
from bridge.decide import Decision
from bridge.errors import MappingError
from bridge.facts import load_people
from bridge.locks import single_process
from bridge.mapping.checks import reference_errors
from bridge.plan import plan as make_plan
from bridge.store import schema as t
from bridge.store.schema import UtcDateTime


def _targets(decision: Decision) -> str:
    return ", ".join(tg.name for tg in decision.targets)


def _more(count: int, what: str, where: str) -> None:
    console.print(f"… and {count:,} more {what}(s), not listed here (see `{where}`)", highlight=False)


def _names(engine: Engine, person_ids: set[str]) -> dict[str, str]:
    with engine.connect() as conn:
        return {pid: p.full_name for pid, p in load_people(conn, sorted(person_ids)).items()}


def print_report(engine: Engine, report: CycleReport) -> None:
    emit(
        "Pulled",
        ["Source", "Records", "Changed", "Rejected", "Identities", "Error"],
        [
            (
                p.source,
                sum(p.result.written.values()),
                p.result.changed,
                p.result.rejected,
                p.identities or "",
                p.error or (f"skipped: {p.skipped}" if p.skipped else ""),
            )
            for p in report.pulls
        ],
    )
    decisions = report.decisions.decisions if report.decisions else []
    if decisions:
        emit(
            "Decisions",
            ["Person", "Mapping", "Decision", "Learning", "Why"],
            [
                (
                    d.person_name,
                    d.mapping_id,
                    d.outcome + (" (holdout)" if d.holdout else ""),
                    _targets(d),
                    _why(d),
                )
                for d in decisions
            ],
        )
    if report.decisions and report.decisions.decided > len(decisions):
        _more(report.decisions.decided - len(decisions), "decision", "lmsbridge plan")
    for problem in report.decisions.problems if report.decisions else []:
        console.print(f"[yellow]warning:[/] {escape(problem)}", highlight=False)
    if report.decide.skipped:
        console.print(f"[yellow]not deciding:[/] {escape(report.decide.skipped)}", highlight=False)
    delivery = report.delivery
    if delivery and delivery.delivered:
        names = _names(engine, {d["person_id"] for d in delivery.delivered if d["person_id"]})
        emit(
            "Delivered",
            ["Person", "Action", "Site", "State", "Detail"],
            [
                (
                    names.get(d["person_id"], d["person_id"]),
                    d["kind"],
                    d["site"],
                    d["state"],
                    d["error"] or "",
                )
                for d in delivery.delivered
            ],
        )
    unlisted = sum(delivery.states.values()) - len(delivery.delivered) if delivery else 0
    if unlisted > 0:
        _more(unlisted, "delivery outcome", "lmsbridge outbox")
    for error in delivery.errors if delivery else []:
        console.print(f"[red]error:[/] {escape(error)}", highlight=False)
    if delivery and delivery.paused:
        console.print(
            "[yellow]delivery is paused:[/] nothing was sent (`lmsbridge resume`, or delivery.paused = false)",
            highlight=False,
        )
    if report.refused:
        return  # the caller says why nothing was decided
    waiting = _waiting(engine)
    if waiting:
        count, first = waiting
        console.print(
            f"{count} action(s) wait for their time (sending hours in the recipient's time zone, "
            f"follow-up days or a retry); the next is due {first:%Y-%m-%d %H:%M} UTC",
            highlight=False,
        )
    unaddressed = _count(engine, "waiting")
    if unaddressed:
        console.print(
            f"{unaddressed} action(s) wait for the person's LMS account to be linked "
            "(they go out once the account appears)",
            highlight=False,
        )
    unlinked = len({d.person_id for d in decisions if d.outcome == "wait"})
    if unlinked:
        console.print(
            f"{unlinked} person(s) match a mapping but have no linked LMS account yet: nothing is "
            "recommended until their history on the site is known (`lmsbridge doctor` shows why accounts are not found)",
            highlight=False,
        )
    opened = sum(1 for d in decisions if d.outcome in ("open", "reopen"))
    closed = sum(1 for d in decisions if d.outcome == "close")
    sent = delivery.states.get("sent", 0) if delivery else 0
    rejected = sum(p.result.rejected for p in report.pulls)
    failed_sources = [p.source for p in report.pulls if p.error]
    console.print(
        f"cycle done: {opened} recommendation(s) opened, {closed} closed, {report.queued} action(s) queued, "
        f"{sent} sent, {rejected} input row(s) rejected"
        + (f", sources failing: {', '.join(failed_sources)}" if failed_sources else ""),
        highlight=False,
    )


def _waiting(engine: Engine) -> tuple[int, datetime] | None:
    a = t.actions
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.min(a.c.due_at)).where(a.c.state == "pending")).one()
    count, first = row
    if not count:
        return None
    return int(count), UtcDateTime().process_result_value(first, engine.dialect) or clock.now()


def _count(engine: Engine, state: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(t.actions.c.state == state)).scalar_one())


def _why(d: Decision) -> str:
    if d.outcome == "open":
        return "; ".join(d.facts)
    if d.outcome == "wait":  # the facts would read as "never completed", which is not known yet
        return d.reason
    return d.reason + (f" ({'; '.join(d.facts)})" if d.facts else "")


@app.command()
def sync(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run one cycle and exit (the default; `lmsbridge run` is the daemon)."),
    ] = True,
    full: Annotated[
        bool, typer.Option("--full", help="Re-read sources from scratch and re-evaluate everyone.")
    ] = False,
    source: Annotated[str | None, typer.Option("--source", help="Pull only this site or feed.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and queue, but send nothing.")] = False,
    mappings: Annotated[
        Path | None,
        typer.Option("--mappings", help="Mappings directory (default: from the configuration)."),
    ] = None,
) -> None:
    """Pull every source, decide, queue actions and deliver them: one full cycle."""
    st = state(ctx)
    settings = st.settings
    if dry_run:
        settings.delivery.dry_run = True
    mapping_set = load_mappings(settings, mappings)
    engine = st.engine()
    with (
        single_process(engine),
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as bar,
    ):
        task = bar.add_task("pulling", total=None)
        report = run_cycle(
            engine,
            settings,
            mapping_set,
            full=full,
            only=source,
            progress=lambda name: bar.update(task, description=f"pulling {name}"),
            refusals=lambda: [str(f) for f in reference_errors(mapping_set, settings, engine)],
        )
    print_report(engine, report)
    if report.refused:
        # As `validate` would: the same lines, exit 1, and nothing decided, queued or sent.
        raise MappingError([*report.refused, "nothing was decided or sent; fix these (`lmsbridge validate`)"])
    if any(p.error for p in report.pulls) or (report.delivery and report.delivery.errors):
        raise typer.Exit(2)


@app.command()
def plan(
    ctx: typer.Context,
    mapping: Annotated[
        list[str] | None, typer.Option("--mapping", help="Only this mapping (repeatable).")
    ] = None,
    person: Annotated[
        list[str] | None, typer.Option("--person", help="Only this HR id (repeatable).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Evaluate everyone, not only people whose data changed.")
    ] = False,
    no_pull: Annotated[
        bool, typer.Option("--no-pull", help="Use stored data; do not read the sources first.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    mappings: Annotated[Path | None, typer.Option("--mappings", help="Mappings directory.")] = None,
) -> None:
    """Show who would get what and why, sending nothing.

    It first reads the sources and stores what they hold (records and cursors, as `sync` does),
    so the plan is about today's data; it never decides, queues or sends. --no-pull plans from
    what is stored and changes nothing.
    """
    st = state(ctx)
    settings = st.settings
    mapping_set = load_mappings(settings, mappings)
    engine = st.engine()
    if not no_pull:
        if fmt is Format.table:
            console.print(
                "Reading the sources first (their records and cursors are stored as by sync; "
                "nothing is decided or sent; --no-pull to plan from stored data only)",
                highlight=False,
            )
        for p in pull(engine, settings, mapping_set):
            if p.error:
                console.print(f"[yellow]warning:[/] {p.source}: {escape(p.error)}", highlight=False)
    report, planned = make_plan(
        engine,
        mapping_set,
        settings,
        clock.now(),
        full=full,
        mapping_ids=mapping,
        person_ids=person,
    )
    rows: list[tuple[Any, ...]] = []
    for item in planned:
        d = item.decision
        actions = "; ".join(
            f"{a.kind.value} to {a.site}"
            + (f" ({a.state}: {a.reason})" if a.state != "pending" else f" at {a.due_at:%Y-%m-%d %H:%M} UTC")
            for a in item.actions
        )
        reminders = ", ".join(
            r.on.isoformat() + ("" if r.kind == "after the recommendation" else f" ({r.kind})")
            for r in item.reminders
        )
        rows.append(
            (d.person_id, d.person_name, d.mapping_id, d.outcome, _targets(d), _why(d), actions, reminders)
        )
    emit(
        "Plan (nothing is sent)",
        ["Person ID", "Person", "Mapping", "Decision", "Learning", "Why", "Actions", "Reminders"],
        rows,
        fmt,
    )
    if fmt is Format.table:
        for problem in report.problems:
            console.print(f"[yellow]warning:[/] {problem}")
        console.print(
            f"{report.evaluated} people evaluated ({'full' if report.full else 'changed only'}); {len(rows)} decision(s); nothing sent"
        )
