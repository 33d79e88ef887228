"""Each item a mapping recommends gets its own actions, and follow-ups name the item concerned."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from bridge.records import LearningItem
from bridge.store import schema as t
from tests.seed import CS101, CSAT_MAPPING, agent, completion, link, rows, store, write_mapping
from tests.test_delivery import FakeSink
from tests.test_followups import T0, cycle

CS102 = LearningItem(
    "moodle", 8, shortname="CS-102", fullname="Handling Complaints", url="http://lms/course/view.php?id=8"
)
TWO_COURSES = (
    CSAT_MAPPING.replace(
        "  - site: moodle\n    course: CS-101\n",
        "  - site: moodle\n    course: CS-101\n  - site: moodle\n    course: CS-102\n    channels: [message, enrol]\n",
    )
    + "follow_up:\n  reinforce_after_days: [1]\n"
)


def test_a_mapping_with_two_courses_queues_actions_for_both(engine: Engine, tmp_path: Path) -> None:
    store(engine, CS101, CS102, *agent("P1", 3.5, user_id=11))
    link(engine, "P1", 11)
    mappings = write_mapping(tmp_path, "csat", TWO_COURSES)
    cycle(engine, mappings, T0)
    queued = sorted((a.kind, a.target["item_id"]) for a in rows(engine, t.actions, t.actions.c.id))
    assert queued == [("enrol", 8), ("message", 7), ("message", 8)]


def test_reinforcement_names_the_course_that_was_completed(engine: Engine, tmp_path: Path) -> None:
    store(engine, CS101, CS102, *agent("P1", 3.5, user_id=11))
    link(engine, "P1", 11)
    mappings = write_mapping(tmp_path, "csat", TWO_COURSES)
    sink = FakeSink()
    cycle(engine, mappings, T0, sink)
    store(engine, completion(11, T0 + timedelta(days=2), CS102))
    cycle(engine, mappings, T0 + timedelta(days=4), sink)
    reinforcements = [a for a in rows(engine, t.actions, t.actions.c.id) if a.purpose == "reinforcement"]
    assert reinforcements and all(a.target["item_id"] == 8 for a in reinforcements)
    assert all("Handling Complaints" in a.body_text for a in reinforcements)
    assert not any("Customer Conversations" in a.body_text for a in reinforcements)
