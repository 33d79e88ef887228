"""HR CSV loading: rows per second and peak memory as the measurement and people files grow.

Generates measurement files of 50,000, 100,000 and 200,000 rows (for 5,000 people), reads each
through the real CSV feed in a fresh process, and prints rows/s and the Python memory peak of
the read (tracemalloc). Memory should stay flat: the reader streams and batches.

Then people files of 200,000 and 1,000,000 rows (managers given by employee number and by HR
id), each loaded in a fresh process through the real path into a new store — ``pull_source``:
read, managers resolved, snapshot checked, stored in one transaction — and prints rows/s and the
process's peak RSS (ru_maxrss; tracemalloc would slow the load several times). A second load of
the same file (nothing changed) is timed too.

    python -m bench.hris_csv                 # both
    python -m bench.hris_csv --people-only   # people files only
    python -m bench.hris_csv --people-only --store postgresql
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Run, add_store_options, peak_rss_mb, scratch_postgres
from bridge.ports import PullContext, PullScope
from connectors.hris.csv_connector import CsvOptions, CsvSource

SIZES = (50_000, 100_000, 200_000)
PEOPLE = 5_000
PEOPLE_SIZES = (200_000, 1_000_000)


def write_files(root: Path, rows: int) -> None:
    rng = random.Random(rows)
    with (root / "people.csv").open("w") as people:
        people.write(
            "Employee ID,Employee Number,First Name,Last Name,Work Email,Manager Employee Number,Department,Job Title,Location,Time Zone,Locale,Start Date,Active\n"
        )
        for i in range(PEOPLE):
            people.write(
                f"P{i:06d},{i:06d},F{i},L{i},p{i}@example.org,,Sales,AE,London,Europe/London,en_GB,2020-01-01,yes\n"
            )
    with (root / "kpis.csv").open("w") as kpis:
        kpis.write("Employee Number,Metric,Period Start,Period End,Value\n")
        for n in range(rows):
            start = date(2020, 1, 1) + timedelta(days=30 * (n // PEOPLE))
            kpis.write(
                f"{n % PEOPLE:06d},csat,{start.isoformat()},{(start + timedelta(days=29)).isoformat()},{rng.uniform(1, 5):.2f}\n"
            )


def measure(rows: int) -> dict[str, float]:
    """Runs in its own process so each size's memory peak is its own."""
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        write_files(root, rows)
        source = CsvSource("hr", CsvOptions(people="people.csv", measurements="kpis.csv"), root)
        tracemalloc.start()
        started = time.perf_counter()
        count = 0
        for batch in source.pull(PullContext(cursors={}, scope=PullScope(), now=datetime.now(UTC))):
            if batch.stream == "measurements":
                count += len(batch.records)
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "rows": count,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(count / elapsed),
        "peak_mb": round(peak / 2**20, 1),
    }


def write_people(path: Path, rows: int) -> None:
    """``rows`` people, each managed by someone listed earlier: by employee number, every fifth by HR id."""
    with path.open("w") as people:
        people.write(
            "Employee ID,Employee Number,First Name,Last Name,Work Email,Manager Employee Number,Department,Job Title,Location,Time Zone,Locale,Start Date,Active\n"
        )
        for i in range(rows):
            boss = "" if i == 0 else (f"P{i // 8:07d}" if i % 5 == 0 else f"{i // 8:07d}")
            people.write(
                f"P{i:07d},{i:07d},First{i},Last{i},p{i}@example.org,{boss},Sales,Account Executive,London,Europe/London,en_GB,2020-01-01,yes\n"
            )


def measure_people(rows: int, url: str | None) -> dict[str, float]:
    """Load a people file of ``rows`` into a new store, then again unchanged (own process)."""
    from bridge.cycle import pull_source
    from bridge.mapping.loader import MappingSet
    from bridge.settings import Settings
    from bridge.store.db import make_engine, upgrade

    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        write_people(root / "people.csv", rows)
        engine = make_engine(url or f"sqlite:///{root / 'state.db'}")
        upgrade(engine)
        before = peak_rss_mb()
        source = CsvSource("hr", CsvOptions(people="people.csv"), root)
        started = time.perf_counter()
        report = pull_source(engine, Settings(), MappingSet(), source)
        elapsed = time.perf_counter() - started
        if report.error:
            raise SystemExit(report.error)
        peak = peak_rss_mb()
        started = time.perf_counter()
        again = pull_source(engine, Settings(), MappingSet(), source, full=True)
        second = time.perf_counter() - started
        engine.dispose()
    return {
        "rows": rows,
        "stored": report.result.written.get("Person", 0),
        "seconds": round(elapsed, 2),
        "rows_per_second": round(rows / elapsed),
        "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(before, 1),
        "unchanged_seconds": round(second, 2),
        "unchanged_changed": again.result.changed,
        "peak_rss_after_both_mb": round(peak_rss_mb(), 1),
    }


def child(*args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.hris_csv", *args], capture_output=True, text=True, check=True
    )
    figures: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hris_csv")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-people", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--people-only", action="store_true", help="measure the people files only")
    parser.add_argument("--people-sizes", default=",".join(str(n) for n in PEOPLE_SIZES))
    add_store_options(parser)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    if args.one_people is not None:
        print(json.dumps(measure_people(args.one_people, args.url)))
        return
    run = Run("hris-csv")
    results = []
    if not args.people_only:
        print(f"CSV measurement loading ({PEOPLE} people; streaming in batches of 5,000)")
        for size in SIZES:
            figures = child("--one", str(size))
            results.append(figures)
            with run.stage(f"{size:,} rows") as stage:
                stage.figures.update(figures)
    print(f"CSV people loading into a new {args.store} store (read, resolve, check, store)")
    for size in (int(n) for n in args.people_sizes.split(",")):
        with ExitStack() as stack:
            extra = []
            if args.store == "postgresql":
                extra = ["--url", stack.enter_context(scratch_postgres(args.postgres_url))]
            figures = child("--one-people", str(size), *extra)
        results.append({"store": args.store, **figures})
        with run.stage(f"{size:,} people ({args.store})") as stage:
            stage.figures.update(figures)
    run.notes.update(results=results)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
