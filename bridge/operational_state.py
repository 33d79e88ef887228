"""The service's operational state, read from the store in one place: is delivery paused, was
the last mapping set the service read rejected, and how many actions wait deferred.

``lmsbridge status``, ``/readyz``, ``/metrics`` and the dashboard all show these figures from
:func:`operational_state`, so they cannot disagree. The daemon writes the mapping verdict with
:func:`record_mappings_rejected` / :func:`record_mappings_accepted`; being in the store, every
replica and every ``status`` in another process sees the same.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from bridge.settings import DeliverySettings
from bridge.store import schema as t
from bridge.store.ingest import set_control

PAUSED = "paused"
MAPPINGS_REJECTED = "mappings_rejected"
# How delivery prefixes the reason of an action the guards gave back for later
# ("deferred: weekly cap ... reached"; bridge.delivery).
DEFERRED_PREFIX = "deferred: "


@dataclass(frozen=True)
class Pause:
    paused: bool
    by: str | None  # "lmsbridge pause" or "delivery.paused" (the configuration); None when not paused
    since: datetime | None  # when `lmsbridge pause` was run (unknown for the configuration)


@dataclass(frozen=True)
class MappingRejection:
    at: datetime
    problems: list[str]


@dataclass(frozen=True)
class DeferredBacklog:
    count: int
    oldest_queued_at: datetime | None
    by_reason: dict[str, int]  # "weekly cap of 3 messages reached": 12, ...


@dataclass(frozen=True)
class OperationalState:
    pause: Pause
    mappings_rejected: MappingRejection | None  # None: the service runs the set it last read
    deferred: DeferredBacklog

    def as_dict(self, *, details: bool = True) -> dict[str, object]:
        """For JSON (``status --json``, ``/readyz``); ``details=False`` leaves out the text of the
        mapping problems (file names, what they contain) for callers without the token."""
        rejected = self.mappings_rejected
        return {
            "delivery": {
                "paused": self.pause.paused,
                "paused_by": self.pause.by,
                "paused_since": self.pause.since,
            },
            "mappings": {
                "rejected": rejected is not None,
                "rejected_at": rejected.at if rejected else None,
                "problems": (rejected.problems if details else len(rejected.problems)) if rejected else [],
            },
            "deferred": {
                "count": self.deferred.count,
                "oldest_queued_at": self.deferred.oldest_queued_at,
                "by_reason": self.deferred.by_reason,
            },
        }


def operational_state(conn: Connection, delivery: DeliverySettings) -> OperationalState:
    """Pause, mapping verdict and deferred backlog as the store holds them now (three queries)."""
    return OperationalState(pause_state(conn, delivery), mappings_rejection(conn), deferred_backlog(conn))


def pause_state(conn: Connection, delivery: DeliverySettings) -> Pause:
    """Whether the kill switch is on, and who set it: ``lmsbridge pause`` (every replica, kept in
    the store) or ``delivery.paused`` in this process's configuration."""
    row = _control(conn, PAUSED)
    if row is not None and row.value == "1":
        return Pause(True, "lmsbridge pause", row.updated_at)
    if delivery.paused:
        return Pause(True, "delivery.paused", None)
    return Pause(False, None, None)


def _control(conn: Connection, name: str) -> Any:
    return conn.execute(select(t.control).where(t.control.c.name == name)).first()


def mappings_rejection(conn: Connection) -> MappingRejection | None:
    """Why the mapping files on disk were rejected, while the service runs its last good set."""
    row = _control(conn, MAPPINGS_REJECTED)
    if row is None:
        return None
    return MappingRejection(row.updated_at, [str(p) for p in json.loads(row.value)])


def deferred_backlog(conn: Connection) -> DeferredBacklog:
    """The actions delivery put off (sending hours, the weekly cap): how many, since when, why."""
    a = t.actions
    rows = conn.execute(
        select(a.c.last_error, func.count().label("n"), func.min(a.c.created_at).label("oldest"))
        .where(a.c.state == "pending", a.c.last_error.like(DEFERRED_PREFIX + "%"))
        .group_by(a.c.last_error)
    ).all()
    by_reason: Counter[str] = Counter()
    for row in rows:
        by_reason[row.last_error.removeprefix(DEFERRED_PREFIX)] += row.n
    oldest = min((row.oldest for row in rows), default=None)
    return DeferredBacklog(sum(by_reason.values()), oldest, dict(by_reason.most_common()))


def set_paused(conn: Connection, value: bool, now: datetime) -> None:
    set_control(conn, PAUSED, "1" if value else "0", now)


def record_mappings_rejected(conn: Connection, problems: list[str], now: datetime) -> None:
    set_control(conn, MAPPINGS_REJECTED, json.dumps(problems), now)


def record_mappings_accepted(conn: Connection) -> None:
    conn.execute(delete(t.control).where(t.control.c.name == MAPPINGS_REJECTED))
