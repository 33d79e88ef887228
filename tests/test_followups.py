"""Follow-ups and guards: reminders, escalation digests, reinforcement, caps, hours, opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bridge import clock, followups
from bridge.act import Actor
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.followups import follow_up
from bridge.operational_state import set_paused
from bridge.records import LmsUser, Person
from bridge.store import schema as t
from tests.seed import (
    CSAT_MAPPING,
    agent,
    agent_and_manager,
    completion,
    link,
    rows,
    settings,
    store,
    write_mapping,
)
from tests.test_delivery import FakeSink
from tests.test_send_time import cycle

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday
FOLLOW = (
    CSAT_MAPPING
    + """\
follow_up:
  remind_after_days: [3, 7]
  escalate_to_manager_after_days: 10
  reinforce_after_days: [1, 7]
  manager_observe_after_days: 5
"""
)


def purposes(engine: Engine) -> list[tuple[str, str, str]]:
    return [(a.purpose, a.key.rsplit("/", 1)[-1], a.state) for a in rows(engine, t.actions, t.actions.c.id)]


@pytest.fixture
def team(engine: Engine) -> Engine:
    """P1 and P2, both below the CSAT target, and their manager M1."""
    agent_and_manager(engine)
    store(engine, *agent("P2", 3.2, user_id=12, manager_id="M1"))
    link(engine, "P2", 12)
    return engine


def test_reminders_until_completion_then_reinforcement(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = FakeSink()
    cycle(team, mappings, T0, sink)
    cycle(team, mappings, T0 + timedelta(days=3), sink)
    cycle(team, mappings, T0 + timedelta(days=3, hours=1), sink)  # nothing twice
    p1 = [a for a in rows(team, t.actions, t.actions.c.id) if a.person_id == "P1"]
    assert [(a.purpose, a.state) for a in p1] == [("recommend", "sent"), ("reminder", "sent")]
    store(team, completion(11, T0 + timedelta(days=4)))
    cycle(team, mappings, T0 + timedelta(days=12), sink)  # closes first: no day-7 reminder for P1
    p1 = [
        (a.purpose, a.key.rsplit("/", 1)[-1], a.state)
        for a in rows(team, t.actions, t.actions.c.id)
        if a.person_id == "P1"
    ]
    assert ("reminder", "7", "pending") not in p1 and ("reminder", "7", "sent") not in p1
    assert ("reinforcement", "7", "sent") in p1
    assert ("reinforcement", "1", "cancelled") in p1  # missed step superseded, not sent in a burst


def facts_loaded(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The people whose facts each follow-up chunk loads, from now on."""
    loaded: list[set[str]] = []
    real = followups.iter_facts

    def spy(conn: Any, person_ids: Any, *args: Any) -> Any:
        loaded.append(set(person_ids))
        return real(conn, person_ids, *args)

    monkeypatch.setattr(followups, "iter_facts", spy)
    return loaded


def test_follow_up_reads_only_the_recommendations_with_a_step_due(
    team: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recommendations before their first reminder (day 3 here) cost nothing: their facts are
    not loaded. Once a step is due they are followed up exactly as before."""
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    clock.set_now(T0)
    evaluate(team, mappings, settings(), T0, persist=Actor(mappings, settings()))
    loaded = facts_loaded(monkeypatch)
    follow_up(team, mappings, settings(), T0 + timedelta(days=2, hours=23))
    assert loaded == []
    follow_up(team, mappings, settings(), T0 + timedelta(days=3))
    assert loaded == [{"P1", "P2"}]
    reminders = [a for a in rows(team, t.actions, t.actions.c.id) if a.purpose == "reminder"]
    assert sorted((a.person_id, a.key.rsplit("/", 1)[-1]) for a in reminders) == [("P1", "3"), ("P2", "3")]


def test_manager_gets_one_digest_for_several_reports(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    sink = FakeSink()
    cycle(team, mappings, T0, sink)
    cycle(team, mappings, T0 + timedelta(days=10), sink)
    digests = [a for a in rows(team, t.actions) if a.purpose == "digest"]
    assert len(digests) == 1
    (digest,) = digests
    assert digest.recipient_user_id == 90 and digest.state == "sent"
    assert "P1 has not completed Customer Conversations" in digest.body_text
    assert "P2 has not completed Customer Conversations" in digest.body_text
    cycle(team, mappings, T0 + timedelta(days=10, hours=2), sink)
    assert len([a for a in rows(team, t.actions) if a.purpose == "digest"]) == 1


def test_weekly_cap_defers_instead_of_dropping(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(
        tmp_path, "csat", FOLLOW.replace("remind_after_days: [3, 7]", "remind_after_days: [1, 2, 3]")
    )
    sink = FakeSink()
    s = settings()
    s.delivery.cap_per_week = 2
    for day in range(4):
        now = T0 + timedelta(days=day)
        clock.set_now(now)
        evaluate(team, mappings, s, now, persist=Actor(mappings, s))
        follow_up(team, mappings, s, now)
        deliver(team, {"moodle": sink}, s)
    p1 = [
        a
        for a in rows(team, t.actions, t.actions.c.id)
        if a.person_id == "P1" and a.purpose in ("recommend", "reminder")
    ]
    sent = [a for a in p1 if a.state == "sent"]
    held = [a for a in p1 if a.state == "pending"]
    assert len(sent) == 2 and held and held[0].last_error == "deferred: weekly cap of 2 messages reached"
    assert held[0].due_at >= sent[0].sent_at + timedelta(days=7)


def test_quiet_hours_defer_to_the_recipients_morning(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW.replace('"00:00-24:00"', '"09:00-17:00"'))
    store(
        team,
        Person(
            "P1", first_name="P1", department="Customer Service", timezone="Australia/Sydney", manager_id="M1"
        ),
    )
    sink = FakeSink()
    cycle(team, mappings, T0, sink)  # 10:00 UTC = 21:00 in Sydney
    p1 = next(a for a in rows(team, t.actions) if a.person_id == "P1")
    assert p1.state == "pending" and p1.due_at == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)
    cycle(team, mappings, p1.due_at, sink)
    assert next(a for a in rows(team, t.actions) if a.person_id == "P1").state == "sent"


def test_opt_out_suppresses_and_kill_switch_stops_everything(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    with team.begin() as conn:
        conn.execute(
            t.opt_outs.insert().values(person_id="P1", mapping_id="*", reason="asked", created_at=T0)
        )
        set_paused(conn, True, T0)
    sink = FakeSink()
    cycle(team, mappings, T0, sink)
    assert sink.sent == []
    with team.begin() as conn:
        set_paused(conn, False, T0)
    deliver(team, {"moodle": sink}, settings())
    states = {a.person_id: (a.state, a.last_error) for a in rows(team, t.actions)}
    assert states["P1"] == ("suppressed", "the person opted out")
    assert states["P2"][0] == "sent"


def test_suspended_account_cancels_queued_message(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", FOLLOW)
    clock.set_now(T0)
    evaluate(team, mappings, settings(), T0, persist=Actor(mappings, settings()))
    store(team, LmsUser("moodle", 11, username="p1", suspended=True))
    sink = FakeSink()
    deliver(team, {"moodle": sink}, settings())
    with team.connect() as conn:
        state = conn.execute(
            select(t.actions.c.state, t.actions.c.last_error).where(t.actions.c.person_id == "P1")
        ).one()
    assert tuple(state) == ("cancelled", "the account on site 'moodle' is suspended or deleted")
