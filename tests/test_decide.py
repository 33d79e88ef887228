"""Decisions: open, keep, close, cooldown, backfill and holdout — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from bridge.act import Actor
from bridge.decide import evaluate
from bridge.identity import match_identities
from bridge.mapping.loader import MappingSet
from bridge.plan import plan
from bridge.records import LmsUser, Person
from bridge.store import schema as t
from tests.seed import CS101, CSAT_MAPPING, agent, completion, link, rows, settings, store, write_mapping

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def sync(
    engine: Engine, mapping_set: MappingSet, now: datetime, full: bool = False
) -> list[tuple[str, str, str]]:
    report = evaluate(engine, mapping_set, settings(), now, full=full, persist=Actor(mapping_set, settings()))
    return [(d.person_id, d.mapping_id, d.outcome) for d in report.decisions]


def test_opens_once_and_queues_a_message(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11), *agent("P2", 4.6, user_id=12))
    link(engine, "P1", 11)
    link(engine, "P2", 12)
    assert sync(engine, mappings, T0) == [("P1", "csat", "open")]
    (rec,) = rows(engine, t.recommendations)
    assert rec.explanation["facts"] == ["csat 3.6 < target 4.2 in 2026-10"]
    assert rec.explanation["audience"] == ["department Customer Service"]
    (action,) = rows(engine, t.actions)
    assert (action.kind, action.state, action.recipient_user_id, action.due_at) == (
        "message",
        "pending",
        11,
        T0,
    )
    assert "Customer Conversations" in action.subject
    assert action.key == "csat/P1/1/recommend/message/moodle:course:7/0"
    # A second cycle, even a full one, opens nothing new and queues nothing new.
    assert sync(engine, mappings, T0 + timedelta(hours=1), full=True) == []
    assert len(rows(engine, t.actions)) == 1


def test_plan_agrees_with_sync_and_leaves_no_trace(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11), *agent("P3", 3.9))
    link(engine, "P1", 11)
    _report, planned = plan(engine, mappings, settings(), T0)
    assert [(p.decision.person_id, p.decision.outcome) for p in planned] == [("P1", "open"), ("P3", "wait")]
    assert planned[1].actions == []  # P3 has no LMS account yet: their history there is unknown
    assert "waiting for an account on site 'moodle'" in planned[1].decision.reason
    assert rows(engine, t.recommendations) == [] and rows(engine, t.actions) == []
    assert len(rows(engine, t.dirty_people)) == 2
    assert sync(engine, mappings, T0) == [("P1", "csat", "open"), ("P3", "csat", "wait")]


def test_an_unlinked_person_is_recommended_only_once_their_history_is_known(
    engine: Engine, tmp_path: Path
) -> None:
    """No "never completed" guess for someone whose account is not linked yet (issue 13)."""
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P3", 3.9, email="p3@example.com"))
    assert sync(engine, mappings, T0) == [("P3", "csat", "wait")]
    assert rows(engine, t.recommendations) == [] and rows(engine, t.actions) == []
    # The account appears with a completion from months ago: nothing is recommended.
    store(engine, LmsUser("moodle", 33, username="p3", email="P3@example.com"))
    store(engine, completion(33, T0 - timedelta(days=20)))
    with engine.begin() as conn:
        match_identities(conn, "moodle", ["email"])
    assert sync(engine, mappings, T0 + timedelta(hours=1)) == []
    assert rows(engine, t.recommendations) == []


def test_a_linked_person_without_the_completion_is_recommended_once_linked(
    engine: Engine, tmp_path: Path
) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P3", 3.9, email="p3@example.com"))
    assert sync(engine, mappings, T0) == [("P3", "csat", "wait")]
    store(engine, LmsUser("moodle", 33, username="p3", email="P3@example.com"))
    with engine.begin() as conn:
        match_identities(conn, "moodle", ["email"])
    assert sync(engine, mappings, T0 + timedelta(hours=1)) == [("P3", "csat", "open")]
    (action,) = rows(engine, t.actions)
    assert (action.state, action.recipient_user_id) == ("pending", 33)


def test_a_link_made_while_deciding_is_decided_again_even_at_the_same_instant(
    engine: Engine, tmp_path: Path
) -> None:
    """The daemon pulls while it decides, on a clock that may stand still (pinned, or another
    replica's): a person marked for re-evaluation after the evaluation read them stays marked."""
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P3", 3.9, email="p3@example.com"))
    store(engine, LmsUser("moodle", 33, username="p3", email="P3@example.com"))  # not linked yet
    actor = Actor(mappings, settings())

    def persist_then_link(conn: Connection, *args: Any) -> None:
        actor(conn, *args)
        match_identities(conn, "moodle", ["email"])  # the pull that links P3 commits meanwhile

    report = evaluate(engine, mappings, settings(), T0, persist=persist_then_link)
    assert [(d.person_id, d.outcome) for d in report.decisions] == [("P3", "wait")]
    assert [r.person_id for r in rows(engine, t.dirty_people)] == ["P3"]
    assert sync(engine, mappings, T0) == [("P3", "csat", "open")]
    assert rows(engine, t.dirty_people) == []


def test_completion_closes_and_cancels_pending_actions(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    store(engine, completion(11, T0 + timedelta(days=3)))
    assert sync(engine, mappings, T0 + timedelta(days=4)) == [("P1", "csat", "close")]
    (rec,) = rows(engine, t.recommendations)
    assert rec.state == "closed" and rec.close_reason == "completed Customer Conversations on 2026-11-05"
    (action,) = rows(engine, t.actions)
    assert action.state == "cancelled"


def test_cooldown_then_reopen_as_new_episode(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(
        tmp_path,
        "csat",
        CSAT_MAPPING.replace("id: csat", "id: csat\nclosed_by:\n  completed: {within_days: 10}"),
    )
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    store(engine, completion(11, T0 + timedelta(days=1)))
    sync(engine, mappings, T0 + timedelta(days=2))
    # Still below target, completion now old, but within the 30-day cooldown: nothing.
    assert sync(engine, mappings, T0 + timedelta(days=20), full=True) == []
    assert sync(engine, mappings, T0 + timedelta(days=33), full=True) == [("P1", "csat", "open")]
    assert [r.episode for r in rows(engine, t.recommendations, t.recommendations.c.id)] == [1, 2]


def test_backfill_false_suppresses_existing_matches(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING + "  backfill: false\n")
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    assert sync(engine, mappings, T0) == [("P1", "csat", "suppress")]
    assert rows(engine, t.actions) == []
    # A newcomer who starts matching after the switch-on is acted on.
    store(engine, *agent("P2", 3.0, user_id=12))
    link(engine, "P2", 12)
    assert sync(engine, mappings, T0 + timedelta(days=1)) == [("P2", "csat", "open")]
    # P1 recovers (lapse) and later dips again: now it opens.
    store(engine, *agent("P1", 4.5, user_id=11))
    assert sync(engine, mappings, T0 + timedelta(days=2)) == [("P1", "csat", "lapse")]
    store(engine, *agent("P1", 3.5, user_id=11))
    assert sync(engine, mappings, T0 + timedelta(days=3)) == [("P1", "csat", "open")]


def test_holdout_is_recorded_and_not_contacted(engine: Engine, tmp_path: Path) -> None:
    text = CSAT_MAPPING + "measure:\n  metric: csat\n  holdout_percent: 50\n"
    mappings = write_mapping(tmp_path, "csat", text)
    people = [r for i in range(40) for r in agent(f"P{i:02d}", 3.0, user_id=100 + i)]
    store(engine, CS101, *people)
    for i in range(40):
        link(engine, f"P{i:02d}", 100 + i)
    sync(engine, mappings, T0)
    recs = rows(engine, t.recommendations)
    held = {r.person_id for r in recs if r.holdout}
    assert 8 <= len(held) <= 32  # about half, deterministic per person
    for action in rows(engine, t.actions):
        assert (action.state == "suppressed") == (action.person_id in held)


def test_leaver_closes_open_recommendation(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    store(engine, Person("P1", first_name="P1", department="Customer Service", timezone="UTC", active=False))
    assert sync(engine, mappings, T0 + timedelta(days=1)) == [("P1", "csat", "close")]
    assert rows(engine, t.actions)[0].state == "cancelled"


def test_missing_target_is_reported_not_opened(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING.replace("CS-101", "NOPE-1"))
    store(engine, *agent("P1", 3.6, user_id=11))
    report = evaluate(engine, mappings, settings(), T0, persist=Actor(mappings, settings()))
    assert report.decisions == []
    assert report.problems == ["mapping csat: course 'NOPE-1' was not found on site 'moodle'"]


def leaves(engine: Engine, person_id: str, active: bool = False) -> None:
    person = Person(
        person_id, first_name=person_id, department="Customer Service", timezone="UTC", active=active
    )
    store(engine, person)


def test_a_returning_person_gets_their_recommendation_and_its_messages_back(
    engine: Engine, tmp_path: Path
) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    leaves(engine, "P1")
    assert sync(engine, mappings, T0 + timedelta(days=1)) == [("P1", "csat", "close")]
    (action,) = rows(engine, t.actions)
    assert (action.state, action.last_error) == ("cancelled", "recommendation closed: left the organisation")
    # Listed again two days later (a bad export, or a rehire): well inside the 30-day cool-down.
    leaves(engine, "P1", active=True)
    assert sync(engine, mappings, T0 + timedelta(days=3)) == [("P1", "csat", "reopen")]
    (rec,) = rows(engine, t.recommendations)
    assert (rec.state, rec.episode, rec.closed_at, rec.close_reason) == ("open", 1, None, None)
    (action,) = rows(engine, t.actions)
    assert (action.state, action.recipient_user_id, action.last_error) == ("pending", 11, None)
    assert sync(engine, mappings, T0 + timedelta(days=4), full=True) == []


def test_a_returning_person_whose_account_changed_waits_for_it(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    leaves(engine, "P1")
    sync(engine, mappings, T0 + timedelta(days=1))
    with engine.begin() as conn:
        conn.execute(t.identities.delete())
    link(engine, "P1", 21)
    leaves(engine, "P1", active=True)
    assert sync(engine, mappings, T0 + timedelta(days=3)) == [("P1", "csat", "reopen")]
    (action,) = rows(engine, t.actions)
    assert (action.state, action.recipient_user_id) == ("pending", 21)


def test_a_returning_person_is_not_reopened_for_what_they_completed(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING)
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    sync(engine, mappings, T0)
    leaves(engine, "P1")
    sync(engine, mappings, T0 + timedelta(days=1))
    store(engine, completion(11, T0 + timedelta(days=2)))
    leaves(engine, "P1", active=True)
    assert sync(engine, mappings, T0 + timedelta(days=3)) == []
    assert rows(engine, t.actions)[0].state == "cancelled"


def test_leaving_is_not_lapsing_a_backfill_baseline(engine: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", CSAT_MAPPING + "  backfill: false\n")
    store(engine, CS101, *agent("P1", 3.6, user_id=11))
    link(engine, "P1", 11)
    assert sync(engine, mappings, T0) == [("P1", "csat", "suppress")]
    leaves(engine, "P1")
    assert sync(engine, mappings, T0 + timedelta(days=1)) == []
    leaves(engine, "P1", active=True)
    assert sync(engine, mappings, T0 + timedelta(days=2)) == []
    assert rows(engine, t.actions) == []
