"""``lmsbridge run`` (the service) and ``lmsbridge status`` (its state, for a terminal)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from bridge import health
from bridge.cli.common import app, console, state
from bridge.cli.mappings import load_mappings
from bridge.cli.output import emit
from bridge.daemon import Daemon
from bridge.operational_state import operational_state
from bridge.outbox import counts_by_state
from bridge.store import schema as t


@app.command()
def run(
    ctx: typer.Context,
    mappings: Annotated[Path | None, typer.Option("--mappings", help="Mappings directory.")] = None,
) -> None:
    """Run lmsbridge as a service: scheduled pulls, decisions and deliveries, and the ops endpoint."""
    st = state(ctx)
    settings = st.settings
    if mappings is not None:
        settings.mappings.dir = mappings
    daemon = Daemon(settings, st.engine(), load_mappings(settings))
    raise typer.Exit(daemon.run())


def status_data(ctx: typer.Context) -> dict[str, Any]:
    st = state(ctx)
    settings = st.settings
    engine = st.engine()
    states = {h.name: h for h in health.all_health(engine)}
    with engine.connect() as conn:
        cursors = list(conn.execute(select(t.cursors).order_by(t.cursors.c.source, t.cursors.c.stream)))
        jobs = list(conn.execute(select(t.job_runs).order_by(t.job_runs.c.job)))
        queue = counts_by_state(conn)
        operations = operational_state(conn, settings.delivery)
    sources = []
    for name in [*settings.feeds, *settings.sites]:
        h = states.get(name)
        sources.append(
            {
                "source": name,
                "last_success": h.last_success_at if h else None,
                "failures": h.consecutive_failures if h else 0,
                "last_error": h.last_error if h and h.consecutive_failures else None,
                "resting_until": h.open_until() if h else None,
                "cursors": {
                    c.stream: {"value": c.value, "updated": c.updated_at} for c in cursors if c.source == name
                },
            }
        )
    return {
        **operations.as_dict(),
        "sources": sources,
        "queue": queue,
        "jobs": [
            {
                "job": j.job,
                "last_started": j.last_started_at,
                "last_status": j.last_status,
                "next_run": j.next_run_at,
                "worker": j.worker,
            }
            for j in jobs
        ],
    }


def state_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Delivery, mappings and deferred backlog in words, one row each (and one per problem)."""
    delivery, mappings, deferred = data["delivery"], data["mappings"], data["deferred"]
    if delivery["paused"]:
        since = f" since {delivery['paused_since']:%Y-%m-%d %H:%M} UTC" if delivery["paused_since"] else ""
        how = (
            "`lmsbridge resume`"
            if delivery["paused_by"] == "lmsbridge pause"
            else "setting delivery.paused = false"
        )
        rows = [("Delivery", f"PAUSED by {delivery['paused_by']}{since}: nothing is sent until {how}")]
    else:
        rows = [("Delivery", "running")]
    if mappings["rejected"]:
        rows.append(
            (
                "Mappings",
                f"REJECTED at {mappings['rejected_at']:%Y-%m-%d %H:%M} UTC; the service keeps the last good set",
            )
        )
        rows.extend(("", problem) for problem in mappings["problems"])
    else:
        rows.append(("Mappings", "the service runs the set it last read"))
    if deferred["count"]:
        reasons = ", ".join(f"{n} {reason}" for reason, n in deferred["by_reason"].items())
        oldest = f"{deferred['oldest_queued_at']:%Y-%m-%d %H:%M} UTC"
        rows.append(("Deferred", f"{deferred['count']} action(s), oldest queued {oldest} ({reasons})"))
    else:
        rows.append(("Deferred", "none"))
    return rows


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delivery paused or not, rejected mappings, the deferred backlog; each source's last pull,
    cursor and errors; the queue by state; each job's next run."""
    data = status_data(ctx)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    emit("State", ["", ""], state_rows(data))
    emit(
        "Sources",
        ["Source", "Last success", "Failures", "Last error", "Cursors"],
        [
            (
                s["source"],
                f"{s['last_success']:%Y-%m-%d %H:%M:%S}" if s["last_success"] else "never",
                s["failures"],
                s["last_error"] or "",
                ", ".join(f"{k}={(v['value'] or '')[:24]}" for k, v in s["cursors"].items()),
            )
            for s in data["sources"]
        ],
    )
    emit("Outbox", ["State", "Actions"], sorted(data["queue"].items()))
    emit(
        "Jobs",
        ["Job", "Last started", "Status", "Next run", "Worker"],
        [
            (
                j["job"],
                f"{j['last_started']:%Y-%m-%d %H:%M:%S}" if j["last_started"] else "",
                j["last_status"] or "",
                f"{j['next_run']:%Y-%m-%d %H:%M:%S}" if j["next_run"] else "",
                j["worker"],
            )
            for j in data["jobs"]
        ],
    )
    if not data["jobs"]:
        console.print("no daemon has run yet (`lmsbridge run`)")
