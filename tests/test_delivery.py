"""Outbox delivery: outcomes, retries with backoff, dead letters, and crash reconciliation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bridge import clock
from bridge.act import Actor
from bridge.claims import claim
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.errors import BridgeError, Remedy
from bridge.ports import ActionKind, DeliveryOutcome, OutcomeStatus, OutgoingAction
from bridge.store import schema as t
from tests.seed import CS101, CSAT_MAPPING, agent, lapse_leases, link, rows, settings, store, write_mapping

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


class FakeSink:
    name = "moodle"
    kinds = frozenset({ActionKind.MESSAGE})

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.script: list[OutcomeStatus | Exception] = []
        self.remote: set[str] = set()

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        outcomes = []
        for action in actions:
            step = self.script.pop(0) if self.script else OutcomeStatus.SENT
            if isinstance(step, Exception):
                raise step
            if step is OutcomeStatus.SENT:
                self.sent.append(action.key)
                self.remote.add(action.key)
            outcomes.append(
                DeliveryOutcome(
                    action.key,
                    step,
                    external_id="m1" if step is OutcomeStatus.SENT else None,
                    error=None if step is OutcomeStatus.SENT else "boom",
                )
            )
        return outcomes

    def reconcile(self, action: OutgoingAction) -> DeliveryOutcome | None:
        if action.key in self.remote:
            return DeliveryOutcome(action.key, OutcomeStatus.SENT, external_id="m-found")
        return None


@pytest.fixture
def queued(engine: Engine, tmp_path: Path) -> Engine:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    evaluate(engine, mappings, settings(), T0, persist=Actor(mappings, settings()))
    clock.set_now(T0)
    return engine


def test_sent_once(queued: Engine) -> None:
    sink = FakeSink()
    report = deliver(queued, {"moodle": sink}, settings())
    assert report.states["sent"] == 1 and len(sink.sent) == 1
    (action,) = rows(queued, t.actions)
    assert (action.state, action.external_id, action.attempts) == ("sent", "m1", 1)
    assert deliver(queued, {"moodle": sink}, settings()).states == {}
    assert len(sink.sent) == 1


def test_transient_failure_retries_with_backoff_then_dead(queued: Engine) -> None:
    sink = FakeSink()
    s = settings()
    s.delivery.max_attempts = 2
    sink.script = [OutcomeStatus.RETRY, OutcomeStatus.RETRY]
    deliver(queued, {"moodle": sink}, s)
    (action,) = rows(queued, t.actions)
    assert (action.state, action.attempts, action.last_error) == ("pending", 1, "boom")
    assert action.due_at == T0 + timedelta(seconds=s.delivery.backoff_base_seconds)
    assert deliver(queued, {"moodle": sink}, s).states == {}  # not due yet
    clock.set_now(action.due_at)
    deliver(queued, {"moodle": sink}, s)
    (action,) = rows(queued, t.actions)
    assert action.state == "dead" and action.last_error.startswith("gave up after 2 attempts")


def test_permanent_failure_is_dead_without_retry(queued: Engine) -> None:
    sink = FakeSink()
    sink.script = [OutcomeStatus.DEAD]
    deliver(queued, {"moodle": sink}, settings())
    (action,) = rows(queued, t.actions)
    assert (action.state, action.attempts, action.last_error) == ("dead", 1, "boom")


def test_configuration_error_gives_the_action_back_uncounted(queued: Engine) -> None:
    sink = FakeSink()
    error = BridgeError("Moodle rejected the token for site 'moodle'")
    error.remedy = Remedy.FIX_CONFIG
    sink.script = [error]
    report = deliver(queued, {"moodle": sink}, settings())
    assert report.errors == ["Moodle rejected the token for site 'moodle'"]
    (action,) = rows(queued, t.actions)
    assert (action.state, action.attempts) == ("pending", 0)


def test_unconfigured_site_is_dead_with_reason(queued: Engine) -> None:
    deliver(queued, {}, settings())
    (action,) = rows(queued, t.actions)
    assert (action.state, action.last_error) == ("dead", "site 'moodle' is not configured")


@pytest.mark.parametrize("sent_before_crash", [True, False])
def test_crash_after_claim_is_reconciled_before_resend(queued: Engine, sent_before_crash: bool) -> None:
    sink = FakeSink()
    with queued.begin() as conn:
        (row,) = claim(conn, "dead-worker", T0, 10, lease_seconds=300)
    if sent_before_crash:
        sink.remote.add(row.key)  # the LMS got it; the crash came before the outcome was stored
    clock.set_now(T0 + timedelta(hours=1))
    lapse_leases(queued)  # the dead worker's lease ran out
    deliver(queued, {"moodle": sink}, settings())
    (action,) = rows(queued, t.actions)
    assert action.state == "sent"
    assert sink.sent == ([] if sent_before_crash else [row.key])
    assert action.external_id == ("m-found" if sent_before_crash else "m1")


@pytest.mark.parametrize("went_through", [True, False])
def test_an_answer_lost_in_transit_is_checked_on_the_site_before_any_resend(
    queued: Engine, went_through: bool
) -> None:
    sink = FakeSink()
    lost = BridgeError("Moodle site 'moodle': no answer within 30 s")
    lost.ambiguous = True  # type: ignore[attr-defined]
    lost.remedy = Remedy.RETRY
    sink.script = [lost]
    deliver(queued, {"moodle": sink}, settings())
    (action,) = rows(queued, t.actions)
    assert action.state == "sending" and "outcome unknown" in action.last_error
    if went_through:
        sink.remote.add(action.key)  # the site did send it; only the answer was lost
    clock.set_now(T0 + timedelta(hours=1))
    lapse_leases(queued)  # past the claim's lease (PostgreSQL: other replicas)
    deliver(queued, {"moodle": sink}, settings())
    (action,) = rows(queued, t.actions)
    assert action.state == "sent"
    assert sink.sent == ([] if went_through else [action.key])  # sent at most once


def test_a_later_group_failing_keeps_what_earlier_groups_sent() -> None:
    from bridge.ports import deliver_in_groups

    def action(key: str) -> OutgoingAction:
        return OutgoingAction(key, ActionKind.MESSAGE, "moodle", 1, None, "", "", "")

    def sent(batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        return [DeliveryOutcome(a.key, OutcomeStatus.SENT) for a in batch]

    def fails(batch: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        error = BridgeError("truncated answer")
        error.ambiguous = True  # type: ignore[attr-defined]
        raise error

    outcomes = deliver_in_groups([([action("a")], sent), ([action("b")], fails), ([action("c")], sent)])
    assert [(o.key, o.status) for o in outcomes] == [
        ("a", OutcomeStatus.SENT),
        ("b", OutcomeStatus.UNKNOWN),
        ("c", OutcomeStatus.RETRY),
    ]
    with pytest.raises(BridgeError):  # nothing went out: the stage handles the whole site
        deliver_in_groups([([action("b")], fails), ([action("c")], sent)])
