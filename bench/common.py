"""Shared helpers for benchmarks: stage timing, peak memory, result files.

Benchmarks print figures; they never assert on time. Each stage records wall time, lmsbridge's
CPU time (this process: the simulators run in processes of their own), the simulator's CPU time
in the same stage (read from /proc for its process id, Linux only), the process's peak resident
set size so far (ru_maxrss), which only grows — run a benchmark in its own process
(``python -m bench.NAME``) to see a stage's own peak — and, where the benchmark measures one,
the floor: the same work done directly, with the ratio of lmsbridge's CPU to it.
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


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when unknown or not on Linux)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TIMES = "\u00d7"  # the multiplication sign


def ratio(cpu_s: float, floor_s: float | None) -> str:
    """lmsbridge's CPU over the floor, written like 1.8 and the multiplication sign."""
    return f"{cpu_s / floor_s:.1f}{TIMES}" if floor_s else ""


@dataclass
class Stage:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0  # lmsbridge: this process
    simulator_cpu_s: float = 0.0  # the simulator's process, in the same stage
    peak_rss_mb: float = 0.0
    floor_s: float | None = None  # the same work done directly (CPU of this process)
    floor: str = ""  # what that work is
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    benchmark: str
    stages: list[Stage] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    simulator_pid: int | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        stage = Stage(name)
        wall, cpu = time.perf_counter(), time.process_time()
        simulator = process_cpu_s(self.simulator_pid)
        yield stage
        stage.wall_s = round(time.perf_counter() - wall, 3)
        stage.cpu_s = round(time.process_time() - cpu, 3)
        stage.simulator_cpu_s = round(process_cpu_s(self.simulator_pid) - simulator, 3)
        stage.peak_rss_mb = round(peak_rss_mb(), 1)
        self.stages.append(stage)
        extras = ", ".join(f"{k}={v}" for k, v in stage.figures.items())
        print(
            f"  {name:<40} wall {stage.wall_s:>8.2f}s  cpu {stage.cpu_s:>8.2f}s  simulator cpu "
            f"{stage.simulator_cpu_s:>7.2f}s  peak RSS {stage.peak_rss_mb:>7.1f} MB  {extras}",
            flush=True,
        )

    def floor(self, stage: Stage, cpu_s: float, what: str) -> None:
        """Record the floor of ``stage`` (measured after it, not inside its timing)."""
        stage.floor_s, stage.floor = round(cpu_s, 3), what
        print(f"  {'':<40} floor {cpu_s:.2f}s cpu ({what}): {ratio(stage.cpu_s, cpu_s)}", flush=True)

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
