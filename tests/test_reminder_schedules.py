"""Reminder schedules relative to the due date: before it, when overdue, and every N days with a
limit; what validation refuses, what ``plan`` shows, and what the messages say when they go."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bridge.errors import MappingError
from bridge.mapping.loader import load_file
from bridge.mapping.model import FollowUp
from tests.seed import CSAT_MAPPING, agent_and_manager, write_mapping
from tests.test_send_time import T0, RecordingSink, cycle, p1_actions


@pytest.fixture
def team(engine: Engine) -> Engine:
    return agent_and_manager(engine)


SCHEDULE = (
    CSAT_MAPPING
    + """\
follow_up:
  due_in_days: 10
  remind_after_days: [2]
  remind_before_due_days: [3, 1]
  remind_when_overdue: true
  repeat_every_days: 4
  max_reminders: 6
  escalate_to_manager_after_days: null
"""
)


def test_reminder_days_merge_every_kind_in_order_and_stop_at_the_limit() -> None:
    f = FollowUp(
        due_in_days=10,
        remind_after_days=[2, 7],
        remind_before_due_days=[3, 1],
        remind_when_overdue=True,
        repeat_every_days=4,
        max_reminders=6,
    )
    # day 2 after; 7 after = 3 before due (one reminder, not two); 1 before; day after due; repeats
    assert f.reminder_days() == [2, 7, 9, 11, 15, 19]
    assert FollowUp(due_in_days=10, remind_after_days=[2, 5, 8], max_reminders=2).reminder_days() == [2, 5]
    assert FollowUp(remind_after_days=[], repeat_every_days=3, max_reminders=3).reminder_days() == [3, 6, 9]
    assert FollowUp().reminder_days() == [7, 14]  # the defaults are as before


@pytest.mark.parametrize(
    ("follow_up", "field", "words"),
    [
        (
            "  due_in_days: null\n  remind_before_due_days: [3]\n",
            "follow_up.remind_before_due_days",
            "reminders before the due date need follow_up.due_in_days",
        ),
        (
            "  due_in_days: 10\n  remind_before_due_days: [2, 10]\n",
            "follow_up.remind_before_due_days",
            "10 day(s) before the due date is not after the recommendation (due_in_days is 10)",
        ),
        (
            "  due_in_days: null\n  remind_when_overdue: true\n",
            "follow_up.remind_when_overdue",
            "an overdue reminder needs follow_up.due_in_days",
        ),
        (
            "  repeat_every_days: 7\n",
            "follow_up.repeat_every_days",
            "repeat_every_days needs follow_up.max_reminders",
        ),
        ("  max_reminders: 0\n", "follow_up.max_reminders", "greater than or equal to 1"),
    ],
)
def test_impossible_schedules_are_refused_naming_the_field(
    tmp_path: Path, follow_up: str, field: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CSAT_MAPPING + "follow_up:\n" + follow_up, encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_file(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:") and f": {field}: " in problem and words in problem, problem


def _reminders(engine: Engine) -> list[tuple[str, str]]:
    return [(step, state) for purpose, step, state, _ in p1_actions(engine) if purpose == "reminder"]


def test_each_reminder_goes_on_its_day_and_says_due_by_or_overdue_since(team: Engine, tmp_path: Path) -> None:
    mappings = write_mapping(tmp_path, "csat", SCHEDULE)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    for day in range(1, 30):  # one cycle a day for four weeks
        cycle(team, mappings, T0 + timedelta(days=day), sink)
    assert _reminders(team) == [(str(d), "sent") for d in (2, 7, 9, 11, 15, 19)]
    texts = sink.texts("reminder")
    assert "It is due by 2026-11-12 (10 days left)" not in texts[0]
    assert "It is due by 2026-11-12 (8 days left)." in texts[0]
    assert "It is due by 2026-11-12 (3 days left)." in texts[1]
    assert "It is due by 2026-11-12 (1 day left)." in texts[2]
    for overdue in texts[3:]:
        assert "It was due on 2026-11-12 and is now overdue" in overdue and "due by" not in overdue


def test_plan_shows_the_dates_the_schedule_produces(team: Engine, tmp_path: Path) -> None:
    from bridge.plan import plan
    from tests.seed import settings

    mappings = write_mapping(tmp_path, "csat", SCHEDULE)
    _, planned = plan(team, mappings, settings(), T0, full=True)
    (item,) = [p for p in planned if p.decision.person_id == "P1"]
    assert [(r.day, r.on.isoformat(), r.kind) for r in item.reminders] == [
        (2, "2026-11-04", "after the recommendation"),
        (7, "2026-11-09", "3 days before due"),
        (9, "2026-11-11", "1 day before due"),
        (11, "2026-11-13", "overdue"),
        (15, "2026-11-17", "repeat"),
        (19, "2026-11-21", "repeat"),
    ]


def test_a_schedule_of_due_date_reminders_only_is_followed(team: Engine, tmp_path: Path) -> None:
    """No reminder counted from the recommendation and no escalation: the steady cycle's due-step
    filter must still see the before-due and overdue days (it once looked at remind_after_days
    and the escalation only, and these reminders never went)."""
    only_due = SCHEDULE.replace("  remind_after_days: [2]\n", "  remind_after_days: []\n")
    assert only_due != SCHEDULE
    mappings = write_mapping(tmp_path, "csat", only_due)
    sink = RecordingSink()
    cycle(team, mappings, T0, sink)
    for day in range(1, 30):
        cycle(team, mappings, T0 + timedelta(days=day), sink)
    assert _reminders(team) == [(str(d), "sent") for d in (7, 9, 11, 15, 19, 23)]
