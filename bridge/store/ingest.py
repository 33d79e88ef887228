"""Writing pulled records: upsert by natural key, keep rejects, advance cursors, mark people dirty.

One :class:`~bridge.ports.Batch` is written in one transaction together with its cursor, so a
cursor never runs ahead of the records it covers. Upserts only touch rows whose values changed,
and only the people behind changed rows are marked for re-evaluation. A batch whose records are
:class:`~bridge.ports.Chunked` (a people snapshot) is written a chunk at a time, still in its one
transaction, and the ids it lists are staged in a temporary table (bridge.store.staged).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Table, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from bridge import clock
from bridge.errors import Remedy, SourceError
from bridge.ports import Batch, Chunked
from bridge.records import (
    Competency,
    CompetencyRating,
    Completion,
    Enrolment,
    Goal,
    LearningItem,
    LmsManager,
    LmsUser,
    Measurement,
    Person,
    Record,
    ReviewRating,
)
from bridge.store import schema as t
from bridge.store.bulk import on_conflict, upsert_rows
from bridge.store.staged import ListedIds

CHUNK = 500
WRITE_CHUNK = 5000  # records of a chunked batch written at a time


@dataclass(frozen=True)
class _Target:
    table: Table
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    owner: str  # "person": rows belong to person_id; "lms_user": to (site, user_id); "none"


def _target(table: Table, keys: Sequence[str], owner: str) -> _Target:
    cols = tuple(c.name for c in table.columns if c.name != "updated_at")
    return _Target(table, tuple(keys), cols, owner)


TARGETS: dict[type, _Target] = {
    Person: _target(t.people, ["person_id"], "person"),
    LmsUser: _target(t.lms_users, ["site", "user_id"], "lms_user"),
    LmsManager: _target(t.lms_managers, ["site", "user_id"], "lms_user"),
    LearningItem: _target(t.learning_items, ["site", "kind", "item_id"], "none"),
    Enrolment: _target(t.enrolments, ["site", "user_id", "item_id"], "lms_user"),
    Completion: _target(t.completions, ["site", "user_id", "kind", "item_id"], "lms_user"),
    Competency: _target(t.competencies, ["site", "competency_id"], "none"),
    CompetencyRating: _target(t.competency_ratings, ["site", "user_id", "competency_id"], "lms_user"),
    Measurement: _target(t.measurements, ["person_id", "metric", "period_start"], "person"),
    ReviewRating: _target(
        t.review_ratings, ["person_id", "competency", "rater_type", "period_end"], "person"
    ),
    Goal: _target(t.goals, ["person_id", "goal_id"], "person"),
}

# The per-site versions bumped when these records change (``users:SITE``, ``items:SITE``).
SITE_VERSIONS: dict[type, str] = {LmsUser: "users", LearningItem: "items"}


@dataclass
class WriteResult:
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    changed: int = 0
    rejected: int = 0
    dirty_people: int = 0
    leavers: int = 0

    def add(self, other: WriteResult) -> None:
        for k, v in other.written.items():
            self.written[k] += v
        self.changed += other.changed
        self.rejected += other.rejected
        self.dirty_people += other.dirty_people
        self.leavers += other.leavers


def upsert_statement(conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE, touching a row only when a value differs."""
    return _upsert(conn.dialect.name, table, tuple(keys), tuple(columns))


@lru_cache(maxsize=256)
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return on_conflict(insert(table), table, keys, columns)


def _values(target: _Target) -> Callable[[Record], tuple[Any, ...]]:
    """A record's values for ``target.columns``, as one tuple."""
    get = attrgetter(*target.columns)
    return (lambda r: (get(r),)) if len(target.columns) == 1 else get


