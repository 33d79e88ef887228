"""Health of each source and stage, with a circuit breaker for sources that keep failing.

A source that fails N times in a row is skipped for a while (exponential, capped), so a site
that is down is not hammered and everything else goes on; ``/readyz`` and ``status`` report it.
Only failures that resting can help count toward the breaker: a people export refused for its
contents (``Remedy.FIX_DATA``) is read again every cycle, so the corrected file is taken at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

from bridge.store import schema as t
from bridge.store.ingest import upsert_statement

BREAKER_BASE = timedelta(minutes=1)
BREAKER_MAX = timedelta(hours=1)
BREAKER_AFTER = 3


@dataclass(frozen=True)
class Health:
    name: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    resting_failures: int = 0  # of those, the ones that count toward the breaker

    def open_until(self) -> datetime | None:
        """While the breaker is open, the time it closes again; otherwise None."""
        if self.resting_failures < BREAKER_AFTER or self.last_error_at is None:
            return None
        delay = min(BREAKER_MAX, BREAKER_BASE * (1 << min(20, self.resting_failures - BREAKER_AFTER)))
        return self.last_error_at + delay


def _ensure(conn: Connection, name: str, now: datetime) -> None:
    stmt = upsert_statement(conn, t.source_health, ["name"], ["name"])
    conn.execute(stmt, {"name": name, "consecutive_failures": 0, "resting_failures": 0, "updated_at": now})


def record_started(engine: Engine, name: str, now: datetime) -> None:
    """A pull of ``name`` has begun: until it ends well, its data may be half-read."""
    h = t.source_health
    with engine.begin() as conn:
        _ensure(conn, name, now)
        conn.execute(update(h).where(h.c.name == name).values(pulling=True, updated_at=now))


def record_success(engine: Engine, name: str, now: datetime) -> None:
    h = t.source_health
    with engine.begin() as conn:
        _ensure(conn, name, now)
        conn.execute(
            update(h)
            .where(h.c.name == name)
            .values(
                last_success_at=now,
                consecutive_failures=0,
                resting_failures=0,
                pulling=False,
                updated_at=now,
            )
        )


def record_failure(engine: Engine, name: str, error: str, now: datetime, *, rests: bool = True) -> None:
    """One more failure; ``rests``: it counts toward resting the source (see the module's docstring)."""
    h = t.source_health
    with engine.begin() as conn:
        _ensure(conn, name, now)
        conn.execute(
            update(h)
            .where(h.c.name == name)
            .values(
                last_error=error[:2000],
                last_error_at=now,
                consecutive_failures=h.c.consecutive_failures + 1,
                resting_failures=h.c.resting_failures + 1 if rests else h.c.resting_failures,
                pulling=False,
                updated_at=now,
            )
        )


def unsettled(conn: Connection, names: Iterable[str]) -> dict[str, str]:
    """Of ``names``, the sources whose latest pull is still running or failed, with why."""
    h = t.source_health
    rows = conn.execute(
        select(h.c.name, h.c.pulling, h.c.last_error).where(
            and_(h.c.name.in_(sorted(set(names))), or_(h.c.pulling, h.c.consecutive_failures > 0))
        )
    )
    return {r.name: "is being pulled" if r.pulling else f"failed its last pull: {r.last_error}" for r in rows}


def get(engine: Engine, name: str) -> Health | None:
    with engine.connect() as conn:
        row = conn.execute(select(t.source_health).where(t.source_health.c.name == name)).first()
    return _health(row) if row is not None else None


def all_health(engine: Engine) -> list[Health]:
    with engine.connect() as conn:
        return [_health(r) for r in conn.execute(select(t.source_health).order_by(t.source_health.c.name))]


def _health(row: Any) -> Health:
    return Health(
        row.name,
        row.last_success_at,
        row.last_error_at,
        row.last_error,
        row.consecutive_failures,
        row.resting_failures,
    )
