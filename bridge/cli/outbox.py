"""Visibility and control of what is sent: why, outbox, preview, opt-outs, pause/resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import and_, delete, select, update

from bridge import clock
from bridge import preview as preview_of
from bridge.cli.common import app, console, state
from bridge.cli.mappings import load_mappings
from bridge.cli.output import Format, emit
from bridge.errors import BridgeError
from bridge.facts import iter_facts, person_id_of
from bridge.history import person_history, recommendation_state, recommendation_why
from bridge.mapping.context import build_context
from bridge.mapping.model import MessageKind
from bridge.operational_state import set_paused
from bridge.store import schema as t
from bridge.store.ingest import bump_version, upsert_statement

STATES = ("waiting", "pending", "sending", "sent", "dead", "suppressed", "cancelled")
RETRYABLE = ("dead", "cancelled", "suppressed")


@app.command()
def why(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="HR id or employee number.")],
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
) -> None:
    """Every recommendation, action and follow-up for one person, with its state and the reason."""
    with state(ctx).engine().connect() as conn:
        history = person_history(conn, person)
    emit(
        "Recommendations",
        ["Mapping", "Episode", "State", "Opened", "Closed", "Why"],
        [
            (
                rec.mapping_id,
                rec.episode,
                recommendation_state(rec),
                f"{rec.opened_at:%Y-%m-%d %H:%M}",
                f"{rec.closed_at:%Y-%m-%d %H:%M}" if rec.closed_at else "",
                recommendation_why(rec),
            )
            for rec in history.recommendations
        ],
        fmt,
    )
    emit(
        "Actions",
        ["ID", "Purpose", "Kind", "Site", "State", "Due / sent", "Attempts", "Reason"],
        [
            (
                act.id,
                act.purpose,
                act.kind,
                act.site,
                act.state,
                f"{(act.sent_at or act.due_at):%Y-%m-%d %H:%M} UTC",
                act.attempts,
                act.last_error or "",
            )
            for act in history.actions
        ],
        fmt,
    )


outbox_app = typer.Typer(help="Inspect and manage the outbox.", invoke_without_command=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.callback()
def outbox_list(
    ctx: typer.Context,
    state_: Annotated[
        str | None, typer.Option("--state", help=f"Only this state: {', '.join(STATES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most rows to show.")] = 50,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
) -> None:
    """The queue, newest first (or one state of it)."""
    if ctx.invoked_subcommand is not None:
        return
    if state_ is not None and state_ not in STATES:
        raise BridgeError(f"--state must be one of {', '.join(STATES)}")
    engine = state(ctx).engine()
    a = t.actions
    query = select(a).order_by(a.c.id.desc()).limit(limit)
    if state_ is not None:
        query = query.where(a.c.state == state_)
    with engine.connect() as conn:
        actions = list(conn.execute(query))
    emit(
        "Outbox",
        ["ID", "Person", "Mapping", "Purpose", "Kind", "Site", "State", "Due", "Attempts", "Reason"],
        [
            (
                x.id,
                x.person_id,
                x.mapping_id,
                x.purpose,
                x.kind,
                x.site,
                x.state,
                f"{x.due_at:%Y-%m-%d %H:%M}",
                x.attempts,
                x.last_error or "",
            )
            for x in actions
        ],
        fmt,
    )


@outbox_app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    action_ids: Annotated[list[int], typer.Argument(help="Action ids (from `lmsbridge outbox`).")],
) -> None:
    """Queue dead, cancelled or suppressed actions again after fixing the cause."""
    engine = state(ctx).engine()
    a = t.actions
    now = clock.now()
    wanted = sorted(set(action_ids))
    with engine.begin() as conn:
        found = {r.id: r.state for r in conn.execute(select(a.c.id, a.c.state).where(a.c.id.in_(wanted)))}
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise BridgeError(f"no action with id {', '.join(missing)} (see `lmsbridge outbox`)")
        result = conn.execute(
            update(a)
            .where(and_(a.c.id.in_(wanted), a.c.state.in_(RETRYABLE)))
            .values(
                state="pending",
                attempts=0,
                due_at=now,
                last_error="retried by an administrator",
                updated_at=now,
            )
        )
    console.print(f"{result.rowcount} action(s) queued again; the next delivery run sends them")
    for action_id, action_state in sorted(found.items()):
        if action_state not in RETRYABLE:
            console.print(f"action {action_id} is {action_state}, not retried (only {', '.join(RETRYABLE)})")


@app.command()
def preview(
    ctx: typer.Context,
    mapping_id: Annotated[str, typer.Argument(help="Mapping id.")],
    person: Annotated[str, typer.Option("--person", help="HR id or employee number to render for.")],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="recommend, reminder, escalation, reinforcement, observe or manager_copy (default: the first four).",
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Show the HTML version too.")] = False,
    mappings: Annotated[Path | None, typer.Option("--mappings", help="Mappings directory.")] = None,
) -> None:
    """A mapping's messages for one person, from their real facts, exactly as they would be sent now.

    Where a message would not be sent to that person, one line says why.
    """
    st = state(ctx)
    settings = st.settings
    mapping = load_mappings(settings, mappings).get(mapping_id)
    if mapping is None:
        raise BridgeError(f"no mapping with id '{mapping_id}'")
    if kind is not None and kind not in preview_of.KINDS:
        raise BridgeError(f"--kind must be one of {', '.join(preview_of.KINDS)}")
    kinds: tuple[MessageKind, ...] = (kind,) if kind else preview_of.DEFAULT_KINDS
    now = clock.now()
    with st.engine().connect() as conn:
        (facts,) = iter_facts(conn, [person_id_of(conn, person)])
        context = build_context(conn, [mapping], settings, now)
        found = preview_of.preview(conn, mapping, facts, context, now, kinds)
    reasons = {item.not_sent for item in found}
    if len(found) > 1 and all(item.rendered is None for item in found) and len(reasons) == 1:
        console.print(f"nothing would be sent: {reasons.pop()}", highlight=False)
        return
    for item in found:
        if item.rendered is None:
            console.print(f"[bold]{item.kind}:[/] not sent: {item.not_sent}", highlight=False)
            continue
        note = f", {item.note}" if item.note else ""
        console.print(f"[bold]{item.kind}[/] (to {item.recipient}{note})", highlight=False)
        console.print(f"[bold]Subject:[/] {item.rendered.subject}", highlight=False)
        console.print(item.rendered.text, highlight=False, markup=False)
        if html:
            console.print("[dim]HTML:[/]")
            console.print(item.rendered.html, highlight=False, markup=False)
        console.print()


optout_app = typer.Typer(
    help="People who must not be contacted (by every mapping, or one).", no_args_is_help=True
)
app.add_typer(optout_app, name="optout")


@optout_app.command("add")
def optout_add(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="HR id or employee number.")],
    mapping: Annotated[str, typer.Option("--mapping", help="Only this mapping (default: all).")] = "*",
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    engine = state(ctx).engine()
    with engine.begin() as conn:
        person_id = person_id_of(conn, person)
        stmt = upsert_statement(
            conn, t.opt_outs, ["person_id", "mapping_id"], ["person_id", "mapping_id", "reason"]
        )
        conn.execute(
            stmt, {"person_id": person_id, "mapping_id": mapping, "reason": reason, "created_at": clock.now()}
        )
        bump_version(conn, "opt_outs", clock.now())
    console.print(f"{person_id} opted out of {'every mapping' if mapping == '*' else mapping}")


@optout_app.command("remove")
def optout_remove(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="HR id or employee number.")],
    mapping: Annotated[str, typer.Option("--mapping")] = "*",
) -> None:
    engine = state(ctx).engine()
    o = t.opt_outs
    with engine.begin() as conn:
        person_id = person_id_of(conn, person)
        conn.execute(delete(o).where(and_(o.c.person_id == person_id, o.c.mapping_id == mapping)))
        bump_version(conn, "opt_outs", clock.now())
    console.print(f"{person_id} may be contacted again by {'every mapping' if mapping == '*' else mapping}")


@optout_app.command("list")
def optout_list(ctx: typer.Context) -> None:
    engine = state(ctx).engine()
    with engine.connect() as conn:
        found = list(conn.execute(select(t.opt_outs).order_by(t.opt_outs.c.person_id)))
    emit(
        "Opt-outs",
        ["Person", "Mapping", "Reason", "Since"],
        [(o.person_id, o.mapping_id, o.reason, f"{o.created_at:%Y-%m-%d}") for o in found],
    )


@app.command()
def pause(ctx: typer.Context) -> None:
    """Kill switch: stop all delivery at once (every replica) until `lmsbridge resume`."""
    with state(ctx).engine().begin() as conn:
        set_paused(conn, True, clock.now())
    console.print("delivery paused: nothing will be sent until `lmsbridge resume`")


@app.command()
def resume(ctx: typer.Context) -> None:
    """Lift the kill switch."""
    with state(ctx).engine().begin() as conn:
        set_paused(conn, False, clock.now())
    console.print("delivery resumed")
