"""A site that is down is given up on for the rest of a delivery run (issue 13, item 10)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from bridge import clock
from bridge.act import Actor
from bridge.claims import claim
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.errors import BridgeError, Remedy
from bridge.ports import DeliveryOutcome, OutgoingAction
from bridge.store import schema as t
from tests.seed import CS101, CSAT_MAPPING, agent, lapse_leases, link, rows, settings, store, write_mapping
from tests.test_delivery import FakeSink
from tests.test_followups import T0


class DownSink(FakeSink):
    """Every call fails as a site that does not answer does, after the client's retries."""

    def __init__(self) -> None:
        super().__init__()
        self.reconcile_calls = 0
        self.deliver_calls = 0

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        self.reconcile_calls += 1
        down = BridgeError("Moodle site 'moodle' could not answer core_message_get_messages: cannot connect")
        down.remedy = Remedy.RETRY
        raise down

    def deliver(self, actions: object) -> list[DeliveryOutcome]:
        self.deliver_calls += 1
        down = BridgeError("Moodle site 'moodle' could not answer: cannot connect")
        down.remedy = Remedy.RETRY
        raise down


def test_a_site_down_costs_one_reconciliation_attempt_and_no_send(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    people = [f"P{n}" for n in range(1, 6)]
    store(engine, CS101, *[r for n, p in enumerate(people) for r in agent(p, 3.5, user_id=10 + n)])
    for n, p in enumerate(people):
        link(engine, p, 10 + n)
    evaluate(engine, mappings, settings(), T0, persist=Actor(mappings, settings()))
    with engine.begin() as conn:
        assert len(claim(conn, "crashed-worker", T0, 10, lease_seconds=300)) == 5  # outcomes unknown
    clock.set_now(T0 + timedelta(hours=1))
    lapse_leases(engine)
    sink = DownSink()
    report = deliver(engine, {"moodle": sink}, settings())
    assert sink.reconcile_calls == 1 and sink.deliver_calls == 0
    assert len(report.errors) == 1 and "cannot connect" in report.errors[0]
    assert {a.state for a in rows(engine, t.actions)} == {"sending"}  # still to be checked: nothing lost
