"""Who may do what when several processes share one store.

- PostgreSQL: a session advisory lock per source (one replica pulls it at a time) and one for
  the decide stage; delivery claims rows with ``SKIP LOCKED`` and takes a transaction lock per
  recipient while it checks their weekly cap, so two replicas cannot both spend its last slot.
- SQLite: one process per database file. A daemon (or ``sync``) holds an exclusive lock on a
  file next to the database; a second one refuses to start with a clear message.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text

from bridge.errors import BridgeError


def lock_id(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock from a readable name."""
    return int.from_bytes(hashlib.sha256(f"lmsbridge:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Try to take the named lock without waiting; yields whether this process holds it."""
    if engine.dialect.name != "postgresql":
        yield True  # one process per SQLite file is enforced by ProcessLock
        return
    key = lock_id(name)
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def for_each_until_commit(conn: Connection, kind: str, names: Iterable[str]) -> None:
    """Hold a lock per name until ``conn``'s transaction ends, taken in a fixed order so two
    transactions never wait on each other in a circle (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name != "postgresql":
        return
    for name in sorted(set(names)):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(f"{kind}:{name}")})


class ProcessLock:
    """Exclusive ownership of a SQLite database file by one lmsbridge process."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise BridgeError(
                f"{holder} is already running on {self.path.with_suffix('')}; SQLite allows one lmsbridge process "
                "per database (use PostgreSQL to run several replicas)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"lmsbridge process {os.getpid()}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def sqlite_file(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def single_process(engine: Engine) -> Iterator[None]:
    """Hold the SQLite file for this process (no-op on PostgreSQL, where replicas are fine)."""
    database = sqlite_file(engine)
    lock = ProcessLock(database) if database is not None else None
    if lock is not None:
        lock.acquire()
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
