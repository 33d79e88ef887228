"""The floor of a stage: the same work done directly, measured in the same run.

For the initial sync that is storing the rows it stored, with the database driver's own bulk
path and nothing else: every row of every table, read back raw after the stage, inserted into
empty tables of the same shape (keys and indexes included) with ``executemany`` on SQLite or
``COPY`` on PostgreSQL. Parsing the HR files and reading the LMS are not in it, so the ratio of
the stage to this floor is an upper bound on what storing costs over the driver.

For delivery it is the stage's HTTP conversation alone: every request the stage sent, recorded
as it left (:class:`Recorded`), sent again in the same order on one keep-alive ``requests``
session and each answer read (:func:`replay_cpu_s`). What delivery does besides talking to the
site — choosing what is due, checking it is still true, rendering, recording outcomes — is what
its ratio to this floor measures. The replay writes to the simulator again (the same messages
and enrolments), so it runs when nothing reads the simulator any more.

It runs in a process of its own (``python -m bench.floors`` reads the store's URL from
``BENCH_FLOOR_STORE``, never from its command line where ``ps`` shows a password, and prints its
figures as JSON), so holding every row does not count in the benchmark's peak RSS.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, create_engine

from bridge import http
from bridge.store import schema


def _rows(engine: Engine) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            result = conn.exec_driver_sql(f'SELECT * FROM "{table.name}"')
            rows = [tuple(r) for r in result]
            if rows:
                tables[table.name] = (list(result.keys()), rows)
    return tables


def bulk_insert_floor(store_url: str) -> tuple[float, int]:
    """(CPU, rows) of bulk-inserting every row now in the store afresh, in a child process."""
    answer = subprocess.run(
        [sys.executable, "-m", "bench.floors"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_FLOOR_STORE": store_url},
    )
    figures = json.loads(answer.stdout)
    return figures["cpu_s"], figures["rows"]


def bulk_insert_s(engine: Engine) -> tuple[float, int]:
    """(CPU of this process, rows) of bulk-inserting every row now in the store afresh."""
    tables = _rows(engine)
    count = sum(len(rows) for _columns, rows in tables.values())
    if engine.dialect.name == "postgresql":
        return _copy(engine, tables), count
    with tempfile.TemporaryDirectory() as raw:
        fresh = create_engine(f"sqlite:///{Path(raw) / 'floor.db'}")
        schema.metadata.create_all(fresh)
        driver = fresh.raw_connection()
        try:
            driver.execute("PRAGMA journal_mode=WAL")
            driver.execute("PRAGMA synchronous=NORMAL")
            cpu = time.process_time()
            for name, (columns, rows) in tables.items():
                marks = ", ".join("?" * len(columns))
                names = ", ".join(f'"{c}"' for c in columns)
                driver.executemany(f'INSERT INTO "{name}" ({names}) VALUES ({marks})', rows)
            driver.commit()
            return time.process_time() - cpu, count
        finally:
            driver.close()
            fresh.dispose()


def _copy(engine: Engine, tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> float:
    driver = engine.raw_connection()
    try:
        cursor = driver.cursor()
        for name in tables:
            cursor.execute(f'CREATE TEMPORARY TABLE "floor_{name}" (LIKE "{name}" INCLUDING ALL)')
        cpu = time.process_time()
        for name, (columns, rows) in tables.items():
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f'COPY "floor_{name}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        return time.process_time() - cpu
    finally:
        driver.rollback()  # the temporary tables go with it
        driver.close()


class Recorded:
    """Within the block, every request this process sends through bridge.http, as it was sent,
    written to a temporary file as it leaves (held in memory, the bodies of a 50,000-learner
    delivery would count in the benchmark's peak RSS)."""

    def __init__(self) -> None:
        self.count = 0
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by replay_cpu_s

    def __enter__(self) -> Recorded:
        original = self._original = http.GuardedAdapter.send

        def send(adapter: http.GuardedAdapter, request: requests.PreparedRequest, **kwargs: Any) -> Any:
            headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
            pickle.dump((request.method or "GET", request.url or "", headers, request.body), self._file)
            self.count += 1
            return original(adapter, request, **kwargs)

        http.GuardedAdapter.send = send  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *_exc: object) -> None:
        http.GuardedAdapter.send = self._original  # type: ignore[method-assign]

    def requests(self) -> Iterator[tuple[str, str, dict[str, str], bytes | str | None]]:
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)
        self._file.close()


def replay_cpu_s(recorded: Recorded) -> float:
    """CPU of sending the recorded requests again on one keep-alive session, reading each answer
    (reading them back from the file is not counted)."""
    cpu = 0.0
    with requests.Session() as session:
        for method, url, headers, body in recorded.requests():
            started = time.process_time()
            session.request(method, url, data=body, headers=headers, timeout=120).content  # noqa: B018
            cpu += time.process_time() - started
    return cpu


if __name__ == "__main__":
    from bridge.store.db import make_engine

    store = make_engine(os.environ["BENCH_FLOOR_STORE"])
    cpu, rows = bulk_insert_s(store)
    store.dispose()
    print(json.dumps({"cpu_s": cpu, "rows": rows}))
