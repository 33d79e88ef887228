"""A claim takes due actions in priority order (new recommendations, digests, reinforcement, then
the rest, each by due time) through the pending rows' (purpose, due_at, id) index, one purpose at a
time, and gives exactly what sorting every due row by that order gives."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, and_, event, select

from bridge import guards
from bridge.claims import CLAIM_ORDER, PRIORITY, PURPOSES, _due
from bridge.outbox import NewAction, enqueue
from bridge.ports import ActionKind
from bridge.store import schema as t

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
STATES = ("pending", "pending", "pending", "sent", "sending", "cancelled")


def fill(engine: Engine, count: int, seed: int) -> None:
    pick = random.Random(seed)
    actions = [
        NewAction(
            key=f"k{i}",
            purpose=pick.choice(sorted(PURPOSES)),
            kind=ActionKind.MESSAGE,
            site="moodle",
            due_at=NOW + timedelta(minutes=pick.randint(-600, 60)),  # some not due yet
            state=pick.choice(STATES),
        )
        for i in range(count)
    ]
    with engine.begin() as conn:
        enqueue(conn, actions, NOW)


def sorted_due(engine: Engine, limit: int) -> list[int]:
    """The order a claim must follow, by sorting every due row."""
    a = t.actions
    query = (
        select(a.c.id)
        .where(and_(a.c.state == "pending", a.c.due_at <= NOW))
        .order_by(PRIORITY, a.c.due_at, a.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


@pytest.mark.parametrize("limit", [1, 7, 100, 1000])
def test_a_claim_takes_what_sorting_every_due_row_gives(engine: Engine, limit: int) -> None:
    fill(engine, 400, seed=limit)
    with engine.connect() as conn:
        assert _due(conn, NOW, limit) == sorted_due(engine, limit)


def test_every_purpose_has_a_place_in_the_claim_order_and_no_other_is_queued(engine: Engine) -> None:
    assert len(PURPOSES) == sum(len(c) for c in CLAIM_ORDER)  # each purpose in one class
    stray = NewAction(key="x", purpose="newsletter", kind=ActionKind.MESSAGE, site="moodle", due_at=NOW)
    with engine.begin() as conn, pytest.raises(ValueError, match="newsletter"):
        enqueue(conn, [stray], NOW)


def plans(engine: Engine, run: Callable[[Connection], object], reading: str) -> list[str]:
    """SQLite's plan of each statement ``run`` executes that contains ``reading``, as executed."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: Any, *args: object) -> None:
        if reading in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as conn:
        return [
            " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in seen
        ]


def test_the_claim_reads_the_pending_rows_index_and_the_cap_its_own(sqlite_engine: Engine) -> None:
    """No sort of every due row for a claim, and the weekly cap's query is not drawn to the claim's
    index (SQLite's plans, after ANALYZE of a filled queue)."""
    fill(sqlite_engine, 2000, seed=1)
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    claim_plans = plans(sqlite_engine, lambda conn: _due(conn, NOW, 100), "ORDER BY actions.due_at")
    assert claim_plans and all("ix_actions_claim" in p and "TEMP B-TREE" not in p for p in claim_plans)
    cap = plans(
        sqlite_engine,
        lambda conn: guards._recent_learner_messages(conn, {"P1", "P2"}, NOW, set()),
        "count(*)",
    )
    assert cap and all("ix_actions_claim" not in p for p in cap), cap