def write_records(conn: Connection, records: Iterable[Record], now: datetime) -> WriteResult:
    result = WriteResult()
    grouped: dict[type, list[Record]] = defaultdict(list)
    for record in records:
        grouped[type(record)].append(record)
    dirty_persons: set[str] = set()
    dirty_users: set[tuple[str, int]] = set()
    changed_metrics: set[str] = set()
    for kind, items in grouped.items():
        target = TARGETS[kind]
        values = _values(target)
        rows = [(*values(r), now) for r in _dedupe(items, target.keys)]
        changed = upsert_rows(
            conn, target.table, target.keys, target.columns, (*target.columns, "updated_at"), rows
        )
        result.written[kind.__name__] += len(rows)
        result.changed += len(changed)
        key = {k: i for i, k in enumerate(target.keys)}
        if target.owner == "person":
            dirty_persons.update(row[key["person_id"]] for row in changed)
        if kind is Measurement:
            changed_metrics.update(row[key["metric"]] for row in changed)
        if kind is Person and changed:
            bump_version(conn, "people", now)
        if kind is LmsManager and changed:
            bump_version(conn, "managers", now)
        if kind in SITE_VERSIONS and changed:
            for site in sorted({row[key["site"]] for row in changed}):
                bump_version(conn, f"{SITE_VERSIONS[kind]}:{site}", now)  # bridge.cycle's kept index
        if target.owner == "lms_user":
            dirty_users.update((row[key["site"]], row[key["user_id"]]) for row in changed)
    if dirty_users:
        dirty_persons.update(_people_of_users(conn, dirty_users))
    result.dirty_people = mark_dirty(conn, dirty_persons, now)
    for metric in sorted(changed_metrics):
        bump_version(conn, f"kpi:{metric}", now)
    return result


def set_control(conn: Connection, name: str, value: str, now: datetime) -> None:
    """Store one named value of the bridge's own state (the ``control`` table)."""
    stmt = upsert_statement(conn, t.control, ["name"], ["name", "value"])
    conn.execute(stmt, {"name": name, "value": value, "updated_at": now})


def control_value(conn: Connection, name: str) -> str | None:
    return conn.execute(select(t.control.c.value).where(t.control.c.name == name)).scalar()


def bump_version(conn: Connection, name: str, now: datetime) -> None:
    """Mark a kind of data as changed, so caches derived from it are rebuilt (see PeerRanks)."""
    set_control(conn, f"version:{name}", uuid.uuid4().hex, now)


def version(conn: Connection, name: str) -> str | None:
    return control_value(conn, f"version:{name}")


def _dedupe(items: list[Record], keys: Sequence[str]) -> list[Record]:
    """Keep the last record per key: one statement may not touch the same row twice.

    The last one is what upserting them in turn would have stored."""
    by_key: dict[tuple[Any, ...], Record] = {}
    for item in items:
        by_key[tuple(getattr(item, k) for k in keys)] = item
    return list(by_key.values())


def _people_of_users(conn: Connection, users: set[tuple[str, int]]) -> set[str]:
    found: set[str] = set()
    pairs = sorted(users)
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        rows = conn.execute(
            select(t.identities.c.person_id).where(
                tuple_(t.identities.c.site, t.identities.c.user_id).in_(chunk)
            )
        )
        found.update(r.person_id for r in rows)
    return found


def mark_dirty(conn: Connection, person_ids: Iterable[str], now: datetime) -> int:
    ids = sorted(set(person_ids))
    if not ids:
        return 0
    rows = [(p, now, uuid.uuid4().hex) for p in ids]
    upsert_rows(
        conn, t.dirty_people, ["person_id"], ["person_id", "mark"], ["person_id", "since", "mark"], rows
    )
    return len(ids)


def retire_missing_people(conn: Connection, source: str, listed: ListedIds, now: datetime) -> int:
    """A complete snapshot of people from ``source``: anyone it no longer lists has left."""
    gone = sorted(conn.execute(listed.unlisted(source)).scalars())
    for start in range(0, len(gone), CHUNK):
        conn.execute(
            update(t.people)
            .where(t.people.c.person_id.in_(gone[start : start + CHUNK]))
            .values(active=False, updated_at=now)
        )
    mark_dirty(conn, gone, now)
    if gone:
        bump_version(conn, "people", now)
    return len(gone)


def listed(batch: Batch) -> set[str]:
    """Who a people snapshot lists: those it loaded and those whose rows it had to reject."""
    return set(chain.from_iterable(_listed(batch, WRITE_CHUNK)))


def stage_listed(conn: Connection, batch: Batch) -> ListedIds:
    """The ids a people snapshot lists, staged for this transaction (drop it when done)."""
    return ListedIds(conn, _listed(batch, WRITE_CHUNK))


