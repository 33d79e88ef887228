"""Every message true when it is sent: checked, superseded and rendered against the store of now."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from bridge import clock
from bridge.act import Actor
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.followups import follow_up
from bridge.mapping.loader import MappingSet
from bridge.ports import DeliveryOutcome, OutgoingAction
from bridge.records import Enrolment
from bridge.settings import Settings
from bridge.store import schema as t
from tests.seed import (
    CS101,
    CSAT_MAPPING,
    agent_and_manager,
    completion,
    rows,
    settings,
    store,
    write_mapping,
)
from tests.test_delivery import FakeSink

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday
FOLLOW = (
    CSAT_MAPPING
    + """\
follow_up:
  due_in_days: 10
  remind_after_days: [3, 7, 12]
  escalate_to_manager_after_days: 5
  reinforce_after_days: [1, 7, 21]
  manager_observe_after_days: 2
"""
)


class RecordingSink(FakeSink):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[OutgoingAction] = []

    def deliver(self, actions: Sequence[OutgoingAction]) -> list[DeliveryOutcome]:
        self.actions.extend(actions)
        return super().deliver(actions)

    def texts(self, purpose: str) -> list[str]:
        return [a.body_text for a in self.actions if f"/{purpose}/" in a.key or a.key.startswith(purpose)]


@pytest.fixture
def team(engine: Engine) -> Engine:
    return agent_and_manager(engine)


def decide(engine: Engine, mappings: MappingSet, now: datetime, s: Settings | None = None) -> None:
    s = s or settings()
    clock.set_now(now)
    evaluate(engine, mappings, s, now, persist=Actor(mappings, s))
    follow_up(engine, mappings, s, now)


def send(engine: Engine, sink: FakeSink, now: datetime, s: Settings | None = None) -> None:
    clock.set_now(now)
    deliver(engine, {"moodle": sink}, s or settings())


def cycle(engine: Engine, mappings: MappingSet, now: datetime, sink: FakeSink | None = None) -> None:
    """One cycle at ``now``: decide and follow up, then (given a sink) deliver."""
    decide(engine, mappings, now)
    if sink is not None:
        send(engine, sink, now)


def p1_actions(engine: Engine) -> list[tuple[str, str, str, str]]:
    return [
        (a.purpose, a.key.rsplit("/", 1)[-1], a.state, a.last_error or "")
        for a in rows(engine, t.actions, t.actions.c.id)
        if a.person_id == "P1"
    ]


def test_only_the_latest_reminder_goes_after_a_pause(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    for day in (3, 7):  # two reminders queued while delivery was down
        decide(team, mappings, T0 + timedelta(days=day))
    send(team, sink, T0 + timedelta(days=8))
    reminders = [a for a in p1_actions(team) if a[0] == "reminder"]
    assert [(step, state) for _, step, state, _ in reminders] == [("3", "cancelled"), ("7", "sent")]
    assert re.fullmatch(r"superseded: the day-7 reminder \(action \d+\) goes instead", reminders[0][3])
    assert len(sink.texts("reminder")) == 1


def test_reminder_rendered_when_sent_says_overdue(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    cycle(team, mappings, T0 + timedelta(days=7), sink)
    decide(team, mappings, T0 + timedelta(days=12))
    send(team, sink, T0 + timedelta(days=13))  # held for a day: rendered on day 13, not 12
    first, second = sink.texts("reminder")
    assert "It is due by 2026-11-12 (3 days left)." in first
    assert "It was due on 2026-11-12 and is now overdue" in second and "due by" not in second
    recommend = sink.texts("recommend")[0]
    assert "Please complete it by 2026-11-12." in recommend


def test_item_completed_since_is_not_reminded(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=3))
    store(team, completion(11, T0 + timedelta(days=3, hours=1)))  # pulled, not yet decided
    send(team, sink, T0 + timedelta(days=3, hours=2))
    assert (
        "reminder",
        "3",
        "cancelled",
        "Customer Conversations was completed on 2026-11-05, after it was recommended",
    ) in p1_actions(team)
    assert sink.texts("reminder") == []


def test_reminder_not_sent_to_someone_no_longer_enrolled(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    store(team, Enrolment("moodle", 11, CS101.item_id, active=False))
    cycle(team, mappings, T0 + timedelta(days=3), sink)
    assert (
        "reminder",
        "3",
        "cancelled",
        "the learner is no longer enrolled in Customer Conversations",
    ) in p1_actions(team)


def test_reinforcements_for_one_completion_collapse_and_vary_by_step(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    store(team, completion(11, T0 + timedelta(days=1)))
    for day in (2, 3, 9):  # each cycle queues the latest due step; none delivered in between
        decide(team, mappings, T0 + timedelta(days=day))
    send(team, sink, T0 + timedelta(days=9))
    reinforcements = [a for a in p1_actions(team) if a[0] == "reinforcement"]
    assert [(s, st) for _, s, st, _ in reinforcements] == [("1", "cancelled"), ("7", "sent")]
    (text,) = sink.texts("reinforcement")
    assert "You completed Customer Conversations (http://lms/course/view.php?id=7) on 2026-11-03." in text
    assert "Which idea from it have you tried since?" in text  # step 2 of 3, not step 1's sentence
    cycle(team, mappings, T0 + timedelta(days=22), sink)
    assert "Last nudge" in sink.texts("reinforcement")[-1]


def test_reinforcement_dropped_when_completion_no_longer_stands(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    store(team, completion(11, T0 + timedelta(days=1)))
    decide(team, mappings, T0 + timedelta(days=2))
    with team.begin() as conn:  # the site reset the completion before the nudge went
        conn.execute(t.completions.delete())
    send(team, sink, T0 + timedelta(days=2))
    assert (
        "reinforcement",
        "1",
        "cancelled",
        "the completion of Customer Conversations is no longer recorded on site 'moodle'",
    ) in p1_actions(team)


def test_too_old_to_send_is_dropped_with_its_reason(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    decide(team, mappings, T0)
    s = settings()
    s.delivery.max_age_days = {**s.delivery.max_age_days, "recommend": 5}
    send(team, sink, T0 + timedelta(days=6), s)
    (recommend,) = [a for a in p1_actions(team) if a[0] == "recommend"]
    assert recommend[2:] == (
        "cancelled",
        "dropped unsent: queued 2026-11-02, older than the 5-day limit for recommend messages (delivery.max_age_days)",
    )
    assert sink.actions == []


def test_new_recommendation_outranks_follow_ups_under_the_cap(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    other = write_mapping(
        tmp_path, "csat-again", FOLLOW.replace("id: csat", "id: csat-again").replace("CS-101", "CS-102")
    )
    store(team, CS101.__class__("moodle", 8, shortname="CS-102", fullname="Calm Calls", url="http://lms/8"))
    s = settings()
    s.delivery.cap_per_week = 1
    sink = RecordingSink()
    decide(team, mappings, T0, s)
    send(team, sink, T0, s)
    store(team, completion(11, T0 + timedelta(days=1)))
    decide(team, mappings, T0 + timedelta(days=8), s)  # a reinforcement is due...
    decide(team, other, T0 + timedelta(days=8), s)  # ...and a new recommendation opens the same day
    with team.begin() as conn:  # queued earlier than the recommendation, so it would be claimed first
        conn.execute(
            update(t.actions)
            .where(t.actions.c.purpose == "reinforcement")
            .values(due_at=T0 + timedelta(days=7))
        )
    send(team, sink, T0 + timedelta(days=8), s)
    sent = [a.key.split("/")[3] for a in sink.actions if not a.key.startswith("digest/")]
    assert sent == ["recommend", "recommend"]  # day 0, then the new one; the reinforcement waits
    held = next(a for a in p1_actions(team) if a[0] == "reinforcement" and a[2] == "pending")
    assert held[3] == "deferred: weekly cap of 1 messages reached"


def test_digest_built_from_current_state_one_line_per_report(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))  # escalation item queued into a digest...
    store(team, completion(11, T0 + timedelta(days=5, hours=1)))
    cycle(team, mappings, T0 + timedelta(days=8), sink)  # ...she completes; the observe item joins it
    digests = [a for a in sink.actions if a.key.startswith("digest/")]
    assert len(digests) == 1
    lines = [x for x in digests[0].body_text.splitlines() if x.startswith("- ")]
    assert lines == [
        "- P1 completed Customer Conversations on 2026-11-07: watch for the new behaviour and give feedback."
    ]
    assert digests[0].subject == "Your team's learning follow-ups (1)"


def test_overdue_in_the_digest_line(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    decide(team, mappings, T0 + timedelta(days=5))
    send(team, sink, T0 + timedelta(days=11))
    (digest,) = [a for a in sink.actions if a.key.startswith("digest/")]
    assert (
        "P1 has not completed Customer Conversations yet (recommended 2026-11-02, overdue since 2026-11-12)."
        in digest.body_text
    )
