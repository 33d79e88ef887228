"""HR CSV loading: rows per second and peak memory as the measurement file grows.

Generates measurement files of 50,000, 100,000 and 200,000 rows (for 5,000 people), reads each
through the real CSV feed in a fresh process, and prints rows/s and the Python memory peak of
the read (tracemalloc). Memory should stay flat: the reader streams and batches.

    python -m bench.hris_csv
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import Run
from bridge.ports import PullContext, PullScope
from connectors.hris.csv_connector import CsvOptions, CsvSource

SIZES = (50_000, 100_000, 200_000)
PEOPLE = 5_000


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


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    run = Run("hris-csv")
    print(f"CSV measurement loading ({PEOPLE} people; streaming in batches of 5,000)")
    results = []
    for size in SIZES:
        output = subprocess.run(
            [sys.executable, "-m", "bench.hris_csv", "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(output.stdout.strip().splitlines()[-1])
        results.append(figures)
        with run.stage(f"{size:,} rows") as stage:
            stage.figures.update(figures)
    run.notes.update(results=results)
    print(f"results: {run.save()}")


if __name__ == "__main__":
    main()