def _listed(batch: Batch, size: int) -> Iterator[Sequence[str]]:
    """The ids of :func:`listed`, ``size`` at a time, without holding them all."""
    if isinstance(batch.records, Chunked):
        yield from batch.records.listed(size)  # holds the ids of its records, rejected rows' too
        return
    yield sorted({r.person_id for r in batch.records if isinstance(r, Person)} | batch.named)


def check_snapshot(conn: Connection, source: str, batch: Batch, staged: ListedIds | None = None) -> None:
    """Refuse a people snapshot that looks like a broken export rather than who works here now.

    An empty, cut or misread file (a renamed id column, an unclosed quote, another encoding)
    would otherwise retire everyone it fails to list, closing their recommendations and
    cancelling their messages. Refused when most rows were rejected, or when it would retire more
    than ``max_retire_percent`` of the feed's active people (one person may always leave).
    Raising rolls the whole batch back: nothing is stored and the cursor stays, so the file is
    read again, and the next good one is taken as it comes. ``staged``: the ids it lists, staged
    already (else they are staged for the check and dropped after it).
    """
    what = f"feed '{source}': refused the people snapshot {batch.origin or batch.stream}"
    after = (
        f"nothing from it was stored and nobody was retired (`lmsbridge hris check {source}` lists "
        "every row it rejects)"
    )
    rows = batch.rows_read or 0
    refused = rows - len(batch.records)
    if rows and refused * 2 > rows:
        first = (
            f" (first: {batch.rejected[0].location}: {batch.rejected[0].reason})" if batch.rejected else ""
        )
        raise SourceError(f"{what}: {refused} of {rows} rows were rejected{first}; {after}", Remedy.FIX_DATA)
    limit = batch.max_retire_percent
    if limit is None:
        return
    ids = staged if staged is not None else stage_listed(conn, batch)
    gone, active = ids.would_retire(source)
    if staged is None:
        ids.drop()
    if gone > max(1.0, active * limit / 100):
        raise SourceError(
            f"{what}: it would retire {gone} of {active} active people ({gone / active:.0%}), "
            f"more than max_retire_percent = {limit:g}; {after}. If they really left, raise "
            f"feeds.{source}.max_retire_percent for one sync",
            Remedy.FIX_DATA,
        )


def write_batch(conn: Connection, source: str, batch: Batch, now: datetime | None = None) -> WriteResult:
    """Store one batch and its cursor. The caller owns the transaction."""
    now = now or clock.now()
    snapshot = batch.snapshot_of == "people"
    staged = stage_listed(conn, batch) if snapshot else None
    if snapshot:
        check_snapshot(conn, source, batch, staged)
    if isinstance(batch.records, Chunked):
        result = WriteResult()
        for chunk in batch.records.chunks(WRITE_CHUNK):
            result.add(write_records(conn, chunk, now))
    else:
        result = write_records(conn, batch.records, now)
    if batch.rejected:
        conn.execute(
            t.rejects.insert(),
            [
                {
                    "source": r.source,
                    "location": r.location,
                    "reason": r.reason,
                    "raw": r.raw[:4000],
                    "seen_at": now,
                }
                for r in batch.rejected
            ],
        )
        result.rejected = len(batch.rejected)
    if staged is not None:
        result.leavers = retire_missing_people(conn, source, staged, now)
        staged.drop()
    if batch.cursor is not None:
        set_cursor(conn, source, batch.stream, batch.cursor, now)
    return result


def set_cursor(conn: Connection, source: str, stream: str, value: str | None, now: datetime) -> None:
    stmt = upsert_statement(conn, t.cursors, ["source", "stream"], ["source", "stream", "value"])
    conn.execute(stmt, {"source": source, "stream": stream, "value": value, "updated_at": now})


def get_cursors(conn: Connection, source: str) -> dict[str, str | None]:
    rows = conn.execute(select(t.cursors.c.stream, t.cursors.c.value).where(t.cursors.c.source == source))
    return {r.stream: r.value for r in rows}


def reset_cursors(conn: Connection, source: str) -> None:
    conn.execute(t.cursors.delete().where(t.cursors.c.source == source))
