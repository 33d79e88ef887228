"""Several delivery workers on PostgreSQL: every action is sent exactly once (SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from bridge import clock
from bridge.delivery import deliver
from bridge.outbox import NewAction, enqueue
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction
from bridge.store import schema as t
from tests.seed import rows, settings

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


class CountingSink:
    name = "moodle"
    kinds = frozenset({ActionKind.MESSAGE})

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.lock = threading.Lock()

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        with self.lock:
            self.sent.update(a.key for a in actions)
        return [DeliveryOutcome(a.key, OutcomeStatus.SENT, external_id="x") for a in actions]

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        return None


@pytest.mark.postgres
def test_four_workers_send_each_action_once(postgres_engine: Engine) -> None:
    clock.set_now(T0)
    with postgres_engine.begin() as conn:
        enqueue(
            conn,
            [
                NewAction(
                    key=f"k{i}",
                    purpose="recommend",
                    kind=ActionKind.MESSAGE,
                    site="moodle",
                    due_at=T0,
                    recipient_user_id=i,
                )
                for i in range(2000)
            ],
            T0,
        )
    sink = CountingSink()
    s = settings()
    s.delivery.batch_size = 25
    s.delivery.cap_per_week = 0
    workers = [
        threading.Thread(
            target=deliver, args=(postgres_engine, {"moodle": sink}, s), kwargs={"worker": f"w{n}"}
        )
        for n in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert len(sink.sent) == 2000
    assert set(sink.sent.values()) == {1}
    states = Counter(r.state for r in rows(postgres_engine, t.actions))
    assert states == {"sent": 2000}
    assert len({r.claimed_by for r in rows(postgres_engine, t.actions)}) >= 2  # the work was shared
