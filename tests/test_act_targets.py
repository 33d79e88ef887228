"""Each item a mapping recommends gets its own actions, and follow-ups name the item concerned."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from bridge.records import Competency, LearningItem
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


def test_a_competency_recommendation_links_to_the_learner_s_plans_page(
    engine: Engine, tmp_path: Path
) -> None:
    """#15: every link in a message points at a real page: a competency is worked on in the
    learner's learning plans (Moodle's tool_lp plans.php shows the signed-in user's plans)."""
    plans = "http://lms/admin/tool/lp/plans.php"
    store(engine, Competency("moodle", 3, "DE-1", None, 1, url=plans), *agent("P1", 3.5, user_id=11))
    link(engine, "P1", 11)
    text = CSAT_MAPPING.replace(
        "  - site: moodle\n    course: CS-101\n",
        "  - site: moodle\n    competency: DE-1\n    channels: [message]\n",
    )
    assert text != CSAT_MAPPING
    mappings = write_mapping(tmp_path, "csat", text)
    cycle(engine, mappings, T0 + timedelta(hours=10), FakeSink())  # within the sending hours
    [message] = [a for a in rows(engine, t.actions, t.actions.c.id) if a.purpose == "recommend"]
    assert message.state == "sent", message.last_error
    assert f'href="{plans}"' in message.body_html and plans in message.body_text
