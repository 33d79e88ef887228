"""Issue 17: HR goals were loaded and unused; mappings now open on a goal missed or behind,
evaluated like every other trigger and explained in `explain` and `why`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.facts import Facts, GoalState
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.records import Person
from connectors.moodle.sim.server import Running
from tests.test_cli_e2e import ROOT, config, run

TODAY = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def facts(*goals: GoalState) -> Facts:
    return Facts(
        Person(person_id="P1", employee_number="1", first_name="A", last_name="B"), goals=list(goals)
    )


def check(rule: dict[str, object], *goals: GoalState) -> ev.Verdict:
    return ev.goal(m.GoalTrigger.model_validate(rule), facts(*goals), ev.EvalContext(now=TODAY))


SALES = GoalState("g1", "Q3 sales target", 40, date(2026, 10, 31))
CERT = GoalState("g2", "Complete forklift certification", 10, date(2026, 11, 20))
DONE = GoalState("g3", "Q2 sales target", 100, date(2026, 6, 30))
LONG_AGO = GoalState("g4", "2025 sales target", 20, date(2025, 12, 31))
UNREPORTED = GoalState("g5", "Mentoring", None, date(2026, 10, 1))


def test_a_goal_past_due_and_not_achieved_is_missed() -> None:
    verdict = check({"status": "missed"}, SALES, CERT, DONE)
    assert verdict == ev.Verdict(True, ("goal 'Q3 sales target' missed: 40% at its due date 2026-10-31",))


def test_a_goal_due_soon_with_little_progress_is_behind() -> None:
    verdict = check({"status": "behind"}, SALES, CERT)
    assert verdict == ev.Verdict(
        True, ("goal 'Complete forklift certification' behind: 10% with 17 days left (due 2026-11-20)",)
    )
    assert not check({"status": "behind", "behind_due_within_days": 10}, CERT).ok
    assert not check({"status": "behind", "behind_progress_below": 10}, CERT).ok


def test_the_title_filter_picks_the_goals() -> None:
    assert check({"title_contains": "sales"}, SALES, CERT).facts == (
        "goal 'Q3 sales target' missed: 40% at its due date 2026-10-31",
    )
    verdict = check({"title_contains": ["mentor", "coaching"]}, SALES)
    assert verdict == ev.Verdict(False, ("no goal with 'mentor' or 'coaching' in the title in the HR data",))


def test_achieved_old_and_unreported_goals_do_not_open_and_say_why() -> None:
    verdict = check({}, DONE, LONG_AGO, UNREPORTED)
    assert verdict == ev.Verdict(
        False,
        (
            "goal 'Q2 sales target' achieved (100%)",
            "goal '2025 sales target' missed on 2025-12-31, more than 90 days ago",
            "goal 'Mentoring': no progress reported",
        ),
    )
    assert not check({}).ok and check({}).facts == ("no goal in the HR data",)


def test_the_trigger_is_one_of_the_kinds_and_checks_its_numbers() -> None:
    trigger = m.Trigger.model_validate({"goal": {"status": "missed"}})
    assert ev.trigger(trigger, facts(SALES), ev.EvalContext(now=TODAY)).ok
    with pytest.raises(ValidationError):
        m.GoalTrigger.model_validate({"status": "late"})
    with pytest.raises(ValidationError):
        m.GoalTrigger.model_validate({"behind_progress_below": 150})


GOAL_MAPPING = """id: missed-sales-goal
title: Missed a sales goal
when:
  goal:
    status: missed
    title_contains: sales
recommend:
  - site: moodle
    course: SALES-201
    channels: [message]
"""


def test_a_goal_from_the_hr_export_opens_a_recommendation_explained_by_explain_and_why(
    tmp_path: Path, moodle: Running
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "missed-sales-goal.yaml").write_text(GOAL_MAPPING)
    goals = tmp_path / "goals.csv"
    goals.write_text(
        "Employee Number,Goal ID,Title,Progress,Due Date\n"
        "000003,G-1,Q3 sales target,40,2026-10-31\n"
        "000001,G-2,Q3 sales target,100,2026-10-31\n"
    )
    cfg = config(tmp_path, moodle.url)
    cfg.write_text(
        cfg.read_text()
        .replace(f'dir = "{ROOT / "mappings"}"', f'dir = "{rules}"')
        .replace('reviews = "', f'goals = "{goals}"\nreviews = "')
    )
    assert run(cfg, "db", "upgrade").returncode == 0
    synced = run(cfg, "sync", "--once")
    assert synced.returncode == 0, synced.stderr
    explained = run(cfg, "explain", "000003")
    assert "missed-sales-goal: MATCHES" in explained.stdout
    assert "trigger:  yes - goal 'Q3 sales target' missed: 40% at its due date 2026-10-31" in explained.stdout
    assert "trigger:  no - goal 'Q3 sales target' achieved (100%)" in run(cfg, "explain", "000001").stdout
    why = run(cfg, "why", "000003")
    assert "goal 'Q3 sales target' missed: 40% at its due date 2026-10-31" in why.stdout
