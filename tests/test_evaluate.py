"""Audience and trigger evaluation: pure functions over one person's facts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bridge.facts import Facts, GoalState, Point, Rating
from bridge.mapping import evaluate as ev
from bridge.mapping import model as m
from bridge.mapping.peers import PeerRanks
from bridge.records import Person, RaterType, ReviewRating, Target
from bridge.settings import MetricSettings

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CS101 = Target("moodle", "course", 7, "Customer Conversations", "http://lms/course/view.php?id=7")
COMP = Target("moodle", "competency", 3, "De-escalation")


def months(*values: float, start: int = 1) -> list[Point]:
    return [Point(date(2026, start + i, 1), date(2026, start + i, 28), v) for i, v in enumerate(values)]


def ctx(**kw: object) -> ev.EvalContext:
    base: dict[str, object] = {
        "now": NOW,
        "metrics": {
            "csat": MetricSettings(direction="higher", target=4.2),
            "incidents": MetricSettings(direction="lower"),
        },
        "targets": {("moodle", "course", "CS-101"): CS101},
        "competencies": {("moodle", "DE-1"): COMP},
    }
    base.update(kw)
    return ev.EvalContext(**base)  # type: ignore[arg-type]


def person(**kw: object) -> Person:
    base: dict[str, object] = {
        "person_id": "P1",
        "first_name": "Ana",
        "department": "Customer Service/Tier 2",
    }
    base.update(kw)
    return Person(**base)  # type: ignore[arg-type]


def trig(data: dict[str, object]) -> m.Trigger:
    return m.Trigger.model_validate(data)


def test_kpi_below_target_uses_latest_period() -> None:
    facts = Facts(person(), kpis={"csat": months(4.5, 4.4, 3.6)})
    verdict = ev.trigger(trig({"kpi": {"metric": "csat", "below": "target"}}), facts, ctx())
    assert verdict == ev.Verdict(True, ("csat 3.6 < target 4.2 in 2026-03",))


def test_kpi_average_over_periods() -> None:
    facts = Facts(person(), kpis={"csat": months(4.5, 4.4, 3.6)})
    verdict = ev.trigger(trig({"kpi": {"metric": "csat", "below": 4.2, "periods": 3}}), facts, ctx())
    assert verdict == ev.Verdict(True, ("csat average 4.17 over 3 periods < 4.2 to 2026-03",))
    two = ev.trigger(trig({"kpi": {"metric": "csat", "below": 4.0, "periods": 2}}), facts, ctx())
    assert two == ev.Verdict(False, ("csat average 4 over 2 periods >= 4 to 2026-03",))


def test_kpi_without_data_or_target_is_false_with_reason() -> None:
    assert ev.trigger(trig({"kpi": {"metric": "csat", "below": 4}}), Facts(person()), ctx()).facts == (
        "no csat data",
    )
    facts = Facts(person(), kpis={"nps": months(10)})
    verdict = ev.trigger(trig({"kpi": {"metric": "nps", "above": "target"}}), facts, ctx())
    assert verdict == ev.Verdict(False, ("nps has no target configured",))


def test_trend_fell_by_percent() -> None:
    facts = Facts(person(), kpis={"csat": months(4.8, 4.6, 4.4, 4.0)})
    verdict = ev.trigger(
        trig({"kpi_trend": {"metric": "csat", "fell_by_percent": 10, "periods": 3}}), facts, ctx()
    )
    assert verdict.ok
    assert "fell 16.67%" in verdict.facts[0]


def test_review_rating_unrated_never_triggers() -> None:
    unrated = ReviewRating(
        "P1",
        "Coaching",
        RaterType.OFFICIAL,
        None,
        date(2026, 1, 1),
        date(2026, 6, 30),
        1,
        5,
        "Too new to rate",
    )
    facts = Facts(person(), reviews={("coaching", "official"): unrated})
    verdict = ev.trigger(trig({"review_rating": {"competency": "Coaching", "at_or_below": 2}}), facts, ctx())
    assert not verdict.ok and "unrated (Too new to rate)" in verdict.facts[0]


def test_review_rating_normalised() -> None:
    rating = ReviewRating(
        "P1", "overall", RaterType.OFFICIAL, 2, date(2026, 1, 1), date(2026, 6, 30), 1, 5, "Partially meets"
    )
    facts = Facts(person(), reviews={("overall", "official"): rating})
    verdict = ev.trigger(trig({"review_rating": {"normalised_at_or_below": 0.25}}), facts, ctx())
    assert verdict.ok and "= 0.25 of scale" in verdict.facts[0]


@pytest.mark.parametrize(
    ("rating", "state", "expected"),
    [
        (None, "not_rated", True),
        (None, "not_proficient", False),
        (Rating(False, "Not yet", None), "not_proficient", True),
        (Rating(True, "Competent", None), "not_proficient_or_not_rated", False),
        (Rating(None, None, None), "not_proficient_or_not_rated", True),
    ],
)
def test_competency_states(rating: Rating | None, state: str, expected: bool) -> None:
    facts = Facts(person(), competencies={("moodle", 3): rating} if rating else {})
    verdict = ev.trigger(
        trig({"competency": {"site": "moodle", "competency": "DE-1", "state": state}}), facts, ctx()
    )
    assert verdict.ok is expected


def test_completion_older_than_and_never() -> None:
    rule = {"completion_older_than": {"site": "moodle", "course": "CS-101", "older_than_days": 365}}
    old = Facts(person(), completions={("moodle", "course", 7): datetime(2025, 6, 1, tzinfo=UTC)})
    assert ev.trigger(trig(rule), old, ctx()).ok
    recent = Facts(person(), completions={("moodle", "course", 7): datetime(2026, 6, 1, tzinfo=UTC)})
    assert not ev.trigger(trig(rule), recent, ctx()).ok
    assert ev.trigger(trig(rule), Facts(person()), ctx()).facts == ("Customer Conversations never completed",)


def test_completion_missing_after_start() -> None:
    rule = {"completion_missing": {"site": "moodle", "course": "CS-101", "days_after_start": 14}}
    assert ev.trigger(trig(rule), Facts(person(start_date=date(2026, 11, 1))), ctx()).ok
    assert not ev.trigger(trig(rule), Facts(person(start_date=date(2026, 11, 15))), ctx()).ok


def test_any_all_not_combine_and_explain() -> None:
    facts = Facts(person(), kpis={"csat": months(3.9)})
    node = trig(
        {"all": [{"kpi": {"metric": "csat", "below": 4}}, {"not": {"kpi": {"metric": "csat", "below": 3}}}]}
    )
    verdict = ev.trigger(node, facts, ctx())
    assert verdict.ok
    assert verdict.facts == ("csat 3.9 < 4 in 2026-01", "not (csat 3.9 >= 3 in 2026-01)")


def test_audience_department_includes_sub_units_and_negation() -> None:
    aud = m.Audience.model_validate({"department": "customer service", "not": {"location": "Berlin"}})
    assert ev.audience(aud, Facts(person(location="London")), ctx()).ok
    assert not ev.audience(aud, Facts(person(location="Berlin")), ctx()).ok
    assert not ev.audience(aud, Facts(person(department="Customer Services")), ctx()).ok


def test_audience_new_hires() -> None:
    aud = m.Audience.model_validate({"started_within_days": 90})
    assert ev.audience(aud, Facts(person(start_date=date(2026, 10, 1))), ctx()).ok
    assert not ev.audience(aud, Facts(person(start_date=date(2025, 10, 1))), ctx()).ok
    assert not ev.audience(aud, Facts(person()), ctx()).ok


def test_percentile_respects_metric_direction() -> None:
    ranks = PeerRanks()
    ranks._latest = {"incidents": {f"P{i}": float(i) for i in range(10)}}
    ranks._groups = {("incidents", "department"): {"customer service/tier 2": [float(i) for i in range(10)]}}
    rule = {"kpi_percentile": {"metric": "incidents", "bottom_percent": 20}}
    worst = Facts(person(person_id="P9"))
    best = Facts(person(person_id="P0"))
    assert ev.trigger(trig(rule), worst, ctx(peers=ranks)).ok  # most incidents = bottom performer
    assert not ev.trigger(trig(rule), best, ctx(peers=ranks)).ok


def test_learners_read_the_facts_in_plain_words_administrators_keep_the_operators() -> None:
    """#15: a message's reason uses the metric's title and words, never ids or operators;
    a review rating reads as the review system names it. `explain` keeps the exact form."""
    titled = ctx(
        metrics={"csat": MetricSettings(direction="higher", target=4.2, title="Customer satisfaction")}
    )
    facts = Facts(person(), kpis={"csat": months(4.5, 3.8, 3.7)})
    verdict = ev.trigger(trig({"kpi": {"metric": "csat", "below": "target", "periods": 3}}), facts, titled)
    assert verdict.facts == ("csat average 4 over 3 periods < target 4.2 to 2026-03",)
    assert verdict.learner_words == (
        "your customer satisfaction averaged 4 over the 3 periods to 2026-03, below the 4.2 target",
    )
    trend = ev.trigger(trig({"kpi_trend": {"metric": "csat", "fell_by": 0.5, "periods": 2}}), facts, titled)
    assert trend.learner_words == (
        "your customer satisfaction fell by 0.8 from 4.5 in 2026-01 to 3.7 in 2026-03",
    )
    rating = ReviewRating(
        "P1", "Coaching", RaterType.OFFICIAL, 2, date(2026, 1, 1), date(2026, 6, 30), 1, 5, "Does not meet"
    )
    reviewed = Facts(person(), reviews={("coaching", "official"): rating})
    rule = trig(
        {
            "all": [
                {"review_rating": {"competency": "Coaching", "at_or_below": 2}},
                {"kpi": {"metric": "csat", "below": 5}},
            ]
        }
    )
    both = ev.trigger(rule, Facts(person(), kpis=facts.kpis, reviews=reviewed.reviews), titled)
    assert (
        both.ok
        and both.facts[0] == "official rating for Coaching Does not meet <= 2 (review ending 2026-06-30)"
    )
    assert both.learner_words == (
        "your official review ending 2026-06-30 rated your Coaching 'Does not meet'",
        "your customer satisfaction was 3.7 in 2026-03, below 5",
    )
    for said in both.learner_words + verdict.learner_words + trend.learner_words:
        assert not any(op in said for op in ("<", ">", "=", "csat")), said


def test_a_manager_reads_their_report_s_facts_and_names_stay_as_written() -> None:
    """The manager's words are said by the evaluation ("their …"), not rewritten afterwards:
    a title that contains "your" is shown to the manager as it is named."""
    titled = ctx(
        metrics={"csat": MetricSettings(direction="higher", target=4.2, title="Customer satisfaction")}
    )
    kpi = {"kpi": {"metric": "csat", "below": "target"}}
    goal = {"goal": {"status": "missed"}}
    facts = Facts(
        person(),
        kpis={"csat": months(4.5, 4.4, 3.6)},
        goals=[GoalState("g1", "Grow your team", 40, date(2026, 10, 31))],
    )
    verdict = ev.trigger(trig({"all": [kpi, goal]}), facts, titled)
    assert verdict.ok
    assert verdict.manager_words == (
        "their customer satisfaction was 3.6 in 2026-03, below the 4.2 target",
        "goal 'Grow your team' missed: 40% at its due date 2026-10-31",
    )
    assert verdict.learner_words[0] == "your customer satisfaction was 3.6 in 2026-03, below the 4.2 target"
