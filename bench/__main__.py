"""`make bench`: every benchmark, one results file, one readable table.

Each benchmark runs in its own process (so peak RSS is its own) and saves its JSON under
bench/results/; this collects them into bench/results/bench.json, prints the table, and writes
it into bench/README.md between the results markers, with the machine and the date.

    python -m bench [--quick]     # --quick: 2,000 learners instead of 5k/20k/50k (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, ratio

README = Path(__file__).parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def run(module: str, *args: str) -> None:
    print(f"\n$ python -m bench.{module} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", f"bench.{module}", *args], check=True)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def stage(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(s for s in result["stages"] if s["name"].startswith(prefix))


def organisation_rows(sizes: list[int], stores: list[tuple[str, int]]) -> list[str]:
    rows = [
        "| store | learners | initial sync | evaluation | delivery | steady-state cycle | poll calls (lower bound 1, naive) | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, learners in [("sqlite", n) for n in sizes] + stores:
        r = load(f"organisation-{store}-{learners}")
        notes = r["notes"]
        sync, evaluation = stage(r, "initial sync"), stage(r, "evaluation")
        delivery, steady = stage(r, "delivery"), stage(r, "steady-state")
        sent = delivery["figures"]["outcomes"].get("sent", 0)
        rows.append(
            f"| {store} | {learners:,} | {sync['wall_s']:.1f} s ({sync['figures']['rows_added']:,} rows, "
            f"{sum(sync['figures']['http_calls'].values()):,} calls) | {evaluation['wall_s']:.1f} s "
            f"({evaluation['figures']['decisions']:,} decisions) | {delivery['wall_s']:.1f} s ({sent:,} sent, "
            f"{sum(delivery['figures']['http_calls'].values()):,} calls) | {steady['wall_s']:.1f} s | "
            f"{notes['steady_poll_calls']} ({notes['lower_bound_poll_calls']}, {notes['naive_calls_per_poll']:,}) | "
            f"{max(s['peak_rss_mb'] for s in r['stages']):.0f} MB |"
        )
    return rows


def seconds(value: float) -> str:
    """Two figures under 10 s (a steady cycle's tenths are what changed), else one decimal."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def stage_rows(sizes: list[int], stores: list[tuple[str, int]], when: str, box: str) -> list[str]:
    """Per organisation stage: lmsbridge's CPU, the simulator's, wall time, floor and ratio."""
    rows = [
        "| machine | date | store | learners | stage | lmsbridge CPU | simulator CPU | wall | floor | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for store, learners in [("sqlite", n) for n in sizes] + stores:
        for s in load(f"organisation-{store}-{learners}")["stages"]:
            floor = f"{s['floor_s']:.1f} s ({s['floor']})" if s.get("floor_s") else ""
            rows.append(
                f"| {box} | {when} | {store} | {learners:,} | {s['name']} | {seconds(s['cpu_s'])} | "
                f"{seconds(s.get('simulator_cpu_s', 0))} | {seconds(s['wall_s'])} | {floor} | "
                f"{ratio(s['cpu_s'], s.get('floor_s'))} |"
            )
    return rows


def growth_rows(sizes: list[int]) -> list[str]:
    """The steady cycles' lmsbridge CPU by size, and its exponent in learners from the smallest
    size to the largest (1: grows with the organisation; 0: with what changed alone)."""
    if len(sizes) < 2:
        return []
    results = [load(f"organisation-sqlite-{n}") for n in sizes]
    names = [s["name"] for s in results[0]["stages"] if s["name"].startswith("steady-state")]
    rows = [
        f"| SQLite, lmsbridge CPU | {' | '.join(f'{n:,} learners' for n in sizes)} | exponent |",
        f"|---|{'---|' * len(sizes)}---|",
    ]
    for name in names:
        cpu = [stage(r, name)["cpu_s"] for r in results]
        exponent = math.log(cpu[-1] / cpu[0]) / math.log(sizes[-1] / sizes[0]) if cpu[0] > 0 else math.nan
        rows.append(f"| {name} | {' | '.join(f'{c:.2f} s' for c in cpu)} | {exponent:.2f} |")
    return rows


def feed_rows() -> list[str]:
    moodle = load("moodle-calls-10000")["notes"]
    rows = [
        "| Moodle feed (10,000 learners x 100 courses) | initial sync calls | steady-state poll calls |",
        "|---|---|---|",
    ]
    for feed, r in moodle["results"].items():
        rows.append(f"| {feed} | {sum(r['initial'].values()):,} | {sum(r['steady'].values()):,} |")
    if moodle.get("naive_calls_per_poll"):
        rows.append(
            f"| naive (status per learner per course) | {moodle['naive_calls_per_poll']:,} | {moodle['naive_calls_per_poll']:,} |"
        )
    totara = load("totara-calls-10000")["notes"]["results"]
    rows += ["", "| Totara route (10,000 learners) | initial sync | steady-state poll |", "|---|---|---|"]
    for route, r in totara.items():

        def cell(f: dict[str, int]) -> str:
            return f"{f['legacy_calls']} legacy calls, {f['graphql_requests']} API requests ({f['graphql_points']:,} points), {f['replica_queries']} replica queries"

        rows.append(f"| {route} | {cell(r['initial'])} | {cell(r['steady'])} |")
    delivery = load("delivery-sqlite-10000")
    (sent,) = delivery["stages"]
    rows += [
        "",
        "| delivery (SQLite) | messages sent | wall | messages/s | HTTP calls |",
        "|---|---|---|---|---|",
        f"| 10,000 due learner messages | {sent['figures']['sent']:,} | {sent['wall_s']:.1f} s | "
        f"{sent['figures']['messages_per_second']:,} | {sum(sent['figures']['http_calls'].values()):,} |",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table-only", action="store_true", help="Rebuild the table from saved results.")
    args = parser.parse_args()
    sizes = [2_000] if args.quick else [5_000, 20_000, 50_000]
    stores = [("postgresql", sizes[-1])]
    if not args.table_only:
        for learners in sizes:
            run("organisation", "--learners", str(learners))
        run("organisation", "--learners", str(sizes[-1]), "--store", "postgresql")
        run("moodle_calls", "--learners", "10000", *(["--skip-naive"] if args.quick else []))
        run("totara_calls", "--learners", "10000")
        run("hris_csv")
        run("delivery", "--messages", "10000")
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    box = machine()
    cpus = f"{box['cpus']} CPUs ({box['processor']})"
    table = [
        *stage_rows(sizes, stores, when, cpus),
        "",
        *organisation_rows(sizes, stores),
        "",
        *growth_rows(sizes),
        "",
        *feed_rows(),
    ]
    header = f"Measured {when} on {cpus}, {box['platform']}, Python {box['python']}."
    collected = {
        "date": when,
        "machine": box,
        "results": {
            p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.stem != "bench"
        },
    }
    (RESULTS / "bench.json").write_text(json.dumps(collected, indent=2))
    print("\n" + header + "\n\n" + "\n".join(table))
    if not args.quick:
        text = README.read_text()
        block = f"{START}\n{header}\n\n" + "\n".join(table) + f"\n{END}"
        README.write_text(
            re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
        )
        print(f"\ntable written to {README}")
    print(f"results: {RESULTS / 'bench.json'}")


if __name__ == "__main__":
    main()
