"""Shared helpers for benchmarks: stage timing, peak memory, result files.

Benchmarks print figures; they never assert on time. Each stage records wall time, CPU time
and the process's peak resident set size so far (ru_maxrss), which only grows — run a
benchmark in its own process (``python -m bench.NAME``) to see a stage's own peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / (1024 * 1024)


@dataclass
class Stage:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    benchmark: str
    stages: list[Stage] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        stage = Stage(name)
        wall, cpu = time.perf_counter(), time.process_time()
        yield stage
        stage.wall_s = round(time.perf_counter() - wall, 3)
        stage.cpu_s = round(time.process_time() - cpu, 3)
        stage.peak_rss_mb = round(peak_rss_mb(), 1)
        self.stages.append(stage)
        extras = ", ".join(f"{k}={v}" for k, v in stage.figures.items())
        print(
            f"  {name:<40} wall {stage.wall_s:>8.2f}s  cpu {stage.cpu_s:>8.2f}s  peak RSS {stage.peak_rss_mb:>7.1f} MB  {extras}",
            flush=True,
        )

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.benchmark}.json"
        document = {
            "benchmark": self.benchmark,
            "machine": machine(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "stages": [asdict(s) for s in self.stages],
            "notes": self.notes,
        }
        path.write_text(json.dumps(document, indent=2, default=str))
        return path


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--store sqlite|postgresql`` and the PostgreSQL server (the tests' server by default)."""
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LMSBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server at ``admin_url``, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    name = f"lmsbridge_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
