"""What each Totara route costs the site: requests, complexity points, replica queries.

A simulated Totara site with N learners (default 10,000). The real pull path (HR feed, then the
Totara source, into a SQLite store) runs once per configuration — the external API plus the
read-only replica, and the legacy web services alone — then 1% of the learners are certified
and the site is polled again.

Lower bound: no Totara API pushes or lists other learners' completions, so the cheapest steady
poll reads them from the replica; one query per stream that changed is the floor (3 streams:
course, program and certification completions), and zero requests to the web server.

Legacy-only sites read course completions per learner (``core_enrol_get_users_courses`` by
``userid``, the one parameter Totara takes, then the completion status of each enrolled course
not yet complete), so that route grows with learners times open enrolments.

    python -m bench.totara_calls [--learners 10000] [--version 17.3|18|19]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.common import Run
from bridge import clock, log
from bridge.cycle import pull_source
from bridge.mapping.loader import load_dir
from bridge.registry import configured
from bridge.settings import Settings
from bridge.store.db import make_engine, upgrade
from connectors.simulation.export_hr import export
from connectors.simulation.org import generate
from connectors.totara.replica import ReplicaReader
from connectors.totara.simulator import start_in_thread
from connectors.totara.source import TotaraSource

ROOT = Path(__file__).parents[1]
CLIENT_ID, SECRET, TOKEN = "bench", "bench-secret-0123456789", "bench-token-0123456789"
NOW = datetime(2026, 11, 3, 10, tzinfo=UTC)


def settings(root: Path, url: str, route: str) -> Settings:
    site: dict[str, Any] = {"type": "totara", "url": url, "token": TOKEN}
    if route == "api+replica":
        site |= {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "replica_url": f"sqlite:///{root / 'replica.db'}",
        }
    return Settings(
        store={"url": f"sqlite:///{root / 'state.db'}"},
        mappings={"dir": ROOT / "examples" / "mixed" / "mappings"},
        sites={"totara": site},
        feeds={"hr": {"type": "csv", "people": str(root / "hr" / "people.csv")}},
    )


def counted(handle: Any) -> dict[str, int]:
    state = handle.simulator.state
    graphql = handle.simulator.ledger
    return {
        "legacy_calls": sum(state.calls.values()),
        "graphql_requests": sum(graphql.operations.values()),
        "graphql_points": graphql.total_points,
        "token_requests": graphql.tokens_issued,
    }


def route_run(route: str, learners: int, run: Run, release: str = "19") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        handle = start_in_thread(
            CLIENT_ID, SECRET, token=TOKEN, people=learners, replica=root / "replica.db", release=release
        )
        try:
            org = generate(1, people=learners)
            export(org, root / "hr")
            s = settings(root, handle.url, route)
            engine = make_engine(s.store_url())
            upgrade(engine)
            mapping_set = load_dir(ROOT / "examples" / "mixed" / "mappings")
            sources = {
                i.name: i.connector.build_source(i.name, i.options, s)
                for i in configured(s)
                if i.connector.build_source
            }  # type: ignore[misc]
            totara = sources["totara"]
            assert isinstance(totara, TotaraSource)
            queries = [0]
            if totara.replica is not None:
                event.listen(
                    totara.replica.engine,
                    "before_cursor_execute",
                    lambda *_a: queries.__setitem__(0, queries[0] + 1),
                )
            clock.set_now(NOW)
            pull_source(engine, s, mapping_set, sources["hr"])
            before = counted(handle)
            with run.stage(f"{route}: initial sync") as stage:
                pull_source(engine, s, mapping_set, totara)
                initial = {k: v - before[k] for k, v in counted(handle).items()} | {
                    "replica_queries": queries[0]
                }
                stage.figures.update(initial)
            warehouse = [p for p in org.people if p.department == "Warehouse Operations"]
            when = int((NOW + timedelta(minutes=5)).timestamp())
            for person in random.Random(2).sample(warehouse, max(1, learners // 100)):
                handle.simulator.learning.certify(person.user_id, 1, when)
            handle.simulator.sync_replica()
            queries[0] = 0
            before = counted(handle)
            clock.set_now(NOW + timedelta(minutes=30))
            with run.stage(f"{route}: steady-state poll (1% certified)") as stage:
                pull_source(engine, s, mapping_set, totara)
                steady = {k: v - before[k] for k, v in counted(handle).items()} | {
                    "replica_queries": queries[0]
                }
                stage.figures.update(steady)
            engine.dispose()
            if isinstance(totara.replica, ReplicaReader):
                totara.replica.engine.dispose()
            return {"initial": initial, "steady": steady}
        finally:
            handle.stop()
            clock.set_now(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--version", default="19", help="Totara release the simulator behaves as")
    args = parser.parse_args()
    log.configure("warning")
    suffix = "" if args.version == "19" else f"-totara-{args.version}"
    run = Run(f"totara-calls-{args.learners}{suffix}")
    print(f"Totara {args.version} routes: {args.learners} learners")
    results = {
        route: route_run(route, args.learners, run, args.version) for route in ("api+replica", "legacy")
    }
    print("\nroute         stage     legacy calls  GraphQL requests  GraphQL points  replica queries")
    for route, r in results.items():
        for stage in ("initial", "steady"):
            f = r[stage]
            print(
                f"{route:<13} {stage:<9} {f['legacy_calls']:>12} {f['graphql_requests']:>17} {f['graphql_points']:>15} {f['replica_queries']:>16}"
            )
    run.notes.update(results=results)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
