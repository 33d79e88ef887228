"""Claims on outbox rows: who is sending an action, until when, and the proof it still is.

A worker claims due rows in one committed statement and gets a *claim token* (a fencing token):
every later write about those rows (rendered body, outcome, release) is conditional on the row
still carrying that token, so a worker that lost its claim can never record over the worker that
took it. While a worker sends, a heartbeat renews the lease of its rows; only a row whose lease
ran out (its worker died or hung) is treated as abandoned and reconciled with the site, so
reconciliation never races a live sender, however long a throttled send takes.

Leases are kept on the database's clock, not on :mod:`bridge.clock`: every replica reads the
same clock there, and a pinned or replayed business time cannot stop a lease from running out.
On SQLite (one worker per file) there is nothing to race: any row left claimed when a delivery
starts is abandoned.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)

from bridge.log import get_logger
from bridge.store import schema as t

log = get_logger(__name__)

# A new recommendation goes before manager digests, reinforcement and reminders: the claim order,
# by class of purpose (within a class, by due time). Every purpose an action may have is in one
# class (outbox.enqueue refuses any other), so the classes are read one at a time through the
# (state, purpose, due_at, id) index, never by sorting every due row.
CLAIM_ORDER: tuple[tuple[str, ...], ...] = (
    ("recommend",),
    ("digest",),
    ("reinforcement",),
    ("reminder", "escalation", "observe", "manager_copy"),
)
PURPOSES = frozenset(p for purposes in CLAIM_ORDER for p in purposes)
PENDING: ColumnElement[str] = literal_column(
    "'pending'"
)  # written out, so the partial ix_actions_claim applies
PRIORITY = case(
    *((t.actions.c.purpose.in_(purposes), rank) for rank, purposes in enumerate(CLAIM_ORDER[:-1])),
    else_=len(CLAIM_ORDER) - 1,
)


def _leases(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _lease_until(conn: Connection, seconds: float) -> Any:
    return func.now() + timedelta(seconds=seconds) if _leases(conn) else None


def owned(row: Any) -> ColumnElement[bool]:
    """The condition for writing about ``row``: it still carries the claim it was read with."""
    a = t.actions
    return and_(a.c.id == row.id, a.c.claim_token.is_not_distinct_from(row.claim_token))


def owned_each() -> ColumnElement[bool]:
    """:func:`owned` for an executemany: each parameter set names its row by :func:`owned_params`."""
    a = t.actions
    return and_(a.c.id == bindparam("b_id"), a.c.claim_token.is_not_distinct_from(bindparam("b_token")))


def owned_params(row: Any) -> dict[str, Any]:
    """The parameters of :func:`owned_each` for ``row``."""
    return {"b_id": row.id, "b_token": row.claim_token}


def claim(conn: Connection, worker: str, now: datetime, limit: int, lease_seconds: float) -> list[Any]:
    """Take up to ``limit`` due pending actions for this worker, new recommendations first.

    The caller commits before sending. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several
    workers claim side by side without waiting on or double-claiming each other's rows.
    """
    a = t.actions
    ids = _due(conn, now, limit)
    if not ids:
        return []
    token = uuid.uuid4().hex
    conn.execute(
        update(a)
        .where(and_(a.c.id.in_(ids), a.c.state == "pending"))
        .values(
            state="sending",
            claimed_by=worker,
            claimed_at=now,
            claim_token=token,
            lease_until=_lease_until(conn, lease_seconds),
            attempts=a.c.attempts + 1,
            updated_at=now,
        )
    )
    return list(
        conn.execute(
            select(a)
            .where(and_(a.c.id.in_(ids), a.c.claim_token == token, a.c.state == "sending"))
            .order_by(PRIORITY, a.c.due_at, a.c.id)
        )
    )


def _due(conn: Connection, now: datetime, limit: int) -> list[int]:
    """The ids of up to ``limit`` due pending actions in claim order (PRIORITY, due_at, id): each
    purpose's first rows in due order from the pending rows' index, merged within their class. On PostgreSQL
    the rows read are locked (``SKIP LOCKED``) until the claim commits."""
    a = t.actions
    ids: list[int] = []
    for purposes in CLAIM_ORDER:
        rows: list[Any] = []
        for purpose in purposes:
            due = (
                select(a.c.id, a.c.due_at)
                .where(and_(a.c.state == PENDING, a.c.purpose == purpose, a.c.due_at <= now))
                .order_by(a.c.due_at, a.c.id)
                .limit(limit - len(ids))
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows += conn.execute(due).all()
        rows.sort(key=lambda r: (r.due_at, r.id))
        ids += [r.id for r in rows[: limit - len(ids)]]
        if len(ids) >= limit:
            break
    return ids


def abandoned(conn: Connection) -> list[Any]:
    """Rows left in ``sending`` whose lease ran out: their outcome is unknown."""
    a = t.actions
    lapsed = or_(a.c.lease_until.is_(None), a.c.lease_until < func.now()) if _leases(conn) else true()
    query = select(a).where(and_(a.c.state == "sending", lapsed)).order_by(a.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query))


def still_mine(engine: Engine, rows: Sequence[Any], lease_seconds: float) -> list[Any]:
    """Renew the claim on ``rows`` and return those this worker still holds, right before sending."""
    if not rows:
        return []
    a = t.actions
    claims = [(row.id, row.claim_token) for row in rows]
    with engine.begin() as conn:
        held = set(
            conn.execute(
                update(a)
                .where(and_(tuple_(a.c.id, a.c.claim_token).in_(claims), a.c.state == "sending"))
                .values(lease_until=_lease_until(conn, lease_seconds))
                .returning(a.c.id)
            ).scalars()
        )
    lost = [row.key for row in rows if row.id not in held]
    if lost:
        log.warning("claim lost before sending; another worker owns these actions now", keys=lost)
    return [row for row in rows if row.id in held]


@contextmanager
def heartbeat(engine: Engine, rows: Sequence[Any], lease_seconds: float) -> Iterator[None]:
    """Keep renewing the lease of ``rows`` while the block runs (a send may wait out throttling
    far longer than the lease); on SQLite there is no lease to renew."""
    tokens = sorted({row.claim_token for row in rows if row.claim_token})
    if engine.dialect.name != "postgresql" or not tokens:
        yield
        return
    done = threading.Event()
    every = max(0.5, lease_seconds / 3)

    def renew() -> None:
        a = t.actions
        while not done.wait(every):
            try:
                with engine.begin() as conn:
                    conn.execute(
                        update(a)
                        .where(and_(a.c.claim_token.in_(tokens), a.c.state == "sending"))
                        .values(lease_until=_lease_until(conn, lease_seconds))
                    )
            except Exception as exc:  # the send goes on: a lapsed lease is fenced, not trusted
                log.warning("could not renew the claim on actions being sent", error=type(exc).__name__)

    thread = threading.Thread(target=renew, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
