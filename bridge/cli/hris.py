"""``lmsbridge hris``: check an HR feed before trusting it, and see the rows it rejected."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy import Engine, select

from bridge import clock, registry
from bridge.cli.common import CliState, app, console, state
from bridge.cli.output import Format, emit
from bridge.errors import BridgeError, SourceError
from bridge.identity import Account, HrKeys, link
from bridge.ports import Batch, PullContext, PullScope
from bridge.records import Person, Rejected
from bridge.store import schema as t
from bridge.store.ingest import check_snapshot, stage_listed

hris_app = typer.Typer(help="HR feeds: check one, list rejected rows.", no_args_is_help=True)
app.add_typer(hris_app, name="hris")


@hris_app.command("check")
def check(
    ctx: typer.Context, feed: Annotated[str, typer.Argument(help="Name of a configured feed.")]
) -> None:
    """Read a feed without storing anything: counts, rejected rows with file:line, identity matches per site."""
    st = state(ctx)
    settings = st.settings
    source = next((s for s in registry.sources(settings) if s.name == feed and feed in settings.feeds), None)
    if source is None:
        raise BridgeError(
            f"no feed named '{feed}' is configured (feeds: {', '.join(settings.feeds) or 'none'})"
        )
    counts: Counter[str] = Counter()
    rejects: list[Rejected] = []
    people: list[Person] = []
    snapshot: Batch | None = None
    for batch in source.pull(PullContext(cursors={}, scope=PullScope(), now=clock.now(), full=True)):
        if batch.snapshot_of == "people":
            snapshot = batch
        for record in batch.records:
            counts[type(record).__name__] += 1
            if isinstance(record, Person):
                people.append(record)
        rejects.extend(batch.rejected)
    rows_read = sum(counts.values()) + len(rejects)
    console.print(
        f"feed {feed}: {rows_read} row(s) read; {counts['Person']} people, {counts['Measurement']} measurements, "
        f"{counts['ReviewRating']} review ratings, {counts['Goal']} goals; {len(rejects)} rejected",
        highlight=False,
    )
    if rejects:
        emit("Rejected rows", ["Where", "Reason"], [(r.location, r.reason) for r in rejects])
    engine = st.current_engine()
    if engine is None:
        console.print(
            "identity matches: the state database is not set up yet (`lmsbridge db upgrade`, then `sync`)"
        )
        return
    if snapshot is not None:
        _snapshot_verdict(engine, feed, snapshot)
    _identities(st, engine, people)


def _snapshot_verdict(engine: Engine, feed: str, snapshot: Batch) -> None:
    """What the next sync would do with this people snapshot: refuse it, or retire whom."""
    with engine.connect() as conn:
        staged = stage_listed(conn, snapshot)
        try:
            check_snapshot(conn, feed, snapshot, staged)
            leaving = sorted(conn.execute(staged.unlisted(feed)).scalars())
        except SourceError as exc:
            console.print(f"[red]sync would refuse this snapshot:[/] {escape(str(exc))}", highlight=False)
            return
        finally:
            staged.drop()
    console.print(
        f"people snapshot: {len(leaving)} active person(s) not listed would be retired"
        + (f" ({', '.join(leaving[:5])}{', ...' if len(leaving) > 5 else ''})" if leaving else ""),
        highlight=False,
    )


def _identities(st: CliState, engine: Engine, people: list[Person]) -> None:
    settings = st.settings
    keys = [HrKeys(p.person_id, p.employee_number, p.email) for p in people]
    u = t.lms_users
    rows: list[tuple[str, object, object, object, str]] = []
    for site in settings.sites:
        with engine.connect() as conn:
            query = select(u.c.user_id, u.c.idnumber, u.c.email, u.c.username).where(
                u.c.site == site, u.c.deleted.is_(False)
            )
            accounts = [Account(r.user_id, r.idnumber, r.email, r.username) for r in conn.execute(query)]
        if not accounts:
            rows.append((site, "-", "-", "-", "no users of this site are stored yet (run `lmsbridge sync`)"))
            continue
        _chosen, report = link(keys, accounts, settings.identity.match, site)
        sample = ", ".join((report.ambiguous + report.unmatched)[:5])
        rows.append((site, report.matched, len(report.unmatched), len(report.ambiguous), sample))
    emit("Identity matches", ["Site", "Matched", "Unmatched", "Ambiguous", "Examples not matched"], rows)


@hris_app.command("rejects")
def rejects(
    ctx: typer.Context,
    feed: Annotated[str | None, typer.Option("--feed", help="Only this feed.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most rows to show, newest first.")] = 100,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
) -> None:
    """Rows the HR feeds could not load, with where they were and why."""
    engine = state(ctx).engine()
    r = t.rejects
    query = select(r).order_by(r.c.seen_at.desc(), r.c.id.desc()).limit(limit)
    if feed:
        query = query.where(r.c.source == feed)
    with engine.connect() as conn:
        found = list(conn.execute(query))
    emit(
        "Rejected rows",
        ["Seen", "Feed", "Where", "Reason", "Row"],
        [(f"{x.seen_at:%Y-%m-%d %H:%M}", x.source, x.location, x.reason, x.raw[:80]) for x in found],
        fmt,
    )
